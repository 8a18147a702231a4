/**
 * The HTTP client node-vault uses (src/vault/http.ts), against real local servers: a redirect is
 * followed with the token and body only within Vault's origin or to a listed one; anything else is
 * refused before a byte goes there. The full scenario with a real Vault is in
 * test/adversarial/vault-token-redirect.test.ts.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import { toVaultError } from '../../src/vault/errors.js';
import { createVaultRequest } from '../../src/vault/http.js';
import { hostPort, startTcpBalancer, type TcpBalancer } from '../support/tcp-balancer.js';

interface Seen {
  readonly url: string;
  readonly token: string | undefined;
  readonly body: string;
}

const servers: http.Server[] = [];
const balancers: TcpBalancer[] = [];
afterAll(() => {
  for (const b of balancers) b.close();
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

/** A server that answers `answer(url)` (a status and optional location) and records what it got. */
async function server(answer: (url: string) => { status: number; location?: string }): Promise<{ origin: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const s = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({ url: req.url ?? '', token: req.headers['x-vault-token'] as string | undefined, body });
      const { status, location } = answer(req.url ?? '');
      res.writeHead(status, { 'content-type': 'application/json', ...(location ? { location } : {}) });
      res.end(status === 200 ? JSON.stringify({ data: { ok: true } }) : '');
    });
  });
  servers.push(s);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, seen };
}

const login = { method: 'POST', headers: { 'X-Vault-Token': 's.secret-token' }, json: { role: 'web', jwt: 'the-service-account-jwt' } };

it('refuses a redirect to another origin; nothing is sent there', async () => {
  const elsewhere = await server(() => ({ status: 200 }));
  const vault = await server((url) => ({ status: 307, location: `${elsewhere.origin}${url}` }));
  const request = createVaultRequest({ address: vault.origin, redirectOrigins: [], rejectUnauthorized: true, timeoutMs: 5000 });
  const err = await request({ ...login, uri: `${vault.origin}/v1/auth/kubernetes/login` }).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: ErrorCodes.VAULT_REDIRECT_REFUSED });
  expect(String((err as Error).message)).toContain(`redirected to ${elsewhere.origin}`);
  expect(elsewhere.seen).toEqual([]);
});

it('follows a 307 within the same origin, with the token and the body again', async () => {
  const vault = await server((url) => (url.startsWith('/active/') ? { status: 200 } : { status: 307, location: `/active${url}` }));
  const request = createVaultRequest({ address: vault.origin, redirectOrigins: [], rejectUnauthorized: true, timeoutMs: 5000 });
  const res = await request({ ...login, uri: `${vault.origin}/v1/auth/kubernetes/login` });
  expect(res).toMatchObject({ statusCode: 200, body: { data: { ok: true } }, request: { path: '/v1/auth/kubernetes/login' } });
  expect(vault.seen.map((s) => [s.url, s.token, JSON.parse(s.body).jwt])).toEqual([
    ['/v1/auth/kubernetes/login', 's.secret-token', 'the-service-account-jwt'],
    ['/active/v1/auth/kubernetes/login', 's.secret-token', 'the-service-account-jwt'],
  ]);
});

it('follows a 307 to an origin listed in vault.redirectOrigins (an HA node)', async () => {
  const active = await server(() => ({ status: 200 }));
  const standby = await server((url) => ({ status: 307, location: `${active.origin}${url}` }));
  const request = createVaultRequest({
    address: standby.origin,
    redirectOrigins: [`${active.origin}/`],
    rejectUnauthorized: true,
    timeoutMs: 5000,
  });
  expect((await request({ ...login, uri: `${standby.origin}/v1/pki/sign/web` })).statusCode).toBe(200);
  expect(active.seen).toHaveLength(1);
});

it('gives up after three redirects, and returns any other 3xx as Vault’s answer', async () => {
  const loop = await server((url) => ({ status: 307, location: `${url}x` }));
  const request = createVaultRequest({ address: loop.origin, redirectOrigins: [], rejectUnauthorized: true, timeoutMs: 5000 });
  await expect(request({ method: 'GET', uri: `${loop.origin}/v1/sys/health` })).rejects.toMatchObject({
    code: ErrorCodes.VAULT_REQUEST_FAILED,
  });
  expect(loop.seen).toHaveLength(4);
  const found = await server(() => ({ status: 302, location: 'http://elsewhere.invalid/' }));
  const plain = createVaultRequest({ address: found.origin, redirectOrigins: [], rejectUnauthorized: true, timeoutMs: 5000 });
  expect((await plain({ method: 'GET', uri: `${found.origin}/v1/x` })).statusCode).toBe(302);
});

