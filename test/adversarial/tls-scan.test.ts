/**
 * Defect 6, as a scanner sees it: scripts/tls-scan.sh (nmap's ssl-enum-ciphers) against inbound
 * listeners with an RSA and an EC certificate finds TLS 1.2+ with ECDHE and AEAD suites only,
 * every suite graded A.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RecordingApp, type SidecarUnderAttack, startRecordingApp, startSidecarUnderAttack } from './harness.js';

const SCAN = path.resolve(import.meta.dirname, '../../scripts/tls-scan.sh');

function scan(port: number): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(SCAN, ['127.0.0.1', String(port)], { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
    );
  });
}

let app: RecordingApp;
const sidecars: SidecarUnderAttack[] = [];

beforeAll(async () => {
  app = await startRecordingApp();
  for (const rsaServer of [true, false]) {
    sidecars.push(
      await startSidecarUnderAttack({
        inbound: [
          { name: 'web', target: `127.0.0.1:${app.port}` },
          { name: 'grpc', mode: 'h2', target: `127.0.0.1:${app.port}` },
        ],
        rsaServer,
      }),
    );
  }
});

afterAll(() => app.close());

it.each([
  ['RSA', 0, 'web'],
  ['RSA', 0, 'grpc'],
  ['EC', 1, 'web'],
])(
  'finds only TLS 1.2+ ECDHE AEAD suites on an inbound listener with an %s certificate (%s, %s)',
  async (_key, index, listener) => {
    const sidecar = sidecars[index] as SidecarUnderAttack;
    const { code, output } = await scan(sidecar.port(listener));
    expect(output).toContain('TLS SCAN PASSED');
    expect(code, output).toBe(0);
    expect(output).toMatch(/TLS_ECDHE_(RSA|ECDSA)_WITH_AES_128_GCM_SHA256/);
    expect(output).toContain('TLSv1.3');
    await sidecar.assertAlive();
  },
  60_000,
);
