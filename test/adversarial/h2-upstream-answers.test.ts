/**
 * What a hostile or broken upstream may answer on an h2 relay, found by an outside review:
 * - GOAWAY(REFUSED_STREAM) naming a stream it had already read as processed (last stream id ≥ the
 *   stream): Node gives the streams of that session rstCode 7, and the relay took that for "refused
 *   unprocessed" and sent the POST again — the app saw it twice. RFC 9113 §6.8: only streams above
 *   the last stream id may be retried.
 * - a response `:status` Node's server side will not send (999, 099): respond() threw
 *   ERR_HTTP2_STATUS_INVALID out of an event handler, which ended the process.
 * Real HTTP/2 client and relay; the second upstream writes frames by hand, since no library sends
 * a status outside 200–599.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterEach, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import { replayBytesHeld } from '../../src/proxy/h2/h2-relay.js';
import { relayInFront } from '../support/h2-relay.js';
import { TestPki } from '../support/pki.js';
import { Flags, FrameType, frame, hpack, rstStream, settings } from './h2-frames.js';
import { startSidecarUnderAttack } from './harness.js';

const closers: (() => void)[] = [];

afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function listen(server: net.Server): Promise<number> {
  closers.push(() => server.close());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** A relay in front of `upstreamPort`, as the h2 listeners relay. */
const relay = (upstreamPort: number) => relayInFront(upstreamPort, closers);

async function post(port: number, body: string): Promise<{ status: unknown; error: unknown; body: string }> {
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => undefined);
  try {
    const req = client.request({ ':method': 'POST', ':path': '/pay' });
    let status: unknown;
    let error: unknown;
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      status = h[':status'];
    });
    req.on('error', (err: Error & { code?: string }) => {
      error = err.code;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.end(body);
    await once(req, 'close');
    return { status, error, body: Buffer.concat(chunks).toString() };
  } finally {
    client.close();
  }
}

it('does not send a POST again when the upstream read it and then sent GOAWAY(REFUSED_STREAM) covering it', async () => {
  const seen: string[] = [];
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      seen.push(Buffer.concat(chunks).toString());
      // Processed (the payment is made), then the session ends with REFUSED_STREAM, last stream
      // id = this stream: the stream is not one the client may retry.
      stream.session?.goaway(http2.constants.NGHTTP2_REFUSED_STREAM, stream.id ?? 0);
      setTimeout(() => stream.session?.destroy(), 50);
    });
  });
  const port = await relay(await listen(server));
  const answer = await post(port, 'pay 100');
  // Give a second send the time to arrive.
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(seen).toEqual(['pay 100']);
  expect(answer.status).toBe(502);
});

it('still sends again a stream the upstream refused above the last stream id of its GOAWAY(REFUSED_STREAM)', async () => {
  const seen: string[] = [];
  let sessions = 0;
  const server = http2.createServer();
  server.on('session', (session) => {
    // The first session refuses everything: last stream id 0, nothing processed.
    if (sessions++ === 0) session.goaway(http2.constants.NGHTTP2_REFUSED_STREAM, 0);
  });
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      seen.push(Buffer.concat(chunks).toString());
      stream.respond({ ':status': 200 });
      stream.end('paid');
    });
  });
  const port = await relay(await listen(server));
  const answer = await post(port, 'pay 100');
  expect(answer).toMatchObject({ status: 200, body: 'paid' });
  expect(seen).toEqual(['pay 100']);
});

for (const status of ['999', '099', '600']) {
  for (const endStream of [true, false]) {
    it(`answers 502, and lives on, when the upstream answers :status ${status}${endStream ? ' (Trailers-Only)' : ''}`, async () => {
      const port = await relay((await scriptedUpstream(answerStatus(status, endStream))).port);
      const answer = await post(port, 'hello');
      expect(answer.status).toBe(502);
      // The relay's failure names what went wrong (the listeners map it to their error code);
      // nghttp2 itself refuses a status below 100 (a stream error).
      expect(answer.body).toContain(status === '099' ? 'ERR_HTTP2_STREAM_ERROR' : 'ERR_HTTP2_STATUS_INVALID');
      // The relay still serves: a second call gets the same clear answer.
      expect((await post(port, 'again')).status).toBe(502);
    });
  }
}

