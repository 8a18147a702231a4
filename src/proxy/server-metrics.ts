/** Connection, byte and request accounting shared by every listener. */
import type http from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import type { Metrics } from '../telemetry/metrics.js';

/** Counts open connections and, when each closes, the bytes it carried. */
export function trackConnections(server: NetServer, listener: string, metrics: Metrics): void {
  server.on('connection', (socket: Socket) => {
    metrics.connectionsActive.inc({ listener });
    socket.once('close', () => {
      metrics.connectionsActive.dec({ listener });
      metrics.bytes.inc({ listener, direction: 'received' }, socket.bytesRead);
      metrics.bytes.inc({ listener, direction: 'sent' }, socket.bytesWritten);
    });
  });
}

/** Counts each answered request by status and times it to the end of the response. */
export function trackRequests(server: http.Server, listener: string, metrics: Metrics): void {
  // Label children bound once: resolving labels on every request is measurable on the hot path.
  const duration = metrics.requestDuration.labels({ listener });
  const byStatus = new Map<string, { inc(): void }>();
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    const started = process.hrtime.bigint();
    res.once('close', () => {
      duration.observe(Number(process.hrtime.bigint() - started) / 1e9);
      // A response the client abandoned before headers went out has no status worth counting as 200.
      const status = res.headersSent ? String(res.statusCode) : 'aborted';
      let counter = byStatus.get(status);
      if (!counter) {
        counter = metrics.requests.labels({ listener, status });
        byStatus.set(status, counter);
      }
      counter.inc();
    });
  });
}
