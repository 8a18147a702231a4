/**
 * The demo's app: plain HTTP on loopback, answering every request with what it was given — the
 * method, path, Host, and the caller identity the sidecar put in x-forwarded-client-cert.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EchoReply {
  readonly app: 'echo';
  readonly method: string;
  readonly path: string;
  readonly host: string | null;
  /** The verified caller, as the inbound sidecar told us; null when it came without one. */
  readonly caller: string | null;
  /** RFC 9440 Client-Cert, when the listener forwards the caller that way. */
  readonly clientCert: string | null;
  readonly forwardedFor: string | null;
  readonly forwardedProto: string | null;
  readonly bodyBytes: number;
}

function header(req: http.IncomingMessage, name: string): string | null {
  const value = req.headers[name];
  return typeof value === 'string' ? value : null;
}

export function createEchoApp(): http.Server {
  return http.createServer((req, res) => {
    let bodyBytes = 0;
    req.on('data', (chunk: Buffer) => {
      bodyBytes += chunk.length;
    });
    req.on('end', () => {
      const caller = req.headers['x-forwarded-client-cert'];
      const reply: EchoReply = {
        app: 'echo',
        method: req.method ?? '',
        path: req.url ?? '',
        host: req.headers.host ?? null,
        caller: typeof caller === 'string' ? caller : null,
        clientCert: header(req, 'client-cert'),
        forwardedFor: header(req, 'x-forwarded-for'),
        forwardedProto: header(req, 'x-forwarded-proto'),
        bodyBytes,
      };
      const text = `${JSON.stringify(reply, null, 2)}\n`;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
}

export async function startEchoApp(host = '127.0.0.1', port = 0): Promise<{ server: http.Server; address: AddressInfo }> {
  const server = createEchoApp();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, address: server.address() as AddressInfo };
}
