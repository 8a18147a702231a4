/** Which Vault read a CRL distribution point maps to (the real Vault case: issuer-rotation.test.ts). */
import { expect, it } from 'vitest';
import { vaultCrlRead } from '../../src/vault/parent-crl.js';

it.each([
  ['https://vault.svc:8200/v1/pki/crl', { path: 'pki/cert/crl', field: 'certificate' }],
  ['http://127.0.0.1:8200/v1/pki/crl/pem', { path: 'pki/cert/crl', field: 'certificate' }],
  ['https://vault/v1/pki-root/issuer/5f0c/crl/der', { path: 'pki-root/issuer/5f0c/crl', field: 'crl' }],
  ['https://vault/v1/team/pki/issuer/default/crl', { path: 'team/pki/issuer/default/crl', field: 'crl' }],
  ['http://crl.example.com/root.crl', undefined],
  ['not a url', undefined],
])('%s → %j', (url, read) => {
  expect(vaultCrlRead(url)).toEqual(read);
});
