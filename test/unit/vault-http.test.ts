/**
 * The HTTP client node-vault uses (src/vault/http.ts), against real local servers: a redirect is
 * followed with the token and body only within Vault's origin or to a listed one; anything else is
 * refused before a byte goes there. The full scenario with a real Vault is in
 * test/adversarial/vault-token-redirect.test.ts.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import { createVaultRequest } from '../../src/vault/http.js';

interface Seen {
  readonly url: string;
  readonly token: string | undefined;
  readonly body: string;
}

const servers: http.Server[] = [];
afterAll(() => {
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
