/**
 * The first Vault checks of `doctor`, made before any login: whether Vault answers (and its TLS is
 * trusted, and it is unsealed), with the fix for each way it does not, and this host's clock
 * against Vault's.
 */
import { Agent, request } from 'undici';
import type { VaultConfig } from '../config/schema/index.js';
import { errorMessage } from '../errors.js';
import { readVaultCa } from '../vault/client.js';
import { type CheckResult, fail, pass, skip, warn } from './report.js';

/** Clocks further apart than this get a warning; Vault backdates notBefore by 30 s by default. */
const CLOCK_WARN_SECONDS = 5;
const CLOCK_FAIL_SECONDS = 25;

const errorCode = (err: unknown): string | undefined => {
  const e = err as { code?: string; cause?: { code?: string } };
  return e?.cause?.code ?? e?.code;
};

const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
]);

/** A failed sys/health call, as a check with the fix for its cause. */
function unreachable(vault: VaultConfig, err: unknown): CheckResult {
  const code = errorCode(err) ?? 'error';
  const at = vault.address;
  if (TLS_TRUST_CODES.has(code)) {
    return fail(
      'vault.reachable',
      `${at}: Vault's TLS certificate is not trusted (${code})`,
      vault.caCert
        ? `vault.caCert (${vault.caCert}) is not the CA that signed Vault's certificate; point it at that CA`
        : "set vault.caCert (or VAULT_CACERT) to the CA that signed Vault's certificate",
    );
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return fail(
      'vault.reachable',
      `${at}: Vault's certificate does not carry the host name of vault.address (${code})`,
      "use the name the certificate carries in vault.address, or reissue Vault's certificate with this name",
    );
  }
  if (/WRONG_VERSION_NUMBER|EPROTO|HPE_|UND_ERR_SOCKET/.test(code)) {
    return fail(
      'vault.reachable',
      `${at}: the server does not speak ${at.startsWith('https') ? 'TLS' : 'plain HTTP'} there (${code})`,
      `check the scheme of vault.address: ${at.startsWith('https') ? 'http://' : 'https://'}… may be what the server expects`,
    );
  }
  const fixes: Record<string, string> = {
    ECONNREFUSED: 'nothing listens there: check vault.address (or VAULT_ADDR) and that Vault is running',
    ENOTFOUND: "the host name does not resolve: check vault.address and the pod's DNS",
    EAI_AGAIN: "DNS did not answer: check the pod's DNS",
    UND_ERR_CONNECT_TIMEOUT: 'no answer to connect: check network policies and firewalls between this pod and Vault',
    UND_ERR_HEADERS_TIMEOUT: `Vault accepted the connection but did not answer within vault.requestTimeout (${vault.requestTimeout}s)`,
  };
  return fail(
    'vault.reachable',
    `${at}: ${code} (${errorMessage(err)})`,
    fixes[code] ?? 'check vault.address and the network path to Vault',
  );
}

/** sys/health without a token: reachable, TLS verified, unsealed; its Date header gives the clock. */
export async function health(vault: VaultConfig): Promise<CheckResult[]> {
  let ca: string | undefined;
  try {
    ca = readVaultCa(vault);
  } catch (err) {
    return [
      fail(
        'vault.reachable',
        errorMessage(err),
        "point vault.caCert (or VAULT_CACERT) at the PEM file of the CA that signed Vault's certificate",
      ),
      skip('vault.clock', 'needs vault.reachable'),
    ];
  }
  const dispatcher = new Agent({
    connect: {
      rejectUnauthorized: !vault.skipVerify,
      ...(ca ? { ca } : {}),
      timeout: vault.requestTimeout * 1000,
    },
    headersTimeout: vault.requestTimeout * 1000,
    bodyTimeout: vault.requestTimeout * 1000,
  });
  try {
    const sent = Date.now();
    const res = await request(`${vault.address}/v1/sys/health?standbyok=true&perfstandbyok=true`, {
      dispatcher,
      headers: vault.namespace ? { 'x-vault-namespace': vault.namespace } : {},
    });
    const received = Date.now();
    const body = (await res.body.json().catch(() => ({}))) as {
      sealed?: boolean;
      initialized?: boolean;
      version?: string;
      standby?: boolean;
    };
    const checks: CheckResult[] = [];
    const what = `${vault.address} answered in ${received - sent} ms (Vault ${body.version ?? 'version unknown'}${body.standby ? ', standby' : ''})`;
    const tls = vault.address.startsWith('https') ? (vault.skipVerify ? ', TLS NOT verified' : ', TLS verified') : ', plain HTTP';
    if (res.statusCode === 503 || body.sealed) {
      checks.push(fail('vault.reachable', `${what}: Vault is sealed`, 'unseal Vault (vault operator unseal) or check its auto-unseal'));
    } else if (res.statusCode === 501) {
      checks.push(fail('vault.reachable', `${what}: Vault is not initialized`, 'initialize Vault (vault operator init)'));
    } else if (![200, 429, 472, 473].includes(res.statusCode)) {
      checks.push(fail('vault.reachable', `${what}: sys/health answered HTTP ${res.statusCode}`, 'is vault.address a Vault server?'));
    } else if (vault.skipVerify && vault.address.startsWith('https')) {
      checks.push(warn('vault.reachable', `${what}${tls}`, 'vault.skipVerify accepts any server as Vault: set vault.caCert instead'));
    } else if (!vault.address.startsWith('https') && !isLoopback(vault.address)) {
      checks.push(
        warn(
          'vault.reachable',
          `${what}${tls}`,
          'tokens and (with method issue) private keys cross the network in clear: use https:// with vault.caCert',
        ),
      );
    } else checks.push(pass('vault.reachable', `${what}${tls}`));
    checks.push(clock(res.headers.date, sent, received));
    return checks;
  } catch (err) {
    return [unreachable(vault, err), skip('vault.clock', 'needs vault.reachable')];
  } finally {
    await dispatcher.close();
  }
}

const isLoopback = (address: string) => ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(address).hostname);

/** This host's clock against Vault's (the HTTP Date header, 1 s resolution, taken at the round trip's midpoint). */
function clock(dateHeader: string | string[] | undefined, sent: number, received: number): CheckResult {
  const vaultTime = Date.parse(String(dateHeader ?? ''));
  if (Number.isNaN(vaultTime)) return skip('vault.clock', 'Vault sent no Date header');
  // The header is truncated to the second: compare against its middle.
  const skew = ((sent + received) / 2 - (vaultTime + 500)) / 1000;
  const text = `this host's clock is ${Math.abs(skew).toFixed(1)} s ${skew >= 0 ? 'ahead of' : 'behind'} Vault's`;
  const fix =
    'keep every clock within a few seconds (NTP): a certificate from a clock ahead is "not yet valid" to peers behind it, and Vault backdates notBefore by only 30 s';
  if (Math.abs(skew) > CLOCK_FAIL_SECONDS) return fail('vault.clock', text, fix);
  if (Math.abs(skew) > CLOCK_WARN_SECONDS) return warn('vault.clock', text, fix);
  return pass('vault.clock', text);
}
