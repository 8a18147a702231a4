/**
 * Connection, byte and exchange accounting shared by every listener: open connections and bytes
 * (kept current while connections are open), and the end of every request or tcp connection
 * handed to the listener's exchange recorder (request metrics, access log).
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';
import type { Metrics } from '../telemetry/metrics.js';
import type { PeerIdentity } from '../tls/peer.js';
import { connectionOf, knownConnection } from './connection.js';
import type { ExchangeRecorder } from './exchanges.js';
import { loggedPath } from './forwarded-path.js';
import type { StreamLedger } from './h2/stream-ledger.js';

/** Who is on the other end of a client connection (see Exchange.peer). */
export type PeerOf = (socket: Socket) => PeerIdentity | string | undefined;

/** The exchange's details when the recorder does not use them (see ExchangeRecorder.detailed). */
const UNDETAILED = { remoteAddress: undefined, peer: undefined, bytesReceived: 0, bytesSent: 0 } as const;

/**
 * Counts open connections and the bytes they carry. Bytes are added as they flow, not only when a
 * connection closes: before each scrape every open socket's counts are brought up to date, so a
 * gRPC or WebSocket stream that lasts hours moves the counters while it runs.
 */
export function trackConnections(server: NetServer, listener: string, direction: 'inbound' | 'outbound', metrics: Metrics): void {
  const labels = { listener, direction };
  const active = metrics.connectionsActive.labels(labels);
  const received = metrics.bytesReceived.labels(labels);
  const sent = metrics.bytesSent.labels(labels);
  // Bytes of each open socket already added to the counters.
  const open = new Map<Socket, { read: number; written: number }>();
  const settle = (socket: Socket, counted: { read: number; written: number }) => {
    const read = socket.bytesRead;
    const written = socket.bytesWritten;
    received.inc(read - counted.read);
    sent.inc(written - counted.written);
    counted.read = read;
    counted.written = written;
  };
  metrics.beforeScrape(() => {
    for (const [socket, counted] of open) settle(socket, counted);
  });
  server.on('connection', (socket: Socket) => {
    active.inc();
    const counted = { read: 0, written: 0 };
    open.set(socket, counted);
    socket.once('close', () => {
      active.dec();
      open.delete(socket);
      settle(socket, counted);
    });
  });
}

/**
 * http mode: each request, when its response ends (or the client goes). Bytes are the connection's
 * between the end of the previous exchange and this one: the request and response, heads included.
 */
export function trackRequests(server: http.Server, record: ExchangeRecorder, peerOf: PeerOf): void {
  // Ahead of the listener's handler, which marks a connection closing when it refuses a request:
  // the refused request is recorded, the ones pipelined behind it (ignored) are not.
  server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (knownConnection(req.socket)?.closing) return;
    const startedAt = process.hrtime.bigint();
    const method = req.method ?? '';
    // Taken now: by the response's close the request may be detached from its socket.
    const socket = req.socket;
    res.once('close', () => {
      // A response the client abandoned before headers went out has no status worth counting as 200.
      const status = res.headersSent ? res.statusCode : 'aborted';
      if (!record.detailed) {
        record({ ...UNDETAILED, startedAt, request: { protocol: 'http/1.1', method, path: '', status } });
        return;
      }
      const connection = connectionOf(socket);
      const before = connection.counted;
      const after = { read: socket.bytesRead, written: socket.bytesWritten };
      connection.counted = after;
      record({
        remoteAddress: socket.remoteAddress,
        peer: peerOf(socket),
        startedAt,
        bytesReceived: after.read - before.read,
        bytesSent: after.written - before.written,
        // As forwarded: inbound listeners normalize the target before the request goes on.
        request: { protocol: 'http/1.1', method, path: loggedPath(req.url ?? ''), status },
      });
    });
  });
}

/** h2 mode: each stream when it closes. Bytes are the DATA relayed each way (HPACK-compressed heads are not counted). */
export function trackStreams(
  server: http2.Http2Server | http2.Http2SecureServer,
  record: ExchangeRecorder,
  peerOf: PeerOf,
  /** The listener's ledger (access log on): bytes relayed and the path as forwarded. */
  ledger: StreamLedger | undefined,
): void {
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const startedAt = process.hrtime.bigint();
    const method = String(headers[':method'] ?? '');
    // Read now: the session's socket is a proxy that throws once the session is gone.
    const socket = record.detailed ? (stream.session?.socket as Socket | undefined) : undefined;
    const remoteAddress = socket?.remoteAddress;
    const peer = socket ? peerOf(socket) : undefined;
    const rawPath = record.detailed ? String(headers[':path'] ?? '') : '';
    stream.once('close', () => {
      // As forwarded (inbound: normalized and authorized), known once the listener admitted it.
      const { path, ...bytes } =
        record.detailed && ledger
          ? ledger.read(stream, rawPath)
          : { received: 0, sent: 0, path: record.detailed ? loggedPath(rawPath) : '' };
      const status = stream.headersSent ? Number(stream.sentHeaders[':status']) : 'aborted';
      record({
        remoteAddress,
        peer,
        startedAt,
        bytesReceived: bytes.received,
        bytesSent: bytes.sent,
        request: { protocol: 'h2', method, path, status },
      });
    });
  });
}

/** tcp mode: each connection when it closes. `event` is where a connection is handed over: after the handshake on inbound listeners. */
export function trackTcpConnections(
  server: NetServer,
  event: 'connection' | 'secureConnection',
  record: ExchangeRecorder,
  peerOf: PeerOf,
): void {
  server.on(event, (socket: Socket) => {
    const startedAt = process.hrtime.bigint();
    // Read now: after the close a TLS socket no longer has its peer certificate.
    const peer = record.detailed ? peerOf(socket) : undefined;
    socket.once('close', () =>
      record({
        remoteAddress: socket.remoteAddress,
        peer,
        startedAt,
        bytesReceived: socket.bytesRead,
        bytesSent: socket.bytesWritten,
      }),
    );
  });
}
