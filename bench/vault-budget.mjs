/**
 * The Vault budget (issue 27, defect 3): what one sidecar costs Vault per hour, counted by Vault
 * itself. Starts a private Vault dev server with a file audit device, sets it up as `vault setup`
 * does (a root mount, an intermediate mount that issues leaves, both passing If-Modified-Since
 * through), runs one sidecar (dist/main.js) with the default trust intervals, and counts the
 * requests in Vault's audit log:
 *   - at steady state: between two renewals, no renewal inside (trust reads only);
 *   - across renewals: from one renewal to the third after it (trust reads + sign calls).
 * Time is SCALED: a 1h certificate, the renewal's outage budget and both trust intervals are
 * divided by --scale (default 120, one hour in 30 s), so a count per scaled hour is a count per
 * real hour. That extrapolation is honest for what the sidecar schedules (intervals, renewals);
 * it leaves out what a real hour adds on top: a Kubernetes/AppRole login when the token's TTL
 * runs out (this run uses a root token), and restarts. Prints requests per sidecar-hour and what
 * 1,000 and 10,000 sidecars cost Vault in requests per second, with how many answered 304.
 *
 * Usage: npm run bench:vault [-- --scale 120 --hours 2]   (VAULT_BIN names the vault binary;
 * default: the one `npm test` built in ~/.cache/vault-mtls-sidecar/vault/<version>/vault)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const SCALE = option('scale', 120);
const HOURS = option('hours', 2);
const HOUR_MS = 3_600_000 / SCALE;
const ROOT = path.resolve(import.meta.dirname, '..');
const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-vault-budget-'));
const children = [];
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
process.on('SIGINT', () => process.exit(130));

function vaultBinary() {
  if (process.env.VAULT_BIN) return process.env.VAULT_BIN;
  const base = path.join(homedir(), '.cache/vault-mtls-sidecar/vault');
  const versions = existsSync(base) ? readdirSync(base).sort() : [];
  const found = versions.map((v) => path.join(base, v, 'vault')).filter(existsSync).at(-1);
  if (!found) throw new Error(`no vault binary: set VAULT_BIN or run npm test once (it builds one into ${base})`);
  return found;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function api(address, method, p, body) {
  const res = await fetch(`${address}/v1/${p}`, {
    method: method === 'LIST' ? 'GET' : method,
    headers: { 'x-vault-token': 'root', 'content-type': 'application/json', ...(method === 'LIST' ? { 'x-vault-list': 'true' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`vault ${method} ${p}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : {};
}

async function until(what, test, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await test().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// 1. Vault, set up as `vault setup` sets it up, with a file audit device.
const vaultPort = await freePort();
const address = `http://127.0.0.1:${vaultPort}`;
const vault = spawn(vaultBinary(), ['server', '-dev', '-dev-root-token-id=root', `-dev-listen-address=127.0.0.1:${vaultPort}`, '-dev-no-store-token'], {
  env: { PATH: process.env.PATH, HOME: dir },
  stdio: 'ignore',
});
children.push(vault);
await until('vault', async () => (await fetch(`${address}/v1/sys/health`)).ok, 30_000);
const auditFile = path.join(dir, 'audit.log');
for (const mount of ['pki', 'pki_int']) {
  await api(address, 'POST', `sys/mounts/${mount}`, { type: 'pki', config: { max_lease_ttl: '87600h', passthrough_request_headers: ['If-Modified-Since'] } });
  await api(address, 'POST', `sys/mounts/${mount}/tune`, { passthrough_request_headers: ['If-Modified-Since'] });
  await api(address, 'POST', `${mount}/config/urls`, {
    issuing_certificates: [`${address}/v1/${mount}/ca`],
    crl_distribution_points: [`${address}/v1/${mount}/crl`],
  });
}
await api(address, 'POST', 'pki/root/generate/internal', { common_name: 'budget root', key_type: 'ec', ttl: '87600h' });
const csr = await api(address, 'POST', 'pki_int/intermediate/generate/internal', { common_name: 'budget intermediate', key_type: 'ec' });
const signed = await api(address, 'POST', 'pki/root/sign-intermediate', { csr: csr.data.csr, format: 'pem_bundle', ttl: '43800h' });
await api(address, 'POST', 'pki_int/intermediate/set-signed', { certificate: signed.data.certificate });
await api(address, 'POST', 'pki_int/roles/budget.default', {
  allowed_domains: ['budget.default.svc'],
  allow_bare_domains: true,
  server_flag: true,
  client_flag: true,
  key_type: 'ec',
  key_bits: 256,
  max_ttl: '24h',
  no_store: true,
});
await api(address, 'PUT', 'sys/audit/budget', { type: 'file', options: { file_path: auditFile } });
// The audit log shows the If-Modified-Since each read sent (not hashed: it is only a date).
await api(address, 'PUT', 'sys/config/auditing/request-headers/If-Modified-Since', { hmac: false });

// 2. One sidecar: default trust intervals and a 1h certificate, all scaled.
const defaults = { refreshInterval: 1800, issuerCheckInterval: 300 };
const fromConfig = await readDefaults();
const adminPort = await freePort();
const appPort = await freePort();
const config = path.join(dir, 'sidecar.yaml');
writeFileSync(
  config,
  JSON.stringify({
    vault: {
      address,
      pki: {
        mount: 'pki_int',
        role: 'budget.default',
        refreshInterval: fromConfig.refreshInterval / SCALE,
        issuerCheckInterval: fromConfig.issuerCheckInterval / SCALE,
      },
    },
    identity: { commonName: 'budget.default.svc', ttl: 3600 / SCALE, renewal: { outageBudget: 120 / SCALE } },
    inbound: [{ name: 'app', listen: `127.0.0.1:${await freePort()}`, target: `127.0.0.1:${appPort}` }],
    admin: { listen: `127.0.0.1:${adminPort}` },
  }),
);
/** The defaults of the built sidecar, as `config check` prints them. */
async function readDefaults() {
  const out = await run(process.execPath, [path.join(ROOT, 'dist/main.js'), 'config', 'check', '-c', writeMinimal()]);
  const pick = (key) => Number(new RegExp(`${key}: (\\d+(?:\\.\\d+)?)`).exec(out)?.[1] ?? defaults[key]);
  return { refreshInterval: pick('refreshInterval'), issuerCheckInterval: pick('issuerCheckInterval') };
}
function writeMinimal() {
  const file = path.join(dir, 'minimal.yaml');
  writeFileSync(file, 'vault:\n  pki: { role: x }\nidentity: { commonName: x.test }\n');
  return file;
}
function run(command, argv) {
  return new Promise((resolve) => {
    const child = spawn(command, argv, { env: { ...process.env, VAULT_TOKEN: 'x', VAULT_ADDR: 'http://127.0.0.1:1' } });
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
    });
    child.on('exit', () => resolve(out));
  });
}

