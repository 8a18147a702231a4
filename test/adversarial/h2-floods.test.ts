/**
 * Defect 1, continued: floods on one h2 connection. Rapid reset (HEADERS then RST_STREAM, over
 * and over) gets GOAWAY(ENHANCE_YOUR_CALM), an audit line and a metric; a client opening 300
 * streams at once gets maxConcurrentStreams, and the app never sees more than that.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ENHANCE_YOUR_CALM, goawayCode, headersFrame, PREFACE, readFrames, rstStream, settings } from './h2-frames.js';
import { type RecordingH2App, type SidecarUnderAttack, startRecordingH2App, startSidecarUnderAttack, tlsConnect } from './harness.js';

let app: RecordingH2App;
let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  app = await startRecordingH2App(1000);
  sidecar = await startSidecarUnderAttack({
    inbound: [{ name: 'grpc', mode: 'h2', target: `127.0.0.1:${app.port}`, limits: { maxConcurrentStreams: 50 } }],
  });
});

afterAll(() => app.close());

it('closes a rapid-reset connection with GOAWAY(ENHANCE_YOUR_CALM), audited and counted', async () => {
  const socket = await tlsConnect(sidecar, 'grpc', sidecar.good, ['h2']);
  const { frames, closed } = readFrames(socket);
  const burst: Buffer[] = [PREFACE, settings()];
  for (let id = 1; id < 2 * 1000; id += 2) burst.push(headersFrame(id, `/rapid/${id}`, false), rstStream(id));
  socket.write(Buffer.concat(burst));
  await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
  socket.destroy();
  expect(goawayCode(frames)).toBe(ENHANCE_YOUR_CALM);
  expect(await sidecar.metric('sidecar_h2_sessions_refused_total', { listener: 'grpc', reason: 'rapid_reset' })).toBe(1);
  expect(sidecar.logs('h2_rapid_reset')).toHaveLength(1);
  // Far fewer than the 1,000 streams reached the app: the connection was cut early.
  expect(app.streams.length).toBeLessThan(1000);
  await sidecar.assertAlive('grpc');
});

it('holds a connection to maxConcurrentStreams: 300 opened, at most 50 reach the app at once', async () => {
  const socket = await tlsConnect(sidecar, 'grpc', sidecar.good, ['h2']);
  const { frames } = readFrames(socket);
  const burst: Buffer[] = [PREFACE, settings()];
  for (let id = 1; id < 2 * 300; id += 2) burst.push(headersFrame(id, `/many/${id}`, true, 'GET'));
  socket.write(Buffer.concat(burst));
  await new Promise((r) => setTimeout(r, 700));
  expect(app.maxOpen()).toBeLessThanOrEqual(50);
  expect(app.streams.filter((h) => String(h[':path']).startsWith('/many/')).length).toBeLessThanOrEqual(50);
  // The streams past the limit were refused (RST_STREAM), not queued without bound.
  expect(frames.some((f) => f.type === 3)).toBe(true);
  socket.destroy();
  await sidecar.assertAlive('grpc');
});
