/**
 * The Vault side of `doctor`: reachable (and its TLS), the clock, login, the token's policy, the
 * PKI role asked for a real certificate with the configured names, the trust bundle and CRLs.
 * Each check uses the code `run` uses (VaultSession, VaultPkiSource, verifyBundle), so what passes
 * here is what the sidecar will do.
 */
import { pino } from 'pino';
import type { Config } from '../config/schema/index.js';
import { errorMessage } from '../errors.js';
import type { CertificateBundle } from '../identity/bundle.js';
import { describeBundle } from '../identity/bundle.js';
import { requestedIdentity } from '../identity/create-source.js';
import { earliestNextUpdate } from '../identity/crl-dates.js';
import type { TrustMaterial } from '../identity/trust.js';
import { verifyBundle } from '../identity/verify.js';
import { VaultSession } from '../vault/auth.js';
import { createVaultClient } from '../vault/client.js';
import { vaultStatus } from '../vault/errors.js';
import { VaultPkiSource } from '../vault/pki.js';
import { type CheckResult, fail, pass, roughDuration, skip, warn } from './report.js';
import { health } from './vault-reachable.js';

/** What the Vault checks hand on to the listener checks: a certificate and what it must chain to. */
export interface VaultOutcome {
  readonly checks: CheckResult[];
  readonly bundle?: CertificateBundle;
  readonly trust?: TrustMaterial;
}

const LOGIN_FIXES: Record<string, string> = {
  token: 'the token (VAULT_TOKEN or vault.auth.tokenFile) is wrong, revoked or expired: get a new one',
  approle: 'check the role id and the secret id (not expired, not used up: secret_id_num_uses), and the AppRole mount',
  kubernetes:
    "check the Vault role's bound_service_account_names and _namespaces against this pod, its audience against the token's, and that Vault can reach the TokenReview API (auth/<mount>/config)",
  jwt: "check the Vault role's bound_audiences (Kubernetes tokens always carry one), bound_subject, and the auth mount's jwks_url or oidc_discovery_url",
};

/** Capabilities on a path that allow an operation (root and sudo allow everything). */
const allows = (capabilities: readonly string[] | undefined, needed: string) =>
  (capabilities ?? []).some((c) => c === 'root' || c === needed || (needed === 'update' && c === 'create'));

/** Login, the token's policy, the PKI role (a real certificate), trust and CRLs. */
export async function vaultChecks(config: Config): Promise<VaultOutcome> {
  const vault = config.vault;
  if (!vault) return { checks: [] };
  const checks = await health(vault);
  const afterLogin = ['vault.policy', 'pki.role', 'trust.bundle', 'trust.crl', 'trust.conditional'];
  if (checks[0]?.status === 'fail') {
    return { checks: [...checks, ...['vault.auth', ...afterLogin].map((id) => skip(id, 'needs vault.reachable'))] };
  }

  const session = new VaultSession({
    client: createVaultClient(vault),
    auth: vault.auth,
    address: vault.address,
    logger: pino({ level: 'silent' }),
    envToken: vault.token,
    deadlineMs: vault.requestTimeout * 1000,
  });
  try {
    let token: { policies?: string[]; ttl?: number; renewable?: boolean; display_name?: string };
    try {
      token = (await session.call<{ data: typeof token }>('lookup-self', 'token lookup-self', (c) => c.tokenLookupSelf())).data;
    } catch (err) {
      checks.push(fail('vault.auth', `${vault.auth.method} login: ${errorMessage(err)}`, LOGIN_FIXES[vault.auth.method] ?? ''));
      return { checks: [...checks, ...afterLogin.map((id) => skip(id, 'needs vault.auth'))] };
    }
    const ttl = token.ttl
      ? `token TTL ${roughDuration(token.ttl)}${token.renewable ? ', renewable' : ', not renewable'}`
      : 'token never expires';
    checks.push(
      pass(
        'vault.auth',
        `${vault.auth.method} login as ${token.display_name ?? '?'}; policies ${(token.policies ?? []).join(', ')}; ${ttl}`,
      ),
    );

    const { mount, role, method } = vault.pki;
    const issuePath = `${mount}/${method}/${role}`;
    // revokeOnShutdown.certificate revokes with the certificate and its key (revoke-with-key).
    const revokePath = vault.revokeOnShutdown.certificate ? `${mount}/revoke-with-key` : undefined;
    // Only the issue call needs a grant: a PKI mount serves its issuers and CRLs without a token.
    try {
      const paths = [issuePath, ...(revokePath ? [revokePath] : [])];
      const answer = await session.call<Record<string, unknown>>('capabilities', 'sys/capabilities-self', (c) =>
        c.write('sys/capabilities-self', { paths }),
      );
      const granted = (path: string) =>
        (answer[path] ?? (answer.data as Record<string, unknown> | undefined)?.[path]) as string[] | undefined;
      const missing = paths.filter((path) => !allows(granted(path), 'update'));
      if (missing.length === 0)
        checks.push(pass('vault.policy', `may ${method} on ${issuePath}${revokePath ? ` and revoke its own certificate` : ''}`));
      else {
        checks.push(
          fail(
            'vault.policy',
            missing
              .map(
                (path) => `the token's policies do not grant update on ${path} (it has: ${(granted(path) ?? []).join(', ') || 'nothing'})`,
              )
              .join('; '),
            `add ${missing.map((path) => `path "${path}" { capabilities = ["update"] }`).join(' and ')} to a policy of the ${vault.auth.method} role (docs/vault-setup.md, step 3; vault setup grants both)`,
          ),
        );
      }
    } catch (err) {
      checks.push(warn('vault.policy', `cannot ask Vault (${errorMessage(err)})`, 'pki.role below still shows what Vault allows'));
    }

    const source = new VaultPkiSource(session, { mount, role, crlMode: vault.pki.crl, method, keyType: config.identity.keyType });
    const wanted = requestedIdentity(config);
    let bundle: CertificateBundle | undefined;
    try {
      bundle = await source.issue(wanted);
      verifyBundle(bundle, wanted, new Date());
      checks.push(roleResult(bundle, wanted.ttl, issuePath));
    } catch (err) {
      checks.push(
        fail(
          'pki.role',
          errorMessage(err),
          `the role decides which names it signs: compare identity (commonName, dnsNames, uriSans, ipSans, keyType) with vault read ${mount}/roles/${role} (allowed_domains, allow_subdomains, allowed_uri_sans, key_type); vault setup names it <service>.<namespace>`,
        ),
      );
      bundle = undefined;
    }

    let trust: TrustMaterial | undefined;
    try {
      trust = await source.fetchTrust();
      checks.push(pass('trust.bundle', `${trust.caPems.length} issuer certificate(s) from ${mount}`));
    } catch (err) {
      checks.push(
        fail(
          'trust.bundle',
          errorMessage(err),
          `check vault.pki.mount: a PKI mount with a CA (vault list ${mount}/issuers); with a namespace, vault.namespace`,
        ),
      );
      checks.push(skip('trust.crl', 'needs trust.bundle'), skip('trust.conditional', 'needs trust.bundle'));
      return { checks, ...(bundle ? { bundle } : {}) };
    }
    checks.push(crlResult(vault.pki.crl, trust), await conditionalReads(session, mount));
    return { checks, ...(bundle ? { bundle, trust } : { trust }) };
  } finally {
    session.close();
  }
}