describe('a failed attempt does not keep its connection (issue 29: renewals stuck on a sealed node)', () => {
  /** A node that answers `status` to every request on a kept-alive connection, and counts its requests. */
  async function node(status: number, errors: string[] = []): Promise<{ origin: string; requests: () => number }> {
    let requests = 0;
    const s = http.createServer((req, res) => {
      requests++;
      req.resume();
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status === 200 ? { data: { ok: true } } : { errors }));
    });
    servers.push(s);
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    return { origin: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, requests: () => requests };
  }

  it.each([
    [503, 'Vault is sealed'],
    [500, 'local node not active but active cluster node not found'],
    [502, 'bad gateway'],
    [504, 'gateway timeout'],
  ])('after a %i (%s) the next attempt opens a new connection', async (status, message) => {
    const sick = await node(status, [message]);
    const healthy = await node(200);
    // The first connection lands on the sick node, every later one on a healthy node.
    const lb = await startTcpBalancer((n) => hostPort(n === 0 ? sick.origin : healthy.origin));
    balancers.push(lb);
    const request = createVaultRequest({ address: lb.address, redirectOrigins: [], rejectUnauthorized: true, timeoutMs: 5000 });
    expect((await request({ method: 'GET', uri: `${lb.address}/v1/pki/sign/web` })).statusCode).toBe(status);
    expect((await request({ method: 'GET', uri: `${lb.address}/v1/pki/sign/web` })).statusCode).toBe(200);
    expect([sick.requests(), healthy.requests(), lb.connections()]).toEqual([1, 1, 2]);
  });

  it('after a redirect it refused (a standby naming a lost leader) the next attempt opens a new connection (issue 29, HA test)', async () => {
    let requests = 0;
    const standby = http.createServer((req, res) => {
      requests++;
      req.resume();
      res.writeHead(307, { location: 'http://10.255.255.1:8200/v1/pki/sign/web' });
      res.end();
    });
    servers.push(standby);
    await new Promise<void>((resolve) => standby.listen(0, '127.0.0.1', resolve));
    const healthy = await node(200);
    const lb = await startTcpBalancer((n) =>
      n === 0 ? { host: '127.0.0.1', port: (standby.address() as AddressInfo).port } : hostPort(healthy.origin),
    );
    balancers.push(lb);
    const request = createVaultRequest({ address: lb.address, redirectOrigins: [], rejectUnauthorized: true, timeoutMs: 5000 });
    const refused = await request({ method: 'GET', uri: `${lb.address}/v1/pki/sign/web` }).catch((err: unknown) => err);
    expect(refused).toMatchObject({ code: ErrorCodes.VAULT_REDIRECT_REFUSED });
    expect((await request({ method: 'GET', uri: `${lb.address}/v1/pki/sign/web` })).statusCode).toBe(200);
    expect([requests, healthy.requests(), lb.connections()]).toEqual([1, 1, 2]);
  });

  it('after a redirect it follows, keeps the connection to the node it was sent to (second review)', async () => {
    const leader = await node(200);
    const leaderLb = await startTcpBalancer(() => hostPort(leader.origin));
    let standbyRequests = 0;
    const standby = http.createServer((req, res) => {
      standbyRequests++;
      req.resume();
      res.writeHead(307, { location: `${leaderLb.address}${req.url}` });
      res.end();
    });
    servers.push(standby);
    await new Promise<void>((resolve) => standby.listen(0, '127.0.0.1', resolve));
    const standbyLb = await startTcpBalancer(() => hostPort(`http://127.0.0.1:${(standby.address() as AddressInfo).port}`));
    balancers.push(standbyLb, leaderLb);
    const request = createVaultRequest({
      address: standbyLb.address,
      redirectOrigins: [leaderLb.address],
      rejectUnauthorized: true,
      timeoutMs: 5000,
    });
    for (let i = 0; i < 5; i++)
      expect((await request({ method: 'GET', uri: `${standbyLb.address}/v1/pki/sign/web` })).statusCode).toBe(200);
    // Each redirect closes the standby's connection; the leader's stays pooled.
    expect([standbyRequests, standbyLb.connections(), leader.requests(), leaderLb.connections()]).toEqual([5, 5, 5, 1]);
  });

  it('keeps a connection that was answered 200 or 4xx (keep-alive still pools)', async () => {
    const denied = await node(403, ['permission denied']);
    const lb = await startTcpBalancer(() => hostPort(denied.origin));
    balancers.push(lb);
    const request = createVaultRequest({ address: lb.address, redirectOrigins: [], rejectUnauthorized: true, timeoutMs: 5000 });
    for (let i = 0; i < 3; i++) expect((await request({ method: 'GET', uri: `${lb.address}/v1/x` })).statusCode).toBe(403);
    expect(lb.connections()).toBe(1);
  });

  it('after a connection error, no other pooled connection to the same place is reused', async () => {
    // Two connections to a node that answers once on each and then hangs (a node going down
    // behind the balancer); later connections reach a healthy node.
    const answered = new WeakSet<object>();
    const hanging = http.createServer((req, res) => {
      req.resume();
      if (answered.has(req.socket)) return;
      answered.add(req.socket);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    servers.push(hanging);
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const healthy = await node(200);
    const lb = await startTcpBalancer((n) =>
      hostPort(n < 2 ? `http://127.0.0.1:${(hanging.address() as AddressInfo).port}` : healthy.origin),
    );
    balancers.push(lb);
    // 1 s of silence is the hang; a loaded machine still answers the first two well within it.
    const request = createVaultRequest({ address: lb.address, redirectOrigins: [], rejectUnauthorized: true, timeoutMs: 1000 });
    const uri = `${lb.address}/v1/x`;
    await Promise.all([request({ method: 'GET', uri }), request({ method: 'GET', uri })]);
    expect(lb.connections()).toBe(2);
    await expect(request({ method: 'GET', uri })).rejects.toMatchObject({ code: 'ECONNABORTED' });
    expect((await request({ method: 'GET', uri })).statusCode).toBe(200);
    expect(healthy.requests()).toBe(1);
  });
});

