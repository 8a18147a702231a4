/**
 * `vault setup` against a fresh, private Vault dev server: the first run creates everything, a
 * second run changes nothing, a dry run reports without writing, and a sidecar holding only the
 * created policy gets a certificate with exactly the service's names — and nothing else.
 */
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { policyName, type ServiceSpec, serviceNames, setupService } from '../../src/vault/setup.js';
import { type DevServer, startDevServer } from '../support/dev-server.js';
import { startSidecar, stopAllSidecars } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';

const vault = inject('vault');
let server: DevServer;
const spec: ServiceSpec = {
  name: 'orders',
  namespace: 'shop',
  serviceAccount: 'orders',
  ttl: 3600,
  maxTtl: 86400,
  keyType: 'ec',
  issue: false,
};
const mounts = { root: 'pki', intermediate: 'pki_int', auth: 'kubernetes' };

beforeAll(async () => {
  server = await startDevServer(vault.bin);
}, 30_000);

afterAll(async () => {
  await stopAllSidecars();
  await server?.stop();
});

it('sets up a fresh Vault, then finds nothing to change; a dry run writes nothing', async () => {
  const admin = { address: server.address, token: 'root' };
  const dry = await setupService(admin, spec, mounts, true);
  expect(dry.every((s) => s.action === 'create')).toBe(true);
  expect(
    (await vaultApi<{ data: Record<string, unknown> }>({ address: server.address, rootToken: 'root' }, 'GET', 'sys/mounts')).data[
      'pki_int/'
    ],
  ).toBeUndefined();

  const first = await setupService(admin, spec, mounts, false);
  expect(first.map((s) => `${s.action} ${s.what}`)).toEqual([
    'create secrets engine pki/ (pki, root)',
    'create root CA on pki/',
    'update pki/config/urls',
    'update pki/ passes If-Modified-Since through',
    'create secrets engine pki_int/ (pki, intermediate)',
    'create intermediate CA on pki_int/, signed by pki/',
    'update pki_int/config/urls',
    'update pki_int/ passes If-Modified-Since through',
    'update pki_int/config/auto-tidy',
    'create pki_int/roles/orders.shop',
    'create sys/policies/acl/orders.shop-sidecar',
    'create auth method kubernetes/ (kubernetes)',
    'create auth/kubernetes/role/orders.shop',
  ]);
  const second = await setupService(admin, spec, mounts, false);
  expect(second.filter((s) => s.action !== 'unchanged')).toEqual([]);

  const changed = await setupService(admin, { ...spec, ttl: 1800 }, mounts, true);
  expect(changed.filter((s) => s.action !== 'unchanged')).toEqual([{ what: 'pki_int/roles/orders.shop', action: 'update', detail: 'ttl' }]);
  expect((await setupService(admin, spec, mounts, false)).filter((s) => s.action !== 'unchanged')).toEqual([]);
}, 60_000);

it('gives a sidecar with only the created policy a certificate with exactly the service names, and nothing else', async () => {
  const target = { address: server.address, rootToken: 'root' };
  const token = (
    await vaultApi<{ auth: { client_token: string } }>(target, 'POST', 'auth/token/create', { policies: [policyName(spec)], ttl: '1h' })
  ).auth.client_token;
  const names = serviceNames(spec);
  const sidecar = await startSidecar(
    {
      vault: { address: server.address, pki: { mount: 'pki_int', role: 'orders.shop' }, auth: { method: 'token' } },
      identity: { commonName: 'orders.shop.svc', dnsNames: names.dnsNames, uriSans: [names.spiffeId], ttl: '1h' },
      inbound: [{ name: 'app', listen: '127.0.0.1:0', target: '127.0.0.1:9' }],
    },
    { VAULT_TOKEN: token },
  );
  const info = sidecar.store.current()?.info;
  expect(info?.dnsNames).toEqual(names.dnsNames);
  expect(info?.uris).toEqual([names.spiffeId]);
  // The role refuses any other name, and the policy any other role.
  await expect(vaultApi(target, 'POST', 'pki_int/issue/orders.shop', { common_name: 'payments.shop.svc' }, token)).rejects.toThrow(
    /not allowed by this role|permission denied/,
  );
  await expect(vaultApi(target, 'POST', 'pki_int/sign/other', { csr: 'x' }, token)).rejects.toThrow(/permission denied/);
  await expect(vaultApi(target, 'POST', 'pki_int/issue/orders.shop', { common_name: 'localhost' }, 'root')).rejects.toThrow(
    /not allowed by this role/,
  );
});
