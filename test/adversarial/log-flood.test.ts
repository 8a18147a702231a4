/**
 * Defect 7, the log: an unreachable app or upstream was logged once per failed request, with no
 * limit (5,009 lines in 10 s). Every per-request warning now goes through the audit log's token
 * buckets: a burst, then a steady trickle, and a count of what was held back.
 */
import https from 'node:https';
import { expect, it } from 'vitest';
import { waitFor } from '../support/cli.js';
import { startSidecarUnderAttack } from './harness.js';

it('logs a bounded number of lines for 400 requests to a dead app and a dead upstream', async () => {
  // Port 1: nothing listens there, and no other test can bind it in the meantime (a port that
  // was free a moment ago can be taken by a parallel test: then nothing is "unreachable").
  const sidecar = await startSidecarUnderAttack({
    inbound: [{ name: 'web', target: '127.0.0.1:1' }],
    outbound: [{ name: 'out', target: '127.0.0.1:1', serverName: 'localhost' }],
  });
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: 8,
    cert: sidecar.good.cert,
    key: sidecar.good.key,
    ca: sidecar.pki.ca.cert,
  });
  const inbound = () =>
    new Promise<number>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port: sidecar.port('web'), path: '/', servername: 'localhost', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
    });
  const statuses = await Promise.all(Array.from({ length: 200 }, inbound));
  const outbound = await Promise.all(
    Array.from({ length: 200 }, async () => (await fetch(`http://127.0.0.1:${sidecar.port('out')}/`)).status),
  );
  agent.destroy();
  expect(new Set([...statuses, ...outbound])).toEqual(new Set([502]));
  // The sidecar's log lines reach us through a pipe: wait for the first of each.
  await waitFor(
    () => sidecar.logs('app_unreachable').length > 0 && sidecar.logs('upstream_unreachable').length > 0,
    10_000,
    'the unreachable lines',
  );
  const appLines = sidecar.logs('app_unreachable');
  const upstreamLines = sidecar.logs('upstream_unreachable');
  // The default bucket: 20 at once, then 2 a second.
  expect(appLines.length).toBeGreaterThan(0);
  expect(appLines.length).toBeLessThanOrEqual(30);
  expect(upstreamLines.length).toBeGreaterThan(0);
  expect(upstreamLines.length).toBeLessThanOrEqual(30);
  await sidecar.assertAlive();
});
