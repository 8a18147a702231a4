/**
 * `doctor`'s trust.conditional check against a real Vault (issue 27, defect 3): a PKI mount that
 * does not pass If-Modified-Since through makes every trust refresh read every issuer and CRL in
 * full; doctor says so and prints the tune command. The good case (a tuned mount) is in
 * doctor.test.ts's "passes every check".
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { runDoctor } from '../../src/doctor/doctor.js';
import { usePrivateVaults } from '../support/fixtures.js';
import { freePort } from '../support/ports.js';
import { vaultApi } from '../support/vault-api.js';

const shared = inject('vault');
const startPrivateVault = usePrivateVaults(shared.bin);

it('! trust.conditional: a mount that does not pass If-Modified-Since through, with the tune command', async () => {
  const { vault } = await startPrivateVault();
  await vaultApi(vault, 'POST', `sys/mounts/${vault.pkiMount}/tune`, { passthrough_request_headers: [] });
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'sidecar-doctor-ims-')), 'config.yaml');
  writeFileSync(
    file,
    stringify({
      vault: { address: vault.address, pki: { mount: vault.pkiMount, role: vault.role } },
      identity: { commonName: 'doctor.test', dnsNames: ['doctor.test'], ttl: '10m' },
      inbound: [{ name: 'web', listen: `127.0.0.1:${await freePort()}`, target: '127.0.0.1:8080' }],
      admin: { listen: `127.0.0.1:${await freePort()}` },
    }),
  );
  const found = await runDoctor(file, { VAULT_TOKEN: 'root' });
  const check = found.checks.find((c) => c.id === 'trust.conditional');
  expect(check).toMatchObject({
    status: 'warn',
    detail: expect.stringContaining('does not pass If-Modified-Since through'),
    fix: expect.stringContaining(`vault secrets tune -passthrough-request-headers=If-Modified-Since ${vault.pkiMount}`),
  });
});
