/**
 * The product image as users run it: built from the Dockerfile with podman (scripts/install-image.sh,
 * before vitest starts), run with the restrictions a hardened pod has — read-only root, every
 * capability dropped, uid 1000, no new privileges — serving mTLS from a files identity to a real
 * client, and stopped with SIGTERM as Kubernetes stops it. What the container is, is read from the
 * host's /proc, not asked of the container.
 */
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/cli.js';
import { podman, podmanStatus, processFacts, productImage } from '../support/image.js';
import { type Pem, TestPki } from '../support/pki.js';
import { freePort } from '../support/ports.js';

const image = productImage();
const container = `sidecar-image-contract-${process.pid}`;
let app: http.Server;
/** Resolves each request's path as it reaches the app (before the app answers). */
let arrived: (path: string) => void = () => {};

/**
 * The app behind the sidecar: answers with the path and who called (XFCC), after ?delay= ms, so
 * a request can be held in flight.
 */
function startApp(): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    arrived(req.url ?? '');
    const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
    setTimeout(() => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ path: req.url, caller: req.headers['x-forwarded-client-cert'] ?? null }));
    }, delay);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}
let pki: TestPki;
let client: Pem;
let inboundPort = 0;
let adminPort = 0;
/** The config volume (with a private key): removed by afterAll. */
let dir = '';

async function status(url: string): Promise<number> {
  try {
    return (await fetch(url)).status;
  } catch {
    return 0;
  }
}

function mtlsGet(opts: { cert?: Pem; path?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      {
        host: '127.0.0.1',
        port: inboundPort,
        path: opts.path ?? '/orders/1',
        servername: 'localhost',
        ca: pki.ca.cert,
        ...(opts.cert ? { cert: opts.cert.cert, key: opts.cert.key } : {}),
        agent: false,
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
  });
}

beforeAll(async () => {
  pki = TestPki.create('image');
  const serving = pki.leaf('sidecar', { cn: 'payments.shop.svc', dns: ['localhost'], ips: ['127.0.0.1'] });
  client = pki.leaf('orders', { cn: 'orders', uris: ['spiffe://cluster.local/ns/shop/sa/orders'], eku: 'clientAuth' });
  app = await startApp();
  const appPort = (app.address() as { port: number }).port;
  [inboundPort, adminPort] = [await freePort(), await freePort()];

  // The config volume as a pod mounts it: readable by uid 1000, the key by that user only.
  dir = mkdtempSync(path.join(tmpdir(), 'sidecar-image-'));
  chmodSync(dir, 0o755);
  writeFileSync(path.join(dir, 'tls.crt'), serving.cert, { mode: 0o644 });
  writeFileSync(path.join(dir, 'ca.crt'), pki.ca.cert, { mode: 0o644 });
  writeFileSync(path.join(dir, 'tls.key'), serving.key, { mode: 0o600 });
  chownSync(path.join(dir, 'tls.key'), 1000, 1000);
  writeFileSync(
    path.join(dir, 'config.yaml'),
    `identity:
  source: files
  files: { cert: /etc/sidecar/tls.crt, key: /etc/sidecar/tls.key, ca: /etc/sidecar/ca.crt }
  dnsNames: [localhost]
inbound:
  - { name: app, listen: "127.0.0.1:${inboundPort}", target: "127.0.0.1:${appPort}" }
admin: { listen: "127.0.0.1:${adminPort}" }
`,
    { mode: 0o644 },
  );
  // The image's own ENTRYPOINT and CMD (run --config /etc/sidecar/config.yaml). Host network: the
  // test's client and app are on this host's loopback. --read-only-tmpfs=false: not even /tmp.
  await podman([
    'run',
    '--detach',
    '--name',
    container,
    '--network=host',
    '--read-only',
    '--read-only-tmpfs=false',
    '--cap-drop=ALL',
    '--security-opt=no-new-privileges',
    '--user=1000',
    '--volume',
    `${dir}:/etc/sidecar:ro`,
    image.name,
  ]);
  await waitFor(
    async () => (await status(`http://127.0.0.1:${adminPort}/readyz`)) === 200,
    30_000,
    () => `the container's /readyz (${podmanStatus(['logs', container]).stderr})`,
  );
}, 60_000);

