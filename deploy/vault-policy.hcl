# Policy for the orders sidecar: issue certificates from its own PKI role, and read the mount's
# issuers and CRLs for the trust bundle. Nothing else.
path "pki/issue/orders" {
  capabilities = ["update"]
}
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
