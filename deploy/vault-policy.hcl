# Policy for the orders sidecar: issue certificates from its own PKI role, nothing else.
path "pki/issue/orders" {
  capabilities = ["update"]
}