it('answers the app SIDECAR_UPSTREAM_PROTOCOL_ERROR, and lives on, when an mTLS upstream answers :status 999', async () => {
  const pki = TestPki.create();
  const cert = pki.leaf('upstream', { cn: 'upstream.test', dns: ['localhost'] });
  const server = tls.createServer(
    { cert: cert.cert, key: cert.key, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] },
    rawH2(answerStatus('999', false)).handler,
  );
  server.on('tlsClientError', () => undefined);
  const sidecar = await startSidecarUnderAttack({
    pki,
    outbound: [{ name: 'odd', mode: 'h2', target: `127.0.0.1:${await listen(server)}`, serverName: 'localhost' }],
  });
  const session = http2.connect(`http://127.0.0.1:${sidecar.port('odd')}`);
  session.on('error', () => undefined);
  for (let i = 0; i < 3; i++) {
    const req = session.request({ ':method': 'GET', ':path': '/' });
    req.end();
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    req.resume();
    expect(headers[':status']).toBe(502);
    expect(headers['x-sidecar-error']).toBe(ErrorCodes.UPSTREAM_PROTOCOL_ERROR);
  }
  session.close();
  expect(sidecar.logs('upstream_handshake_failed')).toEqual([]);
  await sidecar.assertAlive();
});

/** GOAWAY with `lastStreamId` and error `code`. */
function goaway(lastStreamId: number, code: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(lastStreamId & 0x7fffffff, 0);
  payload.writeUInt32BE(code, 4);
  return frame(FrameType.GOAWAY, 0, 0, payload);
}

interface RawConnection {
  readonly socket: net.Socket;
  /** 0 for the first connection the upstream accepted, 1 for the next… */
  readonly index: number;
}

/**
 * The connection handler of an h2 upstream written by hand (no library sends what these tests
 * need): `onOpen` at a request's HEADERS, `onRequest` once its body has ended (the request is then
 * processed, and its body recorded in `processed`).
 */
function rawH2(
  onRequest: (c: RawConnection, streamId: number) => void,
  onOpen: (c: RawConnection, streamId: number) => void = () => undefined,
): { handler: (socket: net.Socket) => void; processed: string[] } {
  const processed: string[] = [];
  let connections = 0;
  const handler = (socket: net.Socket) => {
    const connection = { socket, index: connections++ };
    socket.on('error', () => undefined);
    socket.write(settings());
    let pending = Buffer.alloc(0);
    let prefaceRead = false;
    const bodies = new Map<number, string>();
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      if (!prefaceRead) {
        if (pending.length < 24) return;
        pending = pending.subarray(24);
        prefaceRead = true;
      }
      while (pending.length >= 9) {
        const length = pending.readUIntBE(0, 3);
        if (pending.length < 9 + length) return;
        const type = pending.readUInt8(3);
        const flags = pending.readUInt8(4);
        const id = pending.readUInt32BE(5) & 0x7fffffff;
        const payload = pending.subarray(9, 9 + length);
        pending = pending.subarray(9 + length);
        if (type === FrameType.SETTINGS && !(flags & Flags.ACK)) socket.write(frame(FrameType.SETTINGS, Flags.ACK, 0));
        if (type === FrameType.HEADERS) {
          bodies.set(id, '');
          onOpen(connection, id);
        }
        if (type === FrameType.DATA) bodies.set(id, (bodies.get(id) ?? '') + payload.toString());
        if ((type === FrameType.HEADERS || type === FrameType.DATA) && flags & Flags.END_STREAM) {
          processed.push(bodies.get(id) ?? '');
          onRequest(connection, id);
        }
      }
    });
  };
  return { handler, processed };
}

/** A plaintext (h2c) upstream from rawH2. */
async function scriptedUpstream(
  onRequest: (c: RawConnection, streamId: number) => void,
  onOpen?: (c: RawConnection, streamId: number) => void,
): Promise<{ port: number; processed: string[] }> {
  const { handler, processed } = rawH2(onRequest, onOpen);
  return { port: await listen(net.createServer(handler)), processed };
}

