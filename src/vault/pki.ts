/** PKI secrets engine calls: issue a certificate for a role and read the mount's CA chain. */
import { X509Certificate } from 'node:crypto';
import { ErrorCodes, SidecarError } from '../errors.js';
import type { CertificateBundle } from '../identity/bundle.js';
import { splitPemCertificates } from '../identity/bundle.js';
import { earliestNextUpdate } from '../identity/crl-dates.js';
import { createKeyAndCsr, type KeyType } from '../identity/csr.js';
import type { CertificateSource, RequestedIdentity } from '../identity/source.js';
import type { CrlGap, TrustMaterial } from '../identity/trust.js';
import type { VaultSession } from './auth.js';
import type { VaultClient } from './client.js';
import { vaultStatus } from './errors.js';
import { crlDistributionPoints, vaultCrlRead } from './parent-crl.js';

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
  /** `key_info[id].key_id` is empty for an issuer whose key is not on the mount (a root imported with its intermediate). */
  data: { keys?: string[]; key_info?: Record<string, { key_id?: string } | undefined> };
}

interface IssuerResponse {
  data: { certificate: string; ca_chain?: string[]; issuer_name?: string };
}

export interface VaultPkiSourceOptions {
  readonly mount: string;
  readonly role: string;
  /** vault.pki.crl; soft by default. */
  readonly crlMode?: 'soft' | 'closed' | 'off' | undefined;
  /** What to revoke at shutdown; nothing by default. */
  readonly revokeOnShutdown?: { certificate: boolean; token: boolean } | undefined;
  /** sign (a CSR: the key never leaves the pod) or issue; sign by default. */
  readonly method?: 'sign' | 'issue' | undefined;
  readonly keyType?: KeyType | undefined;
  /** The clock (ms since the epoch); Date.now by default. */
  readonly now?: (() => number) | undefined;
}

export class VaultPkiSource implements CertificateSource {
  readonly kind = 'vault';

  /** The last certificate issued, for revocation at shutdown. */
  #last: { serial: string; keyPem: string; certPem: string } | undefined;
  /** The last CRL read per issuer id: kept in use while a later read fails. */
  #crls = new Map<string, string>();
  /** Conditional reads (see #readIfModified): the last answer per path, and when it was read (our clock). */
  #cached = new Map<string, { readonly readAt: number; readonly body: unknown }>();
  /**
   * How far ahead of Vault's clock ours can be, at most: learnt from the last certificate (our
   * clock when its answer came, minus the notBefore Vault wrote). Undefined until one is issued;
   * until then every read is unconditional.
   */
  #skewBoundMs: number | undefined;

  private readonly mount: string;
  private readonly role: string;
  private readonly crlMode: 'soft' | 'closed' | 'off';
  private readonly revokeOnShutdown: { certificate: boolean; token: boolean };
  private readonly method: 'sign' | 'issue';
  private readonly keyType: KeyType;
  readonly #now: () => number;

