# Policy for the orders sidecar in namespace default (orders.default-sidecar), the one
# `vault setup --service orders --namespace default` writes: have a CSR signed by its own PKI role,
# orders.default on the intermediate mount pki_int (the key pair is made in the pod and never
# crosses the network). Nothing else: a PKI mount serves its issuers and CRLs without a token.
path "pki_int/sign/orders.default" {
  capabilities = ["update"]
}
# Only with vault.pki.method: issue (Vault makes the key and sends it back; vault setup --issue):
# path "pki_int/issue/orders.default" {
#   capabilities = ["update"]
# }
# For vault.revokeOnShutdown.certificate: revoke our own certificate (sent whole, as a role with
# no_store=true requires), proven by its key; it cannot revoke anyone else's.
path "pki_int/revoke-with-key" {
  capabilities = ["update"]
}
