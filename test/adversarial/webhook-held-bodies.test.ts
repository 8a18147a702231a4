/**
 * Issue 24 review, finding 2: each of the webhook's 256 connections could hold a body of up to
 * 2 MiB, sent all but its last byte: ~512 MiB buffered against the chart's 192Mi limit. The bodies
 * in flight now share one budget; a request past it is answered 503 and its connection closed.
 * The same flood aimed at any other path is answered 404 and its bodies dropped — which were not
 * counted for the young-generation collections, so their dead buffers piled up (181–184 MiB peak;
 * found by an outside review). Each flood gets a webhook process of its own: peak RSS is per process.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { expect, it } from 'vitest';
import { startWebhookUnderAttack } from './webhook-process.js';

/** The process's peak resident memory so far, in MB. */
function peakRssMb(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
}

it.each([
  // Uploads past the budget refused with a 503, those within it cut by the request timeout (408),
  // never an answer to a body the webhook did not finish reading.
  { path: '/mutate', answers: /^HTTP\/1\.1 (503|408) / },
  { path: '/other', answers: /^HTTP\/1\.1 404 / },
])(
  '250 connections each sending all but the last byte of 2 MiB to $path do not take 512 MiB',
  async ({ path, answers: expected }) => {
    const webhook = await startWebhookUnderAttack();
    try {
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
                socket.write(`POST ${path} HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`);
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
      // What the attacker got.
      expect(answers.length).toBeGreaterThan(0);
      expect(answers.filter((a) => !expected.test(a))).toEqual([]);
      for (const socket of sockets) socket.destroy();
      expect(webhook.process.child.exitCode, webhook.process.stderr().slice(-600)).toBeNull();
      await webhook.assertServesGoodPod();
    } finally {
      await webhook.stop();
    }
  },
  120_000,
);
