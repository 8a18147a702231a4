/**
 * Each auth method logs in to real Vault and a certificate is issued: kubernetes (against a small
 * TokenReview endpoint, with the token file re-read at every login), jwt (validation keys), and
 * token from a file. AppRole is covered in vault-identity.test.ts.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { Sidecar } from '../../src/sidecar.js';
import { waitFor } from '../support/cli.js';
import { createJwtSigner } from '../support/jwt.js';
import { capturingLogger } from '../support/logs.js';
import { parsePrometheus, sampleValue } from '../support/prometheus.js';
import { startSidecar, stopAllSidecars, vaultSection } from '../support/sidecars.js';
import { startTokenReviewServer, type TokenReviewServer } from '../support/token-review.js';
import { vaultApi } from '../support/vault-api.js';

const vault = inject('vault');
const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-auth-'));
const K8S_MOUNT = 'kubernetes-sidecar-test';
const JWT_MOUNT = 'jwt-sidecar-test';
const orders = { namespace: 'default', name: 'orders', uid: '6a1f0c8e-0000-4000-8000-000000000001' };
const signer = createJwtSigner();
let tokenReview: TokenReviewServer;

/** A projected service-account token as the kubelet writes it. */
function serviceAccountToken(audience: string): string {
  return signer.token({
    iss: 'https://kubernetes.default.svc.cluster.local',
    sub: `system:serviceaccount:${orders.namespace}:${orders.name}`,
    aud: [audience],
    'kubernetes.io': { namespace: orders.namespace, serviceaccount: { name: orders.name, uid: orders.uid } },
    jti: Math.random().toString(36).slice(2),
  });
}

async function ensureAuthMount(mount: string, type: string): Promise<void> {
  try {
    await vaultApi(vault, 'POST', `sys/auth/${mount}`, { type });
  } catch (err) {
    if (!/already in use/.test(String(err))) throw err;
  }
}

beforeAll(async () => {
  tokenReview = await startTokenReviewServer();
  await ensureAuthMount(K8S_MOUNT, 'kubernetes');
  await vaultApi(vault, 'POST', `auth/${K8S_MOUNT}/config`, {
    kubernetes_host: tokenReview.url,
    kubernetes_ca_cert: tokenReview.caPem,
    token_reviewer_jwt: tokenReview.reviewerToken,
    disable_local_ca_jwt: true,
  });
  await vaultApi(vault, 'POST', `auth/${K8S_MOUNT}/role/orders`, {
    bound_service_account_names: [orders.name],
    bound_service_account_namespaces: [orders.namespace],
    token_policies: ['sidecar'],
    token_ttl: '1h',
  });
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
  await tokenReview.close();
});

describe('kubernetes auth', () => {
  it('logs in with the service-account token, gets a certificate, and re-reads the rotated token at the next login', async () => {
    const tokenFile = path.join(dir, 'k8s-token');
    const first = serviceAccountToken('https://kubernetes.default.svc');
    tokenReview.valid.set(first, orders);
    writeFileSync(tokenFile, first);
    const sidecar = await startSidecar({
      vault: { ...vaultSection(vault), auth: { method: 'kubernetes', mount: K8S_MOUNT, role: 'orders', tokenFile } },
      identity: { commonName: 'orders.test', uriSans: ['spiffe://test/ns/default/sa/orders'], ttl: '10m' },
    });
    expect(sidecar.store.current()?.info.uris).toEqual(['spiffe://test/ns/default/sa/orders']);
    expect(tokenReview.reviews).toBe(1);

    // The kubelet rotates the token; the old one stops being valid. Vault's token is revoked, so
    // the next call must log in again, with the new file content.
    const second = serviceAccountToken('https://kubernetes.default.svc');
    tokenReview.valid.delete(first);
    tokenReview.valid.set(second, orders);
    writeFileSync(tokenFile, second);
    await vaultApi(vault, 'PUT', `sys/leases/revoke-prefix/auth/${K8S_MOUNT}/login`);
    const serial = sidecar.store.current()?.info.serial;
    sidecar.renewer.renewNow();
    await waitFor(() => sidecar.store.current()?.info.serial !== serial, 10_000, 'the renewal after re-login');
    expect(tokenReview.reviews).toBe(2);
    const samples = parsePrometheus(await sidecar.metrics.text());
    expect(sampleValue(samples, 'sidecar_vault_request_duration_seconds_count', { operation: 'login', status: '200' })).toBe(2);
  });

  it('names the role and the mount when the service account is not allowed, and stays not ready', async () => {
    const tokenFile = path.join(dir, 'k8s-token-stranger');
    const token = signer.token({
      sub: 'system:serviceaccount:default:stranger',
      'kubernetes.io': { namespace: 'default', serviceaccount: { name: 'stranger', uid: 'u-2' } },
    });
    tokenReview.valid.set(token, { namespace: 'default', name: 'stranger', uid: 'u-2' });
    writeFileSync(tokenFile, token);
    const config = buildConfig(
      {
        vault: { ...vaultSection(vault), auth: { method: 'kubernetes', mount: K8S_MOUNT, role: 'orders', tokenFile } },
        identity: { commonName: 'stranger.test', ttl: '10m' },
        admin: { listen: '127.0.0.1:0' },
      },
      {},
    );
    const { logger, lines } = capturingLogger();
    const sidecar = await Sidecar.create(config, logger);
    const starting = sidecar.start();
    await waitFor(() => lines.some((l) => l.code === 'SIDECAR_VAULT_AUTH_FAILED'), 5000, 'the login failure');
    const line = lines.find((l) => l.code === 'SIDECAR_VAULT_AUTH_FAILED') as { msg: string };
    expect(line.msg).toMatch(
      /vault: login with kubernetes role orders at auth\/kubernetes-sidecar-test failed \(.*service account name not authorized.*\); check the auth role and credentials/,
    );
    expect(sidecar.notReadyReasons()).toContain('no valid certificate');
    await sidecar.stop(0);
    await starting;
  });
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
