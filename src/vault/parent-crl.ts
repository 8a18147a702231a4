/**
 * Where a parent CA's CRL lives. Node loads CRLs with OpenSSL's CRL_CHECK_ALL, so every
 * certificate of a peer's chain needs its issuer's CRL — the intermediate's too. On an
 * intermediate mount Vault keeps the root without its key and so without a CRL; the root's CRL is
 * on the root's own mount, which the intermediate names in its CRL distribution points (Vault
 * writes them from the root mount's `config/urls`). A distribution point on Vault is read through
 * the sidecar's own Vault session (same TLS, same token); OpenSSL checks the CRL's signature, so
 * a CRL from the wrong place can only fail to cover, never forge.
 */
import '../identity/x509-setup.js';
import { CRLDistributionPointsExtension, X509Certificate } from '@peculiar/x509';

/** The URIs of a certificate's CRL distribution points. */
export function crlDistributionPoints(certPem: string): string[] {
  const extension = new X509Certificate(certPem).getExtension(CRLDistributionPointsExtension);
  return (extension?.distributionPoints ?? [])
    .flatMap((point) => point.distributionPoint?.fullName ?? [])
    .flatMap((name) => (name.uniformResourceIdentifier ? [name.uniformResourceIdentifier] : []));
}

/** A Vault read that returns a CRL as PEM, and the field it comes in. */
export interface VaultCrlRead {
  readonly path: string;
  readonly field: 'crl' | 'certificate';
}

/**
 * The JSON read for a Vault CRL URL: `…/v1/<mount>/crl[/pem|/der]` (the mount's default issuer)
 * or `…/v1/<mount>/issuer/<ref>/crl[/pem|/der]`. Undefined for a URL that is not a Vault CRL path.
 */
export function vaultCrlRead(url: string): VaultCrlRead | undefined {
  let pathname: string;
  try {
    pathname = new URL(url).pathname;
  } catch {
    return undefined;
  }
  const issuer = /^\/v1\/(.+?)\/issuer\/([^/]+)\/crl(?:\/pem|\/der)?\/?$/.exec(pathname);
  if (issuer) return { path: `${issuer[1]}/issuer/${issuer[2]}/crl`, field: 'crl' };
  const mount = /^\/v1\/(.+?)\/crl(?:\/pem|\/der)?\/?$/.exec(pathname);
  if (mount) return { path: `${mount[1]}/cert/crl`, field: 'certificate' };
  return undefined;
}
