/**
 * What TlsContexts trusts for peers (defects 9 and 15 of issue 24, at the unit level; the attacks
 * on the built CLI are in test/adversarial/ca-chain-trust-anchors.test.ts and
 * signing-client-cert.test.ts): with `listed` anchors the CA chain that came with our own
 * certificate anchors nothing, and a leaf must be signed by a trusted CA itself.
 */
import { X509Certificate } from 'node:crypto';
import { expect, it } from 'vitest';
import type { CertificateBundle } from '../../src/identity/bundle.js';
import { IdentityStore } from '../../src/identity/store.js';
import { TrustStore } from '../../src/identity/trust.js';
import { TlsContexts } from '../../src/tls/contexts.js';
import { TestPki } from '../support/pki.js';

const mount = TestPki.create('mount');
const rogue = TestPki.create('rogue');
const own = mount.leaf('own', { cn: 'own.test', dns: ['own.test'] });

function contexts(anchors: 'listed' | 'bundle', directIssuer = true): TlsContexts {
  const store = new IdentityStore({ commonName: '', dnsNames: [], ipSans: [], uriSans: [], ttl: 600 });
  const trust = new TrustStore();
  trust.update({ caPems: [mount.ca.cert], crlPems: [] });
  const c = new TlsContexts(store, trust, undefined, { anchors, directIssuer });
  // What an issuance answer with an extra CA in its ca_chain gives us.
  const bundle: CertificateBundle = { certPem: own.cert, keyPem: own.key, chainPem: [], trustPem: [mount.ca.cert, rogue.ca.cert] };
  store.publish(bundle);
  return c;
}

it('with listed anchors, a CA only our own certificate’s chain named is no anchor for peers', () => {
  expect(contexts('listed').current().server.ca).toEqual([mount.ca.cert]);
  expect(contexts('bundle').current().server.ca).toEqual([mount.ca.cert, rogue.ca.cert]);
});

it('a leaf must be signed by a trusted CA itself, not by a CA:TRUE certificate under it', () => {
  const c = contexts('listed');
  const signer = mount.leaf('signer', { cn: 'signer.test', caTrue: true });
  const minted = mount.leaf('minted', { cn: 'admin.test', uris: ['spiffe://test/ns/admin/sa/admin'], signer });
  const honest = mount.leaf('honest', { cn: 'honest.test' });
  expect(c.peerIssuerProblem(new X509Certificate(minted.cert))).toMatchObject({ reason: 'not_a_signer' });
  expect(c.peerIssuerProblem(new X509Certificate(minted.cert))?.detail).toContain('signer.test');
  expect(c.peerIssuerProblem(new X509Certificate(honest.cert))).toBeUndefined();
  // A look-alike: the trusted CA's name, another key.
  const lookalike = TestPki.create('mount').leaf('lookalike', { cn: 'admin.test' });
  expect(c.peerIssuerProblem(new X509Certificate(lookalike.cert))).toBeDefined();
  expect(contexts('listed', false).peerIssuerProblem(new X509Certificate(minted.cert))).toBeUndefined();
});
