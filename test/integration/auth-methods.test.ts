/**
 * Each auth method logs in to real Vault and a certificate is issued: jwt (validation keys) and
 * token from a file. Kubernetes auth is proven against a real kube-apiserver in kubernetes.test.ts
 * (token file re-read at every login, an unauthorized service account, a wrong audience); AppRole
 * in vault-identity.test.ts.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createJwtSigner } from '../support/jwt.js';
import { parsePrometheus, sampleValue } from '../support/prometheus.js';
import { startSidecar, stopAllSidecars, vaultSection } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';

const vault = inject('vault');
const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-auth-'));
const JWT_MOUNT = 'jwt-sidecar-test';
const orders = { namespace: 'default', name: 'orders' };
const signer = createJwtSigner();

async function ensureAuthMount(mount: string, type: string): Promise<void> {
  try {
    await vaultApi(vault, 'POST', `sys/auth/${mount}`, { type });
  } catch (err) {
    if (!/already in use/.test(String(err))) throw err;
  }
}

beforeAll(async () => {
  await ensureAuthMount(JWT_MOUNT, 'jwt');
  await vaultApi(vault, 'POST', `auth/${JWT_MOUNT}/config`, { jwt_validation_pubkeys: [signer.publicKeyPem] });
  await vaultApi(vault, 'POST', `auth/${JWT_MOUNT}/role/orders`, {
    role_type: 'jwt',
    bound_audiences: ['vault'],
    user_claim: 'sub',
    bound_subject: `system:serviceaccount:${orders.namespace}:${orders.name}`,
    token_policies: ['sidecar'],
    token_ttl: '1h',
  });
});

afterAll(async () => {
  await stopAllSidecars();
});

describe('jwt auth', () => {
  it('logs in with a JWT verified by the mount’s validation key and gets a certificate', async () => {
    const tokenFile = path.join(dir, 'jwt');
    writeFileSync(tokenFile, signer.token({ sub: `system:serviceaccount:${orders.namespace}:${orders.name}`, aud: ['vault'] }));
    const sidecar = await startSidecar({
      vault: { ...vaultSection(vault), auth: { method: 'jwt', mount: JWT_MOUNT, role: 'orders', tokenFile } },
      identity: { commonName: 'orders-jwt.test', ttl: '10m' },
    });
    expect(sidecar.store.current()?.info.subject).toContain('CN=orders-jwt.test');
  });
});

describe('token auth', () => {
  it('reads the token from a file and learns its TTL with lookup-self', async () => {
    const created = await vaultApi<{ auth: { client_token: string } }>(vault, 'POST', 'auth/token/create', {
      policies: ['sidecar'],
      ttl: '2h',
    });
    const tokenFile = path.join(dir, 'vault-token');
    writeFileSync(tokenFile, `${created.auth.client_token}\n`);
    const sidecar = await startSidecar({
      vault: { ...vaultSection(vault), auth: { method: 'token', tokenFile } },
      identity: { commonName: 'token-file.test', ttl: '10m' },
    });
    const samples = parsePrometheus(await sidecar.metrics.text());
    expect(sampleValue(samples, 'sidecar_vault_token_ttl_seconds')).toBeGreaterThan(7000);
    expect(sampleValue(samples, 'sidecar_vault_request_duration_seconds_count', { operation: 'lookup-self', status: '200' })).toBe(1);
  });

  it('schedules the renewal of a 60-day token once, past the 24.8-day timer limit, instead of renewing in a loop', async () => {
    // The dev server caps token TTLs at 768 h unless the token mount allows more; 2/3 of 60 days is
    // 40 days, past what setTimeout can hold.
    await vaultApi(vault, 'POST', 'sys/auth/token/tune', { max_lease_ttl: '1440h' });
    const created = await vaultApi<{ auth: { client_token: string; lease_duration: number } }>(vault, 'POST', 'auth/token/create', {
      policies: ['sidecar'],
      ttl: '1440h',
      renewable: true,
    });
    expect(created.auth.lease_duration).toBeGreaterThan(40 * 86_400);
    const tokenFile = path.join(dir, 'vault-token-long');
    writeFileSync(tokenFile, `${created.auth.client_token}\n`);
    const sidecar = await startSidecar({
      vault: { ...vaultSection(vault), auth: { method: 'token', tokenFile } },
      identity: { commonName: 'long-token.test', ttl: '10m' },
    });
    await new Promise((r) => setTimeout(r, 2000));
    const samples = parsePrometheus(await sidecar.metrics.text());
    expect(sampleValue(samples, 'sidecar_vault_token_ttl_seconds')).toBeGreaterThan(59 * 86_400);
    expect(
      sampleValue(samples, 'sidecar_vault_request_duration_seconds_count', { operation: 'renew-self', status: '200' }),
    ).toBeUndefined();
  });
});
