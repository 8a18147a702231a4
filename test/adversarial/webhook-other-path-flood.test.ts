/**
 * The same held-upload flood as webhook-held-bodies.test.ts, aimed at a path other than /mutate:
 * there the webhook answers 404 at once and drops the body — which it did without counting it, so
 * the dead buffers of 250 uploads piled up (172–183 MiB peak against the chart's 192Mi; found by an
 * outside review; 181 and 184 MiB in two runs here before the fix). The dropped bytes now drive
 * the same young-generation collections: 114–116 MiB.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startWebhookUnderAttack, type WebhookUnderAttack } from './webhook-process.js';

let webhook: WebhookUnderAttack;

beforeAll(async () => {
  webhook = await startWebhookUnderAttack();
});

afterAll(async () => {
  await webhook?.stop();
});

/** The process's peak resident memory so far, in MB. */
function peakRssMb(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
}

it('250 connections each sending all but the last byte of 2 MiB to another path do not take 512 MiB', async () => {
  const pid = webhook.process.child.pid as number;
  const size = 2 * 1024 * 1024;
  const chunk = Buffer.alloc(size - 1, 0x20);
  const sockets: tls.TLSSocket[] = [];
  const answers: string[] = [];
  await Promise.all(
    Array.from(
      { length: 250 },
      () =>
        new Promise<void>((resolve) => {
          const socket = tls.connect({ host: '127.0.0.1', port: webhook.port, rejectUnauthorized: false }, () => {
            socket.write(`POST /other HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`);
            socket.write(chunk, () => resolve());
          });
          let first = '';
          socket.on('data', (data: Buffer) => {
            if (!first) {
              first = data.toString('latin1').split('\r\n')[0] ?? '';
              answers.push(first);
            }
          });
          socket.on('error', () => resolve());
          socket.on('close', () => resolve());
          sockets.push(socket);
        }),
    ),
  );
  await new Promise((r) => setTimeout(r, 1000));
  // Memory held stays well under the chart's 192Mi, not 250 × 2 MiB.
  expect(peakRssMb(pid)).toBeLessThan(180);
  // What the attacker got: a 404, nothing else.
  expect(answers.length).toBeGreaterThan(0);
  expect(answers.filter((a) => !/^HTTP\/1\.1 404 /.test(a))).toEqual([]);
  for (const socket of sockets) socket.destroy();
  expect(webhook.process.child.exitCode, webhook.process.stderr().slice(-600)).toBeNull();
  await webhook.assertServesGoodPod();
}, 120_000);
