/** PKI secrets engine calls: issue a certificate for a role and read the mount's CA chain. */
import { X509Certificate } from 'node:crypto';
import type { CertificateBundle } from '../identity/bundle.js';
import { splitPemCertificates } from '../identity/bundle.js';
import { earliestNextUpdate } from '../identity/crl-dates.js';
import { createKeyAndCsr, type KeyType } from '../identity/csr.js';
import type { CertificateSource, RequestedIdentity } from '../identity/source.js';
import type { TrustMaterial } from '../identity/trust.js';
import type { VaultSession } from './auth.js';

interface IssueResponse {
  data: {
    certificate: string;
    /** issue only; sign never returns a key. */
    private_key?: string;
    issuing_ca?: string;
    ca_chain?: string[];
    serial_number: string;
  };
}

interface ListResponse {
  data: { keys?: string[] };
}

interface IssuerResponse {
  data: { certificate: string; ca_chain?: string[] };
}

interface CrlResponse {
  data: { crl?: string };
}

export class VaultPkiSource implements CertificateSource {
  readonly kind = 'vault';

  /** The last certificate issued, for revocation at shutdown. */
  #last: { serial: string; keyPem: string; certPem: string } | undefined;

  constructor(
    readonly session: VaultSession,
    private readonly mount: string,
    private readonly role: string,
    private readonly crlMode: 'soft' | 'closed' | 'off' = 'soft',
    private readonly revokeOnShutdown: { certificate: boolean; token: boolean } = { certificate: false, token: false },
    private readonly method: 'sign' | 'issue' = 'sign',
    private readonly keyType: KeyType = 'ec-p256',
  ) {}

  async issue(identity: RequestedIdentity): Promise<CertificateBundle> {
    const path = `${this.mount}/${this.method}/${this.role}`;
    const names = {
      common_name: identity.commonName,
      alt_names: identity.dnsNames.join(','),
      ip_sans: identity.ipSans.join(','),
      uri_sans: identity.uriSans.join(','),
      ttl: `${Math.round(identity.ttl)}s`,
      format: 'pem',
    };
    // sign: only the CSR leaves the pod; the names are also sent as parameters, which the role
    // applies whether or not it is set to use the CSR's SANs.
    const ours = this.method === 'sign' ? await createKeyAndCsr(identity, this.keyType) : undefined;
    const body = ours ? { ...names, csr: ours.csrPem } : { ...names, private_key_format: 'pkcs8' };
    // The operation label stays "issue" for both, so metrics and messages read the same.
    const response = await this.session.call<IssueResponse>('issue', `issue from ${path}`, (client) => client.write(path, body));
    const data = response.data;
    const keyPem = ours?.keyPem ?? data.private_key ?? '';
    const caChain = (data.ca_chain ?? (data.issuing_ca ? [data.issuing_ca] : [])).flatMap(splitPemCertificates);
    // Send intermediates after the leaf; self-signed roots are only trust anchors.
    const intermediates = caChain.filter((pem) => !isSelfIssuedPem(pem));
    this.#last = { serial: data.serial_number, keyPem, certPem: data.certificate };
    return { certPem: data.certificate, keyPem, chainPem: intermediates, trustPem: caChain };
  }

  /** The mount's issuer ids: one LIST call, cheap enough to make every few seconds. */
  async trustVersion(): Promise<string> {
    const listed = await this.session.call<ListResponse>('check-issuers', `list issuers of ${this.mount}`, (client) =>
      client.list(`${this.mount}/issuers`),
    );
    return issuerVersion(listed.data.keys);
  }

  /**
   * Every issuer on the mount with its chain, and each issuer's CRL. Vault keeps an issuer after a
   * rotation until an operator deletes it, so trusting them all trusts old and new together.
   */
  async fetchTrust(): Promise<TrustMaterial> {
    const listed = await this.session.call<ListResponse>('list-issuers', `list issuers of ${this.mount}`, (client) =>
      client.list(`${this.mount}/issuers`),
    );
    const caPems = new Set<string>();
    const crlPems: string[] = [];
    for (const id of listed.data.keys ?? []) {
      const issuer = await this.session.call<IssuerResponse>('read-issuer', `read issuer ${id} of ${this.mount}`, (client) =>
        client.read(`${this.mount}/issuer/${id}/json`),
      );
      for (const pem of [issuer.data.certificate, ...(issuer.data.ca_chain ?? [])].flatMap(splitPemCertificates)) caPems.add(pem);
      if (this.crlMode !== 'off') {
        const crl = await this.session.call<CrlResponse>('read-crl', `read the CRL of issuer ${id} of ${this.mount}`, (client) =>
          client.read(`${this.mount}/issuer/${id}/crl`),
        );
        if (crl.data.crl) crlPems.push(crl.data.crl);
      }
    }
    return { caPems: [...caPems], crlPems, crlNextUpdate: earliestNextUpdate(crlPems), version: issuerVersion(listed.data.keys) };
  }

  /**
   * Revokes what the configuration asks for, then stops the session. The certificate is revoked
   * with `revoke-with-key` (the key proves ownership), so the policy needs no power to revoke
   * other services' certificates. Failures are reported, never fatal: we are shutting down.
   */
  async close(): Promise<string[]> {
    const problems: string[] = [];
    if (this.revokeOnShutdown.certificate && this.#last) {
      const last = this.#last;
      await this.session
        .call('revoke', `revoke certificate ${last.serial}`, (client) =>
          client.write(`${this.mount}/revoke-with-key`, { serial_number: last.serial, private_key: last.keyPem }),
        )
        .catch((err: unknown) => problems.push(err instanceof Error ? err.message : String(err)));
    }
    if (this.revokeOnShutdown.token) {
      await this.session.revokeToken().catch((err: unknown) => problems.push(err instanceof Error ? err.message : String(err)));
    }
    this.session.close();
    return problems;
  }
}

/** The issuer set as one comparable string, whatever order Vault lists it in. */
function issuerVersion(ids: string[] | undefined): string {
  return [...(ids ?? [])].sort().join(',');
}

function isSelfIssuedPem(pem: string): boolean {
  const cert = new X509Certificate(pem);
  return cert.subject === cert.issuer;
}