it('an unreachable redirect target is named in the error, with the address that redirected there (issue 29)', async () => {
  // A port with nothing listening: the dead leader a standby still names as active.
  const dead = http.createServer();
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
  const deadOrigin = `http://127.0.0.1:${(dead.address() as AddressInfo).port}`;
  await new Promise((resolve) => dead.close(resolve));
  const standby = await server((url) => ({ status: 307, location: `${deadOrigin}${url}` }));
  const request = createVaultRequest({ address: standby.origin, redirectOrigins: [deadOrigin], rejectUnauthorized: true, timeoutMs: 5000 });
  const err = await request({ method: 'POST', uri: `${standby.origin}/v1/pki/sign/web`, json: {} }).catch((e: unknown) => e);
  const mapped = toVaultError(err, { name: 'issue', text: 'issue from pki/sign/web' }, standby.origin);
  expect(mapped.code).toBe(ErrorCodes.VAULT_UNREACHABLE);
  expect(mapped.reason).toEqual({ reason: 'active_node_unreachable', operation: 'issue', network: 'ECONNREFUSED' });
  expect(mapped.message).toContain(`cannot reach ${deadOrigin} (ECONNREFUSED)`);
  expect(mapped.message).toContain(`redirected there by ${standby.origin}`);
  expect(mapped.message).not.toContain(`cannot reach ${standby.origin}`);
  // Without a redirect the message names VAULT_ADDR as before.
  const direct = createVaultRequest({ address: deadOrigin, redirectOrigins: [], rejectUnauthorized: true, timeoutMs: 5000 });
  const plain = await direct({ method: 'GET', uri: `${deadOrigin}/v1/sys/health` }).catch((e: unknown) => e);
  const unreachable = toVaultError(plain, { name: 'health', text: 'health' }, deadOrigin);
  expect(unreachable.message).toContain(`cannot reach ${deadOrigin} (ECONNREFUSED); check VAULT_ADDR`);
  expect(unreachable.reason).toEqual({ reason: 'unreachable', operation: 'health', network: 'ECONNREFUSED' });
});
