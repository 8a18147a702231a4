# Policy for the orders sidecar: have a CSR signed by its own PKI role (the key pair is made in the
# pod and never crosses the network), and read the mount's issuers and CRLs for the trust bundle.
# Nothing else.
path "pki/sign/orders" {
  capabilities = ["update"]
}
# Only with vault.pki.method: issue (Vault makes the key and sends it back):
# path "pki/issue/orders" {
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
# Only with vault.revokeOnShutdown.certificate: revoke our own certificate, proven by its key.
path "pki/revoke-with-key" {
  capabilities = ["update"]
}
