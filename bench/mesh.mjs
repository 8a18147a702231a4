/**
 * The mesh-path benchmark: load generator (wrk) → outbound sidecar → inbound sidecar → app, next
 * to the same path through an nginx pair configured as a production user would, a ghostunnel pair
 * (the Go L4 tunnel, built by bench/install-ghostunnel.sh) and a direct baseline (wrk → app). The
 * app is nginx serving a small body and a 1 MiB file, so it is never the bottleneck. Prints req/s,
 * p50/p99, MB/s, CPU time per request, and RSS idle and peak per proxy process, as ratios to the
 * nginx pair and to direct, then the issue-13 targets with ✓/✗ — all from one run (the machine is
 * shared and noisy). Each figure is the median of --runs measured runs after one warm-up run; the
 * runs of a scenario alternate between the paths.
 *
 * Usage: npm run bench [-- --seconds 8 --connections 32 --runs 3 --only "keep-alive,sidecar http" --quick]
 * (--only keeps the scenarios and sidecar paths whose names contain one of the comma-separated
 * words; direct, nginx and ghostunnel always run, since the ratios need them, unless --quick: then
 * only the sidecars run). BENCH_NODE_FLAGS replaces the node flags of dist/main.js's #! line.
 */
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const SECONDS = option('seconds', 8);
const CONNECTIONS = option('connections', 32);
const RUNS = option('runs', 3);
const GHOSTUNNEL = process.env.BENCH_GHOSTUNNEL;
if (!GHOSTUNNEL) throw new Error('BENCH_GHOSTUNNEL must name the ghostunnel binary (npm run bench sets it)');
const onlyAt = args.indexOf('--only');
const ONLY = onlyAt >= 0 ? args[onlyAt + 1].split(',').map((w) => w.trim()) : undefined;
/** Keeps the names --only mentions; all of them when it mentions none of this kind. */
function pick(names) {
  const chosen = names.filter((n) => ONLY?.some((word) => n.includes(word)));
  return chosen.length ? chosen : names;
}
const ROOT = path.resolve(import.meta.dirname, '..');
const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-bench-'));
const children = [];

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port) {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${port}`);
}

function start(name, command, argv) {
  const child = spawn(command, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c) => {
    err = (err + c).slice(-4000);
  });
  child.on('exit', (code) => {
    if (code && !stopping) console.error(`[bench] ${name} exited with ${code}: ${err}`);
  });
  children.push(child);
  return child;
}

let stopping = false;
function stopAll() {
  stopping = true;
  // SIGTERM first, so profiling sidecars can write their profiles as they exit.
  for (const child of children) child.kill(process.env.BENCH_CPU_PROF ? 'SIGTERM' : 'SIGKILL');
}
process.on('exit', stopAll);
process.on('SIGINT', () => process.exit(130));

/** CPU seconds (user + system) used so far by a process and its children threads. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * A process's resident set now (VmRSS), its private part (RssAnon: what each more pod pays; the rest
 * is the binary's file pages, shared by every process that maps the same file) or its peak since
 * the last resetPeak (VmHWM), in MiB.
 */
function memoryMb(pid, field = 'VmRSS') {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${field}:`));
  return Number(line.split(/\s+/)[1]) / 1024;
}

/** Starts a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM to the current RSS). */
function resetPeak(pid) {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

const median = (values) => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : Number.NaN;
};

/** nginx worker pids of a master (the master itself does no proxying). */
function nginxWorkers(masterPid) {
  const out = execFileSync('pgrep', ['-P', String(masterPid)]).toString().trim();
  return out.split('\n').filter(Boolean).map(Number);
}