  constructor(
    readonly session: VaultSession,
    opts: VaultPkiSourceOptions,
  ) {
    this.mount = opts.mount;
    this.role = opts.role;
    this.crlMode = opts.crlMode ?? 'soft';
    this.revokeOnShutdown = opts.revokeOnShutdown ?? { certificate: false, token: false };
    this.method = opts.method ?? 'sign';
    this.keyType = opts.keyType ?? 'ec-p256';
    this.#now = opts.now ?? Date.now;
  }

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
    this.#learnSkew(data.certificate);
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
   *
   * A CRL that cannot be read is reported in `crlMissing` — unless one was read before from the
   * same place, which stays in use (its nextUpdate still governs it). See parent-crl.ts for the
   * root above an intermediate.
   */
  async fetchTrust(): Promise<TrustMaterial> {
    const listed = await this.session.call<ListResponse>('list-issuers', `list issuers of ${this.mount}`, (client) =>
      client.list(`${this.mount}/issuers`),
    );
    const ids = listed.data.keys ?? [];
    if (ids.length === 0) {
      // Between deleting a CA and creating the next one: trusting nothing would refuse every peer.
      throw new SidecarError(ErrorCodes.TRUST_REFRESH_FAILED, `the PKI mount ${this.mount} lists no issuers`);
    }
    const issuers: { id: string; name: string; pems: string[] }[] = [];
    for (const id of ids) {
      const issuer = await this.session.call<IssuerResponse>('read-issuer', `read issuer ${id} of ${this.mount}`, (client) =>
        this.#readIfModified(client, `${this.mount}/issuer/${id}/json`),
      );
      const pems = [issuer.data.certificate, ...(issuer.data.ca_chain ?? [])].flatMap(splitPemCertificates);
      issuers.push({ id, name: issuer.data.issuer_name || id, pems: [...new Set(pems)] });
    }
    // The root above an intermediate (a keyless issuer that is the parent of another listed one)
    // anchors chains but never issues a peer's leaf directly: a leaf it signed came from another
    // mount, under another mount's roles. Any other issuer signs peers — a keyless one too: an old
    // CA imported without its key is the overlap step of a CA replacement, its leaves still live.
    const signerPems = issuers
      .filter((issuer) => {
        if (listed.data.key_info?.[issuer.id]?.key_id !== '') return true;
        return !issuers.some((other) => other.pems.some((pem, i) => other.pems[i + 1] === issuer.pems[0] && pem !== issuer.pems[0]));
      })
      .flatMap((issuer) => issuer.pems.slice(0, 1));
    const crlPems = new Set<string>();
    const crlMissing: CrlGap[] = [];
    if (this.crlMode !== 'off') {
      const crls = new Map<string, string>();
      /** Reads a CRL, or falls back to the last one read from the same place. */
      const readCrl = async (key: string, label: string, path: string, field: 'crl' | 'certificate'): Promise<string | Error> => {
        const pem = await this.session
          .call<{ data: Record<string, string | undefined> }>('read-crl', label, (client) => this.#readIfModified(client, path))
          .then(
            (response) => response.data[field] || new Error('Vault returned no CRL'),
            (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
          );
        const kept = typeof pem === 'string' ? pem : this.#crls.get(key);
        if (kept) {
          crls.set(key, kept);
          crlPems.add(kept);
          return kept;
        }
        return pem;
      };
      for (const issuer of issuers) {
        // A parent (the root above an intermediate) has no key, so no CRL, on an intermediate
        // mount: read it first where its children's CRL distribution points say, so an
        // intermediate setup does not log a failed Vault call (HTTP 500) at every refresh.
        const children = issuers.flatMap((other) => other.pems.filter((_, i) => other.pems[i + 1] === issuer.pems[0]));
        const urls = [...new Set(children.flatMap(crlDistributionPoints))];
        let found = false;
        for (const url of urls) {
          const read = vaultCrlRead(url);
          if (read && typeof (await readCrl(url, `read the CRL at ${url}`, read.path, read.field)) === 'string') found = true;
        }
        if (found) continue;
        const own = await readCrl(
          issuer.id,
          `read the CRL of issuer ${issuer.id} of ${this.mount}`,
          `${this.mount}/issuer/${issuer.id}/crl`,
          'crl',
        );
        if (typeof own === 'string') continue;
        const keyless = /unable to find CRL/i.test(own.message);
        crlMissing.push({
          issuer: issuer.name,
          reason:
            children.length > 0
              ? `its key is not on this mount and the certificates it signed name no CRL on Vault; set crl_distribution_points on its own mount (vault write <mount>/config/urls crl_distribution_points=<VAULT_ADDR>/v1/<mount>/crl) and reissue them`
              : keyless
                ? 'its key is not on the mount, so Vault keeps no CRL for it'
                : own.message,
          retry: children.length > 0 ? urls.length > 0 : !keyless,
        });
      }
      this.#crls = crls;
    }
    return {
      caPems: [...new Set(issuers.flatMap((issuer) => issuer.pems))],
      signerPems: [...new Set(signerPems)],
      crlPems: [...crlPems],
      crlNextUpdate: earliestNextUpdate([...crlPems]),
      crlMissing,
      version: issuerVersion(listed.data.keys),
    };
  }

  /**
   * A read that Vault answers 304 (no body) when nothing changed since the last one: PKI honours
   * If-Modified-Since on issuer and CRL reads (Vault 1.12+) when the mount passes the header
   * through (`vault secrets tune -passthrough-request-headers=If-Modified-Since`, which `vault
   * setup` sets and `doctor` checks); without it Vault answers 200 and nothing is lost. The date
   * sent is our clock at the previous read minus how far ahead of Vault it may be (#skewBoundMs)
   * and 10 s of drift: Vault compares it with its own clock's modification time, so a date
   * ahead of Vault's would hide a change made just after our read. Too early only costs a body.
   *
   * The previous read is the last full (200) one: a 304 does not move it, so a change a 304 hid
   * (Vault's clock lagging ours by more than the bound, after a failover) is read once a renewal
   * learns the larger skew. And a body older than FULL_READ_AFTER_MS is read unconditionally, so
   * no clock error keeps a revocation hidden longer than that.
   */
  async #readIfModified<T>(client: VaultClient, path: string): Promise<T> {
    const startedAt = this.#now();
    const cached = this.#cached.get(path);
    const conditional = cached !== undefined && this.#skewBoundMs !== undefined && Math.abs(startedAt - cached.readAt) < FULL_READ_AFTER_MS;
    const since = conditional ? cached.readAt - (this.#skewBoundMs ?? 0) - SKEW_SLACK_MS : undefined;
    try {
      const body: unknown = await client.read(
        path,
        since === undefined ? undefined : { headers: { 'If-Modified-Since': new Date(since).toUTCString() } },
      );
      this.#cached.set(path, { readAt: startedAt, body });
      return body as T;
    } catch (err) {
      if (vaultStatus(err) !== 304 || !cached) throw err;
      return cached.body as T;
    }
  }

  #learnSkew(certPem: string): void {
    try {
      this.#skewBoundMs = Math.max(0, this.#now() - new Date(new X509Certificate(certPem).validFrom).getTime());
    } catch {
      // The renewer reports a certificate it cannot parse; reads stay unconditional.
    }
  }

  /**
   * Revokes what the configuration asks for, then stops the session. The certificate is revoked
   * with `revoke-with-key` (the key proves ownership), so the policy needs no power to revoke
   * other services' certificates. It sends the certificate, not its serial: a role with
   * `no_store=true` (what `vault setup` makes) keeps no copy, and Vault can then revoke only what it
   * is shown ("certificate with serial … not found" otherwise); it checks the signature against the
   * mount's issuers. Failures are reported, never fatal: we are shutting down.
   */
  async close(): Promise<string[]> {
    const problems: string[] = [];
    if (this.revokeOnShutdown.certificate && this.#last) {
      const last = this.#last;
      await this.session
        .call('revoke', `revoke certificate ${last.serial}`, (client) =>
          client.write(`${this.mount}/revoke-with-key`, { certificate: last.certPem, private_key: last.keyPem }),
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

/** Clock drift allowed between two reads of the same path, on top of the skew measured at issue. */
const SKEW_SLACK_MS = 10_000;
/** How old a body may get before it is read again without If-Modified-Since (a bound on any clock error). */
const FULL_READ_AFTER_MS = 2 * 60 * 60 * 1000;

/** The issuer set as one comparable string, whatever order Vault lists it in. */
function issuerVersion(ids: string[] | undefined): string {
  return [...(ids ?? [])].sort().join(',');
}

function isSelfIssuedPem(pem: string): boolean {
  const cert = new X509Certificate(pem);
  return cert.subject === cert.issuer;
}
