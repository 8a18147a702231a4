/**
 * How the TLS contexts check peers, decided from the config and the certificate source: which
 * anchors to trust, whether peers may send intermediates, and the sentinel CRL of `crl: closed`.
 */
import type { Config } from '../config/schema/index.js';
import type { CertificateSource } from '../identity/source.js';
import type { PeerTrust } from './contexts.js';

/**
 * How peers are checked for this config and source. A source that lists its issuers (Vault) is
 * the only authority on them; `crl: closed` loads the sentinel CRL so that no state — every CRL
 * read failing, the first fetch failing — leaves revocation unchecked.
 */
export async function peerTrustFor(config: Config, source: CertificateSource): Promise<PeerTrust> {
  const listed = source.fetchTrust !== undefined && source.trustVersion !== undefined;
  const closed = listed && config.vault?.pki.crl === 'closed';
  const files = config.identity.source === 'files' ? config.identity.files : undefined;
  return {
    anchors: listed ? 'listed' : 'bundle',
    directIssuer: !(files?.peerIntermediates ?? false),
    ...(closed ? { crlSentinel: await (await import('./crl-sentinel.js')).createCrlSentinel() } : {}),
  };
}
