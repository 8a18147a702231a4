/**
 * The audit line of a client certificate revoked in Vault is written while a scanner floods the
 * listener with handshakes without a certificate (issue 24, defect 17; the files-source scenario
 * is test/adversarial/audit-flood-hides-revocation.test.ts). Rate limits are per reason: the
 * flood spends its own budget, not `revoked`'s.
 */
import tls from 'node:tls';
import { expect, inject, it } from 'vitest';
import { waitFor } from '../support/cli.js';
import { useEchoApp, usePrivateVaults } from '../support/fixtures.js';
import { capturingLogger } from '../support/logs.js';
import { httpsRequest, issueFromVault, startSidecar } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';

const shared = inject('vault');
const echo = useEchoApp();
const startPrivateVault = usePrivateVaults(shared.bin);

/** A handshake without a client certificate; resolves once the sidecar refused it. */
function handshakeWithoutCertificate(port: number, ca: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    // TLS 1.3 finishes the client side first; the refusal arrives as an alert on the first read.
    socket.on('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  });
}

it('logs a revoked client certificate in the middle of a flood of handshakes without one', async () => {
  const { vault } = await startPrivateVault();
  const { logger, lines } = capturingLogger();
  const sidecar = await startSidecar(
    {
      vault: { address: vault.address, pki: { mount: vault.pkiMount, role: vault.role, refreshInterval: '1s' } },
      identity: { commonName: 'flooded.test', dnsNames: ['localhost'], ttl: '10m' },
      inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${echo.port()}` }],
    },
    { VAULT_TOKEN: 'root' },
    { logger },
  );
  const port = sidecar.listenerAddress('app').port;
  const revoked = await issueFromVault(vault, 'revoked.test');
  const bystander = await issueFromVault(vault, 'bystander.test');
  const fetchedBefore = sidecar.trust.crl?.fetchedAt.getTime() ?? 0;
  await vaultApi(vault, 'POST', `${vault.pkiMount}/revoke`, { serial_number: revoked.serial });
  await waitFor(() => (sidecar.trust.crl?.fetchedAt.getTime() ?? 0) > fetchedBefore + 1000, 10_000, 'a CRL refresh');

  let flooding = true;
  let rounds = 0;
  const flood = (async () => {
    for (; flooding; rounds++) await Promise.all(Array.from({ length: 10 }, () => handshakeWithoutCertificate(port, revoked.ca)));
  })();
  await waitFor(() => rounds >= 5, 10_000, 'the flood to spend its budget');
  await expect(httpsRequest(port, revoked)).rejects.toThrow();
  flooding = false;
  await flood;

  const rejected = lines.filter((l) => l.event === 'tls_handshake_rejected');
  expect(rejected.filter((l) => l.reason === 'no_certificate').length).toBeLessThan(60);
  expect(rejected.some((l) => l.reason === 'revoked' && l.audit === true)).toBe(true);
  // The good client is still served.
  expect((await httpsRequest(port, bystander)).status).toBe(200);
});