const sidecar = spawn(process.execPath, [path.join(ROOT, 'dist/main.js'), 'run', '--config', config, '--log-level', 'warn'], {
  env: { ...process.env, VAULT_TOKEN: 'root', VAULT_ADDR: address },
  stdio: ['ignore', 'ignore', 'inherit'],
});
children.push(sidecar);

const audit = () =>
  readFileSync(auditFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
const requests = () => audit().filter((e) => e.type === 'request' && e.request?.path !== 'sys/audit/budget');
const signs = (entries) => entries.filter((e) => /\/sign\//.test(e.request.path));
const notModified = (entries) => entries.filter((e) => e.type === 'response' && e.response?.data?.http_status_code === 304);

// 3. Count. Steady state starts at the first renewal (start-up's reads are paid once per pod start).
await until('the first renewal', async () => signs(requests()).length >= 2, 10 * HOUR_MS);
const startIndex = audit().length;
const startedAt = Date.now();
await new Promise((r) => setTimeout(r, HOURS * HOUR_MS));
const window = audit().slice(startIndex);
const hours = (Date.now() - startedAt) / HOUR_MS;
const asked = window.filter((e) => e.type === 'request');
const renewals = signs(asked).length;
const trustOnly = asked.length - renewals;
const perHour = asked.length / hours;
const byKind = {};
for (const e of asked) {
  const kind = e.request.operation === 'list' ? 'LIST issuers' : /\/sign\//.test(e.request.path) ? 'sign' : /crl/.test(e.request.path) ? 'read CRL' : /issuer\//.test(e.request.path) ? 'read issuer' : e.request.path;
  byKind[kind] = (byKind[kind] ?? 0) + 1;
}
console.log(`Vault budget of one sidecar (defaults: issuerCheckInterval ${fromConfig.issuerCheckInterval}s, refreshInterval ${fromConfig.refreshInterval}s, 1h certificates; time scaled 1:${SCALE}, ${hours.toFixed(2)} scaled hours)`);
console.log(`  requests in the window: ${asked.length} (${Object.entries(byKind).map(([k, n]) => `${k} ${n}`).join(', ')}); answered 304: ${notModified(window).length}`);
console.log(`  per sidecar-hour: ${perHour.toFixed(1)} (trust reads ${(trustOnly / hours).toFixed(1)}, renewals ${(renewals / hours).toFixed(1)})  target ≤ 30: ${perHour <= 30 ? '✓' : '✗'}`);
for (const fleet of [1000, 10000]) console.log(`  ${fleet.toLocaleString('en')} sidecars: ${((perHour * fleet) / 3600).toFixed(1)} Vault requests/s`);
console.log('  (extrapolated from scaled time: logins when a token expires and pod restarts come on top)');
process.exit(0);