/** Answers every request with `:status` `status`: one HEADERS that ends the stream, or HEADERS then DATA. */
function answerStatus(status: string, endStream: boolean): (c: RawConnection, id: number) => void {
  return ({ socket }, id) => {
    socket.write(frame(FrameType.HEADERS, Flags.END_HEADERS | (endStream ? Flags.END_STREAM : 0), id, hpack([[':status', status]])));
    if (!endStream) socket.write(frame(FrameType.DATA, Flags.END_STREAM, id, Buffer.from('odd')));
  };
}

const ok = (id: number) => frame(FrameType.HEADERS, Flags.END_HEADERS | Flags.END_STREAM, id, hpack([[':status', '200']]));

it('answers 502, not 431, when RST_STREAM(REFUSED_STREAM) and a GOAWAY covering the stream come in one write (review finding)', async () => {
  const upstream = await scriptedUpstream((c, id) => {
    if (c.index === 0) c.socket.write(Buffer.concat([rstStream(id, 7), goaway(id, 0)]));
    else c.socket.write(ok(id));
  });
  const answer = await post(await relay(upstream.port), 'pay 100');
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(answer.status).toBe(502);
  expect(answer.body).not.toContain(ErrorCodes.HEADERS_TOO_LARGE);
  expect(upstream.processed).toEqual(['pay 100']);
  expect(replayBytesHeld()).toBe(0);
});

it('sends again a stream above the last stream id of the second GOAWAY of a graceful two-step shutdown (review finding)', async () => {
  const upstream = await scriptedUpstream(
    (c, id) => {
      if (c.index !== 0) c.socket.write(ok(id));
    },
    (c) => {
      // nghttp2's shutdown notice, then the real last stream id: nothing processed.
      if (c.index === 0) c.socket.write(Buffer.concat([goaway(0x7fffffff, 0), goaway(0, 0)]));
    },
  );
  const answer = await post(await relay(upstream.port), 'pay 100');
  expect(answer.status).toBe(200);
  expect(upstream.processed.filter((b) => b === 'pay 100').length).toBeGreaterThanOrEqual(1);
});

it('passes grpc-status on when the trailers also carry a connection-specific header (review finding)', async () => {
  const upstream = await scriptedUpstream((c, id) => {
    c.socket.write(
      frame(
        FrameType.HEADERS,
        Flags.END_HEADERS,
        id,
        hpack([
          [':status', '200'],
          ['content-type', 'application/grpc'],
        ]),
      ),
    );
    c.socket.write(frame(FrameType.DATA, 0, id, Buffer.from([0, 0, 0, 0, 0])));
    c.socket.write(
      frame(
        FrameType.HEADERS,
        Flags.END_HEADERS | Flags.END_STREAM,
        id,
        hpack([
          ['grpc-status', '5'],
          ['http2-settings', 'AAAA'],
        ]),
      ),
    );
  });
  const port = await relay(upstream.port);
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => undefined);
  const req = client.request({ ':method': 'POST', ':path': '/svc/Call', 'content-type': 'application/grpc' });
  req.on('error', () => undefined);
  req.resume();
  req.end(Buffer.from([0, 0, 0, 0, 0]));
  const [trailers] = (await once(req, 'trailers')) as [http2.IncomingHttpHeaders];
  client.close();
  expect(trailers['grpc-status']).toBe('5');
  expect(trailers['http2-settings']).toBeUndefined();
});

it('keeps none of a body once the call failed, while the client goes on sending (review finding)', async () => {
  const upstream = await scriptedUpstream(
    () => undefined,
    (c, id) => c.socket.write(rstStream(id, 1 /* PROTOCOL_ERROR */)),
  );
  const port = await relay(upstream.port);
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => undefined);
  const req = client.request({ ':method': 'POST', ':path': '/upload' });
  req.on('error', () => undefined);
  const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
  expect(headers[':status']).toBe(502);
  req.resume();
  for (let i = 0; i < 16; i++) req.write(Buffer.alloc(4096, i));
  await new Promise((resolve) => setTimeout(resolve, 200));
  // The stream is still open (the client has not ended it): nothing of it kept for a second send.
  expect(replayBytesHeld()).toBe(0);
  req.close();
  client.close();
});
