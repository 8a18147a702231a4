# Policy for the orders sidecar in namespace default (orders.default-sidecar): have a CSR signed by
# its own PKI role, orders.default (the key pair is made in the pod and never crosses the network),
# and read the mount's issuers and CRLs for the trust bundle. Nothing else.
path "pki/sign/orders.default" {
  capabilities = ["update"]
}
# Only with vault.pki.method: issue (Vault makes the key and sends it back):
# path "pki/issue/orders.default" {
#   capabilities = ["update"]
# }
path "pki/issuers" {
  capabilities = ["list"]
}
path "pki/issuer/+/json" {
  capabilities = ["read"]
}
path "pki/issuer/+/crl" {
  capabilities = ["read"]
}
# Only with vault.revokeOnShutdown.certificate: revoke our own certificate (sent whole, as a role
# with no_store=true requires), proven by its key; it cannot revoke anyone else's.
path "pki/revoke-with-key" {
  capabilities = ["update"]
}