function parseWrk(text) {
  const num = (re) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : Number.NaN;
  };
  const latency = (pct) => {
    const m = new RegExp(`\\s${pct}%\\s+([\\d.]+)(us|ms|s)`).exec(text);
    if (!m) return Number.NaN;
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const transfer = /Transfer\/sec:\s+([\d.]+)(KB|MB|GB|B)/.exec(text);
  const mbps = transfer ? Number(transfer[1]) * { B: 1 / 1048576, KB: 1 / 1024, MB: 1, GB: 1024 }[transfer[2]] : Number.NaN;
  const errors = num(/Non-2xx or 3xx responses: (\d+)/) || 0;
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    requests: num(/(\d+) requests in/),
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50: latency(50),
    p99: latency(99),
    mbps,
    errors: errors + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
  };
}

function wrk(port, pathName, close) {
  const argv = ['-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency', '--timeout', '5s'];
  if (close) argv.push('-H', 'Connection: close');
  argv.push(`http://127.0.0.1:${port}${pathName}`);
  return parseWrk(execFileSync('wrk', argv, { timeout: (SECONDS + 20) * 1000 }).toString());
}

// --- certificates: one EC P-256 CA and two leaves, made with openssl as a platform team would ---
const openssl = (...argv) => execFileSync('openssl', argv, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
const caFile = path.join(dir, 'ca.crt');
openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', caFile, '-days', '1',
  '-subj', '/CN=bench CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
const certs = {};
for (const name of ['inbound', 'outbound']) {
  certs[name] = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', certs[name].key, '-out', `${name}.csr`, '-subj', `/CN=${name}.bench`);
  writeFileSync(path.join(dir, `${name}.ext`), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', caFile, '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', certs[name].cert);
  // Readable by the nginx pair's workers; this is a throwaway CA in a temporary directory.
  chmodSync(certs[name].key, 0o644);
}

// --- the app: nginx, one worker, a small body and a 1 MiB file ---
const ports = {};
for (const name of ['app', 'nginxIn', 'nginxOut', 'ghostIn', 'ghostOut', 'sideIn', 'sideOut', 'tcpIn', 'tcpOut', 'adminA', 'adminB', 'adminC', 'adminD']) ports[name] = await freePort();
mkdirSync(path.join(dir, 'www'));
writeFileSync(path.join(dir, 'www', '1m'), Buffer.alloc(1024 * 1024, 97));
// nginx workers run as an unprivileged user; let them read the body and the certificates.
chmodSync(dir, 0o755);
chmodSync(path.join(dir, 'www'), 0o755);

function nginxConf(name, server) {
  const prefix = path.join(dir, `nginx-${name}`);
  mkdirSync(prefix, { recursive: true });
  const file = path.join(prefix, 'nginx.conf');
  writeFileSync(
    file,
    `worker_processes 1;
daemon off;
master_process on;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body; proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fcgi; uwsgi_temp_path ${prefix}/uwsgi; scgi_temp_path ${prefix}/scgi;
  keepalive_requests 100000;
  ${server}
}
`,
  );
  return start(`nginx ${name}`, 'nginx', ['-p', prefix, '-c', file, '-e', `${prefix}/error.log`]);
}

const app = nginxConf(
  'app',
  `server { listen 127.0.0.1:${ports.app}; location = /small { return 200 "ok\\n"; } location = /1m { root ${dir}/www; } }`,
);
// The nginx pair, as a production user configures it: verified client certificates inbound,
// client certificate + upstream keepalive + session reuse outbound.
const nginxIn = nginxConf(
  'in',
  `upstream app { server 127.0.0.1:${ports.app}; keepalive 64; }
  server {
    listen 127.0.0.1:${ports.nginxIn} ssl;
    ssl_certificate ${certs.inbound.cert}; ssl_certificate_key ${certs.inbound.key};
    ssl_client_certificate ${caFile}; ssl_verify_client on; ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-Client-Cert $ssl_client_s_dn; }
  }`,
);
const nginxOut = nginxConf(
  'out',
  `upstream mesh { server 127.0.0.1:${ports.nginxIn}; keepalive 64; }
  server {
    listen 127.0.0.1:${ports.nginxOut};
    location / { proxy_pass https://mesh; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_certificate ${certs.outbound.cert}; proxy_ssl_certificate_key ${certs.outbound.key};
      proxy_ssl_trusted_certificate ${caFile}; proxy_ssl_verify on; proxy_ssl_name localhost;
      proxy_ssl_server_name on; proxy_ssl_session_reuse on; }
  }`,
);

// The ghostunnel pair, as its README runs it: server verifies client certificates from the CA
// (any name: --allow-all still requires a valid client certificate), client presents its own.
const ghostIn = start('ghostunnel server', GHOSTUNNEL, [
  'server', '--listen', `127.0.0.1:${ports.ghostIn}`, '--target', `127.0.0.1:${ports.app}`,
  '--cert', certs.inbound.cert, '--key', certs.inbound.key, '--cacert', caFile, '--allow-all', '--quiet=all',
]);
const ghostOut = start('ghostunnel client', GHOSTUNNEL, [
  'client', '--listen', `127.0.0.1:${ports.ghostOut}`, '--target', `127.0.0.1:${ports.ghostIn}`,
  '--cert', certs.outbound.cert, '--key', certs.outbound.key, '--cacert', caFile, '--override-server-name', 'localhost', '--quiet=all',
]);

/** The node flags the sidecar's bin runs with (its #! line), so the bench measures what ships. */
// BENCH_NODE_FLAGS="..." replaces them, to try other settings before changing the #! line.
const NODE_FLAGS = process.env.BENCH_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? readFileSync(path.join(ROOT, 'dist/main.js'), 'utf8').split('\n')[0].split(/\s+/).slice(3);

function sidecar(name, yaml) {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  // BENCH_CPU_PROF=<dir> writes a V8 CPU profile per sidecar (node --cpu-prof) for `node bench/profile-summary.mjs`.
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
  return start(`sidecar ${name}`, process.execPath, [...NODE_FLAGS, ...profile, path.join(ROOT, 'dist/main.js'), 'run', '--config', file, '--log-level', 'warn']);
}
const files = (name) => `identity: { source: files, files: { cert: ${certs[name].cert}, key: ${certs[name].key}, ca: ${caFile} } }`;
const sideIn = sidecar(
  'in',
  `${files('inbound')}
inbound: [{ name: app, listen: "127.0.0.1:${ports.sideIn}", target: "127.0.0.1:${ports.app}" }]
admin: { listen: "127.0.0.1:${ports.adminA}" }
`,
);
const sideOut = sidecar(
  'out',
  `${files('outbound')}
outbound: [{ name: mesh, listen: "127.0.0.1:${ports.sideOut}", target: "127.0.0.1:${ports.sideIn}", serverName: localhost }]
admin: { listen: "127.0.0.1:${ports.adminB}" }
`,
);
const tcpIn = sidecar(
  'tcp-in',
  `${files('inbound')}
inbound: [{ name: app, mode: tcp, listen: "127.0.0.1:${ports.tcpIn}", target: "127.0.0.1:${ports.app}" }]
admin: { listen: "127.0.0.1:${ports.adminC}" }
`,
);
const tcpOut = sidecar(
  'tcp-out',
  `${files('outbound')}
outbound: [{ name: mesh, mode: tcp, listen: "127.0.0.1:${ports.tcpOut}", target: "127.0.0.1:${ports.tcpIn}", serverName: localhost }]
admin: { listen: "127.0.0.1:${ports.adminD}" }
`,
);

for (const port of Object.values(ports)) await waitForPort(port);
await new Promise((r) => setTimeout(r, 500));

const paths = {
  direct: { port: ports.app, pids: [] },
  nginx: { port: ports.nginxOut, pids: () => [...nginxWorkers(nginxOut.pid), ...nginxWorkers(nginxIn.pid)] },
  ghostunnel: { port: ports.ghostOut, pids: () => [ghostOut.pid, ghostIn.pid] },
  'sidecar http': { port: ports.sideOut, pids: () => [sideOut.pid, sideIn.pid] },
  'sidecar tcp': { port: ports.tcpOut, pids: () => [tcpOut.pid, tcpIn.pid] },
};
const allScenarios = [
  { name: 'keep-alive small', path: '/small', close: false },
  { name: 'Connection: close small', path: '/small', close: true },
  { name: '1 MiB bodies', path: '/1m', close: false },
];
const scenarios = allScenarios.filter((s) => pick(allScenarios.map((x) => x.name)).includes(s.name));
const sidecarPaths = pick(['sidecar http', 'sidecar tcp']);
for (const name of ['sidecar http', 'sidecar tcp']) if (!sidecarPaths.includes(name)) delete paths[name];
// --quick: sidecars only, for trying a change (no ratios, no targets).
if (args.includes('--quick')) for (const name of ['direct', 'nginx', 'ghostunnel']) delete paths[name];

// Idle RSS: every proxy started, certificates loaded, no traffic yet.
const pidsOf = (target) => (typeof target.pids === 'function' ? target.pids() : target.pids);
const idleRss = {};
const idlePrivate = {};
for (const [name, target] of Object.entries(paths)) {
  idleRss[name] = pidsOf(target).map((pid) => memoryMb(pid));
  idlePrivate[name] = pidsOf(target).map((pid) => memoryMb(pid, 'RssAnon'));
}

/**
 * Each scenario: every path warms up, then the measured runs go round the paths in turn (run 1 of
 * each path, then run 2 of each, …), so a noisy stretch of the shared machine falls on all of them
 * rather than on one path's runs, and the ratios compare like with like.
 */
const results = {};
for (const scenario of scenarios) {
  const names = Object.keys(paths);
  const runs = Object.fromEntries(names.map((name) => [name, []]));
  const cpu = Object.fromEntries(names.map((name) => [name, 0]));
  for (const name of names) {
    for (const pid of pidsOf(paths[name])) resetPeak(pid);
    // Warm up (JIT, pools, sessions).
    wrk(paths[name].port, scenario.path, scenario.close);
  }
  for (let i = 0; i < RUNS; i++) {
    for (const name of names) {
      const pids = pidsOf(paths[name]);
      const before = pids.map(cpuSeconds);
      runs[name].push(wrk(paths[name].port, scenario.path, scenario.close));
      cpu[name] += pids.reduce((sum, pid, j) => sum + cpuSeconds(pid) - before[j], 0);
    }
  }
  for (const name of names) {
    const pids = pidsOf(paths[name]);
    const requests = runs[name].reduce((sum, r) => sum + r.requests, 0);
    const med = (key) => median(runs[name].map((r) => r[key]));
    results[`${scenario.name}|${name}`] = {
      rps: med('rps'),
      p50: med('p50'),
      p99: med('p99'),
      mbps: med('mbps'),
      errors: runs[name].reduce((sum, r) => sum + r.errors, 0),
      cpuUsPerReq: pids.length ? (cpu[name] / requests) * 1e6 : Number.NaN,
      peakRss: pids.map((pid) => memoryMb(pid, 'VmHWM')),
    };
    process.stderr.write(`[bench] ${scenario.name} / ${name}: ${results[`${scenario.name}|${name}`].rps.toFixed(0)} req/s\n`);
  }
}

const fmt = (v, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : '-');
const perProcess = (values) => (values.length ? values.map((v) => fmt(v)).join(' / ') : '-');
const lines = [];
lines.push(
  `vault-mtls-sidecar bench — node ${process.version}, ${SECONDS}s × ${RUNS} runs (medians) after a warm-up, ${CONNECTIONS} connections, wrk -t1; one process per proxy side`,
);
lines.push('');
lines.push('| scenario | path | req/s | p50 ms | p99 ms | MB/s | errors | vs nginx | vs direct | CPU µs/req (out+in) | peak RSS MiB (out / in) |');
lines.push('|---|---|---|---|---|---|---|---|---|---|---|');
for (const scenario of scenarios) {
  const direct = results[`${scenario.name}|direct`];
  const nginx = results[`${scenario.name}|nginx`];
  const metric = scenario.path === '/1m' ? 'mbps' : 'rps';
  for (const name of Object.keys(paths)) {
    const r = results[`${scenario.name}|${name}`];
    lines.push(
      `| ${scenario.name} | ${name} | ${fmt(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.mbps, 1)} | ${r.errors} | ${fmt(r[metric] / nginx?.[metric], 2)}× | ${fmt(r[metric] / direct?.[metric], 2)}× | ${fmt(r.cpuUsPerReq, 1)} | ${perProcess(r.peakRss)} |`,
    );
  }
}
lines.push('');
const proxies = Object.keys(paths).filter((n) => n !== 'direct');
lines.push(`Idle RSS MiB (out / in), before any load: ${proxies.map((n) => `${n} ${perProcess(idleRss[n])}`).join('; ')}`);
lines.push(`  of which private (RssAnon): ${proxies.map((n) => `${n} ${perProcess(idlePrivate[n])}`).join('; ')}`);
lines.push('');
lines.push('Ratios compare req/s (MB/s for 1 MiB bodies) measured in this run. CPU is user+system time of both proxy processes (nginx: workers) over the measured runs, divided by their requests. Peak RSS is VmHWM during the scenario (reset before its warm-up).');

// The targets of issue 13, checked on this run's numbers.
const get = (scenario, name) => results[`${scenario}|${name}`];
const checks = [];
const check = (label, ok, detail) => checks.push(`${ok ? '✓' : '✗'} ${label}: ${detail}`);
for (const name of sidecarPaths) {
  const idle = Math.max(...idleRss[name]);
  const peak = Math.max(...scenarios.map((sc) => Math.max(...get(sc.name, name).peakRss)));
  check(`${name} RSS idle ≤ 60 MiB`, idle <= 60, `${fmt(idle)} MiB`);
  check(`${name} RSS peak ≤ 100 MiB`, peak <= 100, `${fmt(peak)} MiB`);
}
const ratio = (scenario, name, base, key) => {
  const a = get(scenario, name);
  const b = get(scenario, base);
  return a && b ? a[key] / b[key] : Number.NaN;
};
// The runtime issue's ratio targets: [sidecar path, scenario, baseline, measure, label, met?].
const ratioTargets = [
  ['sidecar http', 'keep-alive small', 'nginx', 'cpuUsPerReq', 'http keep-alive CPU/req ≤ 2.0× nginx', (r) => r <= 2],
  ['sidecar http', 'Connection: close small', 'nginx', 'rps', 'http Connection: close req/s ≥ 0.5× nginx', (r) => r >= 0.5],
  ['sidecar tcp', 'keep-alive small', 'ghostunnel', 'cpuUsPerReq', 'tcp keep-alive CPU/req ≤ ghostunnel', (r) => r <= 1],
  ['sidecar tcp', '1 MiB bodies', 'ghostunnel', 'mbps', 'tcp 1 MiB MB/s ≥ ghostunnel', (r) => r >= 1],
];
for (const [name, scenario, base, key, label, met] of ratioTargets) {
  if (!paths[name] || !get(scenario, base)) continue;
  const r = ratio(scenario, name, base, key);
  check(label, met(r), `${fmt(r, 2)}×`);
}
const errors = Object.entries(results).filter(([, r]) => r.errors > 0);
check('zero errors', errors.length === 0, errors.length ? errors.map(([k, r]) => `${k}: ${r.errors}`).join(', ') : 'none');
lines.push('');
lines.push(...checks);
console.log(lines.join('\n'));
stopAll();
if (process.env.BENCH_CPU_PROF) await new Promise((r) => setTimeout(r, 3000));
process.exit(0);