afterAll(async () => {
  await podman(['rm', '--force', '--time=0', container]).catch(() => undefined);
  app?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the product image', () => {
  it('serves mTLS: a client with a certificate reaches the app, which sees its SPIFFE ID; one without is refused', async () => {
    const served = await mtlsGet({ cert: client });
    expect(served.status).toBe(200);
    const reply = JSON.parse(served.body) as { path: string; caller: string };
    expect(reply.path).toBe('/orders/1');
    expect(reply.caller).toContain('URI=spiffe://cluster.local/ns/shop/sa/orders');

    // Refused by the TLS handshake (TLS 1.3: the server's certificate_required alert), not by a
    // closed port or a reset.
    await expect(mtlsGet({})).rejects.toMatchObject({ code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' });
    // The sidecar is still there for the good client.
    expect((await mtlsGet({ cert: client })).status).toBe(200);
  });

  it('runs as uid 1000 with no capabilities, a read-only root and no new privileges, as PID 1 with its #! flags', async () => {
    const pid = Number((await podman(['inspect', '--format', '{{.State.Pid}}', container])).trim());
    const facts = processFacts(pid);
    expect(facts.uid.split(/\s+/)).toEqual(['1000', '1000', '1000', '1000']);
    expect(facts.gid.split(/\s+/)).toEqual(['1000', '1000', '1000', '1000']);
    expect(facts.capEff).toBe('0000000000000000');
    expect(facts.capBnd).toBe('0000000000000000');
    expect(facts.noNewPrivs).toBe('1');
    expect(facts.rootMountOptions.split(',')[0]).toBe('ro');
    // node itself is PID 1 (env exec'd it), with the flags of dist/main.js's #! line.
    expect(facts.nsPids.at(-1)).toBe(1);
    expect(path.basename(facts.cmdline[0] ?? '')).toBe('node');
    expect(facts.cmdline).toEqual(expect.arrayContaining(['--max-semi-space-size=4', '--heap-growing-percent=50', '/app/dist/main.js']));
  });

  it("runs as uid 1000 by the image's own default, without --user", async () => {
    expect((await podman(['image', 'inspect', '--format', '{{.Config.User}}', image.name])).trim()).toBe('1000:1000');
    const ids = await podman([
      'run',
      '--rm',
      '--network=none',
      '--entrypoint',
      '/usr/local/bin/node',
      image.name,
      '-e',
      'console.log(process.getuid(), process.getgid(), process.geteuid())',
    ]);
    expect(ids.trim()).toBe('1000 1000 1000');
  });

  it('holds node, env, the libraries they link, the user and the app — no shell, no package manager', async () => {
    const files = (await podman(['run', '--rm', '--network=none', '--entrypoint', '/usr/local/bin/node', image.name, '-e', LIST_FILES]))
      .trim()
      .split('\n');
    const outsideApp = files.filter((f) => !f.startsWith('/app/'));
    for (const f of outsideApp)
      expect(f).toMatch(
        /^\/(usr\/local\/bin\/node|usr\/bin\/env|etc\/(passwd|group|nsswitch\.conf)|(usr\/)?lib(64|\/[\w-]+)?\/[\w.+-]+\.so[.\d]*)$/,
      );
    expect(files).toContain('/app/dist/main.js');
    expect(files.some((f) => /\/(sh|bash|dash|apt|apt-get|dpkg|npm)$/.test(f))).toBe(false);
    expect(podmanStatus(['run', '--rm', '--network=none', '--entrypoint', '/bin/sh', image.name, '-c', 'true']).code).not.toBe(0);
    // Of node_modules only what the bundle leaves out: pino-pretty and its dependencies, which load.
    expect(files.some((f) => f.startsWith('/app/node_modules/pino/') || f.startsWith('/app/node_modules/yaml/'))).toBe(false);
    const pretty = await podman([
      'run',
      '--rm',
      '--network=none',
      '--entrypoint',
      '/usr/local/bin/node',
      image.name,
      '-e',
      "require('node:module').createRequire('/app/dist/main.js')('pino-pretty')({ destination: 1 }).write('{\"level\":30,\"msg\":\"pretty\"}\\n')",
    ]);
    expect(pretty).toContain('pretty');
    expect(pretty).toContain('INFO');
  });

  it('on SIGTERM as PID 1 completes the request in flight, then exits 0', async () => {
    const reached = new Promise<string>((resolve) => {
      arrived = (p) => p.startsWith('/slow') && resolve(p);
    });
    const slow = mtlsGet({ cert: client, path: '/slow?delay=2000' });
    // The request is at the app, through the sidecar, when the sidecar is signalled.
    await reached;
    await podman(['kill', '--signal', 'TERM', container]);
    const answered = await slow;
    expect(answered.status).toBe(200);
    expect(JSON.parse(answered.body)).toMatchObject({ path: '/slow?delay=2000' });
    expect((await podman(['wait', container])).trim()).toBe('0');
    const logs = await podman(['logs', container]);
    expect(logs).toContain('"msg":"sidecar ready"');
    expect(logs).toContain('"msg":"draining"');
    // A TLS listener that is gone: nothing answers on the port any more.
    await expect(
      new Promise((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: inboundPort, rejectUnauthorized: false }, () => resolve(socket.end()));
        socket.on('error', reject);
      }),
    ).rejects.toThrow(/ECONNREFUSED/);
  });
});

/** Every regular file and symlink in the image's root, one per line (the image has no find or ls). */
const LIST_FILES = `
const fs = require('node:fs'), path = require('node:path');
// What the runtime mounts or links into every container is not the image's.
const skip = new Set(['/proc', '/sys', '/dev', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/etc/mtab', '/run', '/tmp', '/var']);
const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (skip.has(p)) continue; if (e.isDirectory()) walk(p); else console.log(p); } };
walk('/');
`;
