/**
 * A stream the upstream refused unprocessed (REFUSED_STREAM: it was above the last stream id of the
 * GOAWAY an idle close sends) is sent again on a new session, body included, instead of failing
 * the call: the race between a sidecar's idle close and a call the other sidecar sends at that
 * moment (issue 29, defect 2). Real HTTP/2 server and client; the upstream refuses by sending
 * GOAWAY(last stream id 0) on its first session.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import { replayBytesHeld } from '../../src/proxy/h2/h2-relay.js';
import { relayInFront } from '../support/h2-relay.js';

const servers: http2.Http2Server[] = [];
const cleanup: (() => void)[] = [];

afterEach(() => {
  for (const server of servers.splice(0)) server.close();
  for (const close of cleanup.splice(0)) close();
});

async function listen(server: http2.Http2Server): Promise<number> {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** An upstream that echoes request bodies, and whose first session refuses everything with GOAWAY(0). */
async function refusingUpstream(): Promise<{ port: number; streams: number[] }> {
  const server = http2.createServer();
  const streams: number[] = [];
  let sessionCount = 0;
  server.on('session', (session) => {
    if (sessionCount++ === 0) session.goaway(http2.constants.NGHTTP2_NO_ERROR, 0);
  });
  server.on('stream', (stream) => {
    streams.push(stream.id ?? 0);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      stream.respond({ ':status': 200 });
      stream.end(Buffer.concat(chunks));
    });
  });
  return { port: await listen(server), streams };
}

/** A relay in front of `upstreamPort`, as the h2 listeners relay. */
const relay = (upstreamPort: number) => relayInFront(upstreamPort, cleanup, ErrorCodes.UPSTREAM_UNREACHABLE);

async function post(port: number, body: Buffer): Promise<{ status: unknown; body: Buffer }> {
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => undefined);
  try {
    const req = client.request({ ':method': 'POST', ':path': '/echo' });
    let status: unknown;
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      status = h[':status'];
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.end(body);
    await once(req, 'close');
    return { status, body: Buffer.concat(chunks) };
  } finally {
    client.close();
  }
}

it('sends a stream the upstream refused unprocessed again on a new session, with its body', async () => {
  const upstream = await refusingUpstream();
  const port = await relay(upstream.port);
  const answer = await post(port, Buffer.from('hello again'));
  expect(answer).toEqual({ status: 200, body: Buffer.from('hello again') });
  // Processed once, on the second session.
  expect(upstream.streams).toEqual([1]);
  // Nothing kept once the call is answered.
  expect(replayBytesHeld()).toBe(0);
});

it('sends the rest of a large body after the part sent before the refusal, on the new stream', async () => {
  const upstream = await refusingUpstream();
  const port = await relay(upstream.port);
  const body = Buffer.alloc(256 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = i % 251;
  const answer = await post(port, body);
  expect(answer.status).toBe(200);
  expect(answer.body.equals(body)).toBe(true);
  expect(upstream.streams).toEqual([1]);
  expect(replayBytesHeld()).toBe(0);
});

it('keeps nothing of a body once the upstream answered, however many calls went through', async () => {
  const upstream = await refusingUpstream();
  const port = await relay(upstream.port);
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => post(port, Buffer.alloc(1000 * (i + 1), i))));
  expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
  expect(replayBytesHeld()).toBe(0);
});