/**
 * Whether the mount passes If-Modified-Since through to PKI, so the sidecar's issuer and CRL reads
 * answer 304 when nothing changed: asks for the default issuer "if modified since tomorrow",
 * which PKI answers 304 and a mount without the passthrough answers 200 (unauthenticated read).
 */
async function conditionalReads(session: VaultSession, mount: string): Promise<CheckResult> {
  const tomorrow = new Date(Date.now() + 86_400_000).toUTCString();
  let status: number;
  try {
    status = await session.call('read-issuer', `read the default issuer of ${mount}`, (c) =>
      c.read(`${mount}/issuer/default/json`, { headers: { 'If-Modified-Since': tomorrow } }).then(
        () => 200,
        (err: unknown) => {
          if (vaultStatus(err) === 304) return 304;
          throw err;
        },
      ),
    );
  } catch (err) {
    return warn('trust.conditional', `cannot ask Vault (${errorMessage(err)})`, 'trust.bundle above shows whether the issuers can be read');
  }
  if (status === 304)
    return pass('trust.conditional', `unchanged issuers and CRLs of ${mount} answer 304 (If-Modified-Since passes through)`);
  return warn(
    'trust.conditional',
    `${mount} does not pass If-Modified-Since through, so every trust refresh reads every issuer and CRL in full`,
    `vault secrets tune -passthrough-request-headers=If-Modified-Since ${mount} (vault setup does it; needs Vault 1.12 or later)`,
  );
}

function roleResult(bundle: CertificateBundle, requestedTtl: number, issuePath: string): CheckResult {
  const info = describeBundle(bundle);
  const names = [...info.uris, ...info.dnsNames, ...info.ipAddresses].join(', ') || 'no SANs';
  const lifetime = (info.notAfter.getTime() - info.notBefore.getTime()) / 1000;
  const text = `Vault signed the configured names (${names}) for ${roughDuration(lifetime)}`;
  // Vault backdates notBefore, so the lifetime runs a little past the TTL; shorter means capped.
  if (lifetime < requestedTtl * 0.9) {
    return warn(
      'pki.role',
      `${text}; identity.ttl asks for ${roughDuration(requestedTtl)}`,
      `the role's max_ttl or the mount's max-lease-ttl caps it; raise it (vault write ${issuePath.replace(/\/(sign|issue)\//, '/roles/')} max_ttl=…) or lower identity.ttl`,
    );
  }
  return pass('pki.role', text);
}

function crlResult(mode: 'soft' | 'closed' | 'off', trust: TrustMaterial): CheckResult {
  if (mode === 'off') return skip('trust.crl', 'vault.pki.crl is off: revoked certificates are accepted');
  const gaps = trust.crlMissing ?? [];
  const next = trust.crlNextUpdate ?? earliestNextUpdate(trust.crlPems);
  if (gaps.length > 0) {
    const which = gaps.map((g) => `${g.issuer} (${g.reason})`).join('; ');
    const fix = "read the CRL with the sidecar's token (vault read <mount>/issuer/<id>/crl) or, for a key-less imported CA, accept it";
    return mode === 'closed'
      ? fail('trust.crl', `no CRL for ${which}: crl closed refuses its certificates`, fix)
      : warn('trust.crl', `no CRL for ${which}: crl soft enforces no CRL until every issuer has one`, fix);
  }
  if (next && next.getTime() <= Date.now()) {
    return fail(
      'trust.crl',
      `a CRL expired at ${next.toISOString()}: OpenSSL refuses every certificate it covers`,
      "rebuild it (vault read <mount>/crl/rotate) and check the mount's auto_rebuild (vault read <mount>/config/crl)",
    );
  }
  return pass('trust.crl', `${trust.crlPems.length} CRL(s)${next ? `, next update ${next.toISOString()}` : ''}`);
}
