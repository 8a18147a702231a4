/**
 * Defect 1: any h2 peer could end the process. Each way a peer was seen to do it — dying
 * mid-upload, resetting a stream while the app answers, a TCP reset with a stream open, malformed
 * SETTINGS, an app cancelling a call on an outbound listener whose upstream is down — now ends
 * one stream or one connection. After each, the process is alive and a good client is served.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http2 from 'node:http2';
import type net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { Flags, FrameType, frame, goawayCode, headersFrame, PREFACE, readFrames, settings } from './h2-frames.js';
import {
  type RecordingH2App,
  type SidecarUnderAttack,
  startRecordingH2App,
  startSidecarUnderAttack,
  tcpRelay,
  tlsConnect,
} from './harness.js';

let app: RecordingH2App;
let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  // The app takes its time, so the peer's abuse lands while the sidecar relays the answer.
  app = await startRecordingH2App(150);
  sidecar = await startSidecarUnderAttack({
    // The access log and peer label on: recording a stream must survive every abuse too.
    inbound: [{ name: 'grpc', mode: 'h2', target: `127.0.0.1:${app.port}`, accessLog: true, metrics: { peerLabel: true } }],
    outbound: [{ name: 'down', mode: 'h2', target: `127.0.0.1:${await freePort()}`, serverName: 'localhost' }],
  });
});

afterAll(() => app.close());

async function clientSession(): Promise<{ session: http2.ClientHttp2Session; socket: net.Socket }> {
  const socket = await tlsConnect(sidecar, 'grpc', sidecar.good, ['h2']);
  const session = http2.connect('https://localhost', { createConnection: () => socket });
  session.on('error', () => undefined);
  return { session, socket };
}

it('survives a client whose process dies mid-upload', async () => {
  const relay = await tcpRelay(sidecar.port('grpc'));
  for (let i = 0; i < 20; i++) {
    const socket = await tlsConnect(sidecar, 'grpc', sidecar.good, ['h2'], relay.port);
    const session = http2.connect('https://localhost', { createConnection: () => socket });
    session.on('error', () => undefined);
    const upload = session.request({ ':method': 'POST', ':path': '/upload' });
    upload.on('error', () => undefined);
    upload.write(Buffer.alloc(16 * 1024, 1));
    await new Promise((r) => setTimeout(r, 10 + (i % 4) * 50));
    // No RST_STREAM, no GOAWAY: the process is gone, and the kernel closes or resets its socket.
    if (i % 2) relay.resetAll();
    else socket.destroy();
  }
  relay.close();
  await sidecar.assertAlive('grpc');
});

it('survives curl --http2 -T - killed mid-upload (the report, as it was seen)', async () => {
  const port = sidecar.port('grpc');
  for (let i = 0; i < 5; i++) {
    const curl = spawn(
      'curl',
      [
        '--silent',
        '--http2',
        '-T',
        '-',
        '--resolve',
        `localhost:${port}:127.0.0.1`,
        '--cacert',
        sidecar.pki.ca.certFile,
        '--cert',
        sidecar.good.certFile,
        '--key',
        sidecar.good.keyFile,
        `https://localhost:${port}/upload`,
      ],
      { stdio: ['pipe', 'ignore', 'ignore'] },
    );
    curl.stdin?.on('error', () => undefined);
    curl.stdin?.write(Buffer.alloc(64 * 1024, 1));
    await new Promise((r) => setTimeout(r, 150 + i * 30));
    curl.kill('SIGKILL');
    await once(curl, 'exit');
  }
  await sidecar.assertAlive('grpc');
});

it('survives streams reset while the app is answering', async () => {
  const { session } = await clientSession();
  const calls = Array.from({ length: 50 }, async (_, i) => {
    const req = session.request({ ':method': 'POST', ':path': `/slow/${i}` });
    req.on('error', () => undefined);
    req.end('x');
    await new Promise((r) => setTimeout(r, 100 + (i % 5) * 20)); // around the app's 150 ms answer
    // CANCEL is what a deadline sends; the others are what a broken or hostile client sends.
    req.close([http2.constants.NGHTTP2_CANCEL, http2.constants.NGHTTP2_INTERNAL_ERROR, http2.constants.NGHTTP2_PROTOCOL_ERROR][i % 3]);
  });
  await Promise.all(calls);
  session.destroy();
  await sidecar.assertAlive('grpc');
});

it('survives a TCP reset with streams open', async () => {
  const relay = await tcpRelay(sidecar.port('grpc'));
  for (let i = 0; i < 10; i++) {
    const socket = await tlsConnect(sidecar, 'grpc', sidecar.good, ['h2'], relay.port);
    readFrames(socket);
    socket.write(Buffer.concat([PREFACE, settings(), headersFrame(1, '/open', false), headersFrame(3, '/open', false)]));
    await new Promise((r) => setTimeout(r, 30));
    relay.resetAll(); // RST on the TCP connection under TLS
  }
  relay.close();
  await sidecar.assertAlive('grpc');
});

it.each([
  ['a SETTINGS frame whose length is not a multiple of 6', frame(FrameType.SETTINGS, 0, 0, Buffer.alloc(5))],
  ['SETTINGS_ENABLE_PUSH = 2', settings([[0x2, 2]])],
  ['SETTINGS_INITIAL_WINDOW_SIZE past 2^31-1', settings([[0x4, 0x80000000]])],
  ['SETTINGS on a stream', frame(FrameType.SETTINGS, 0, 1, Buffer.alloc(0))],
  ['a DATA frame on stream 0', frame(FrameType.DATA, 0, 0, Buffer.from('x'))],
  ['HEADERS that are not HPACK', frame(FrameType.HEADERS, Flags.END_HEADERS | Flags.END_STREAM, 1, Buffer.from([0xff, 0xff, 0xff, 0xff]))],
  ['a WINDOW_UPDATE of 0', frame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.alloc(4))],
])('answers %s with GOAWAY and stays up', async (_what, bad) => {
  const socket = await tlsConnect(sidecar, 'grpc', sidecar.good, ['h2']);
  const { frames, closed } = readFrames(socket);
  socket.write(Buffer.concat([PREFACE, settings(), bad]));
  await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
  socket.destroy();
  expect(goawayCode(frames)).toBeGreaterThan(0);
  await sidecar.assertAlive('grpc');
});

it('survives an app cancelling calls to an upstream that is down (outbound)', async () => {
  const session = http2.connect(`http://127.0.0.1:${sidecar.port('down')}`);
  session.on('error', () => undefined);
  const cancelled = Array.from({ length: 50 }, async (_, i) => {
    const req = session.request({ ':method': 'POST', ':path': '/helloworld.Greeter/SayHello', 'content-type': 'application/grpc' });
    req.on('error', () => undefined);
    req.end('x');
    // A gRPC deadline: cancel at once, or just as the sidecar learns the upstream is down.
    await new Promise((r) => setTimeout(r, i % 3));
    req.close(http2.constants.NGHTTP2_CANCEL);
  });
  await Promise.all(cancelled);
  // One call that waits gets the JSON 502 with its code.
  const req = session.request({ ':method': 'POST', ':path': '/helloworld.Greeter/SayHello' });
  req.end('x');
  const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
  req.resume();
  expect(headers[':status']).toBe(502);
  expect(headers['x-sidecar-error']).toBe('SIDECAR_UPSTREAM_UNREACHABLE');
  session.close();
  await sidecar.assertAlive('grpc');
});
