/**
 * The connections the soak (connection-soak.test.ts) opens and closes, one function per kind:
 * each opens a connection (or h2 session), carries its exchange, closes it, and resolves with
 * whether the exchange came back whole. Plain for outbound listeners; with the trusted client's
 * certificate (`tls`) for inbound ones. And the apps at the end, which count what reached them.
 */
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import WebSocket, { WebSocketServer } from 'ws';
import type { Pem } from '../support/pki.js';

/** A client certificate and the CA to check the sidecar with; absent for plaintext (outbound) listeners. */
export interface ClientTls {
  readonly pem: Pem;
  readonly ca: string;
}

const tlsOptions = (client: ClientTls) => ({ cert: client.pem.cert, key: client.pem.key, ca: client.ca, servername: 'localhost' });

/** One connection's exchange; true when the answer came back whole. */
export type Exchange = (port: number, client: ClientTls | undefined) => Promise<boolean>;

/** An h2 session of one call, closed after the answer. */
export const h2Session: Exchange = (port, client) =>
  new Promise((resolve) => {
    const session = client ? http2.connect(`https://127.0.0.1:${port}`, tlsOptions(client)) : http2.connect(`http://127.0.0.1:${port}`);
    let ok = false;
    session.on('error', () => undefined);
    session.on('close', () => resolve(ok));
    const req = session.request({ ':method': 'POST', ':path': '/soak.H2/Call', 'content-type': 'application/grpc', te: 'trailers' });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('error', () => undefined);
    req.on('close', () => {
      ok = body === 'h2 ok';
      session.close();
    });
    req.end('call');
  });

/** GET `path` on `agent` (false: a connection of its own); the body, or '' on an error. */
function get(port: number, client: ClientTls | undefined, path: string, agent: http.Agent | false, headers = {}): Promise<string> {
  return new Promise((resolve) => {
    const options = { host: '127.0.0.1', port, path, agent, headers };
    const onResponse = (res: http.IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve(body));
      res.on('error', () => resolve(''));
    };
    const req = client ? https.request({ ...options, ...tlsOptions(client) }, onResponse) : http.request(options, onResponse);
    req.on('error', () => resolve(''));
    req.end();
  });
}

/** A keep-alive connection that carries two requests, then is closed by the client. */
export const httpKeepAlive: Exchange = async (port, client) => {
  const agent = client
    ? new https.Agent({ keepAlive: true, maxSockets: 1, ...tlsOptions(client) })
    : new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await get(port, client, '/soak/keep-alive/1', agent);
    const second = await get(port, client, '/soak/keep-alive/2', agent);
    return first === 'http ok' && second === 'http ok';
  } finally {
    agent.destroy();
  }
};

/** One request on a connection of its own, which `Connection: close` ends after the answer. */
export const httpClose: Exchange = async (port, client) =>
  (await get(port, client, '/soak/close', false, { connection: 'close' })) === 'http ok';

/** A WebSocket: opened, one message echoed, closed by the client. */
export const webSocket: Exchange = (port, client) =>
  new Promise((resolve) => {
    const ws = client
      ? new WebSocket(`wss://127.0.0.1:${port}/soak/ws`, tlsOptions(client))
      : new WebSocket(`ws://127.0.0.1:${port}/soak/ws`);
    let ok = false;
    ws.on('open', () => ws.send('ping'));
    ws.on('message', (data) => {
      ok = data.toString() === 'echo ping';
      ws.close();
    });
    ws.on('error', () => undefined);
    ws.on('close', () => resolve(ok));
  });

/** A tcp connection: bytes written, echoed back, then closed by the client. */
export const tcpConnection: Exchange = async (port, client) => {
  const socket = client ? tls.connect({ host: '127.0.0.1', port, ...tlsOptions(client) }) : net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let echoed = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    echoed += chunk;
    if (echoed.length >= 4) socket.end();
  });
  socket.write('ping');
  await once(socket, 'close');
  return echoed === 'ping';
};

/** `count` exchanges, `concurrency` at a time: how many came back whole. */
export async function repeat(count: number, concurrency: number, exchange: () => Promise<boolean>): Promise<number> {
  let started = 0;
  let ok = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started < count) {
        started++;
        if (await exchange()) ok++;
      }
    }),
  );
  return ok;
}

/** What reached the apps: requests, WebSockets, h2 streams and tcp connections, counted. */
export interface SoakApps {
  readonly httpPort: number;
  readonly h2Port: number;
  readonly tcpPort: number;
  readonly reached: { http: number; webSockets: number; h2: number; tcp: number };
  close(): void;
}

export async function startSoakApps(): Promise<SoakApps> {
  const reached = { http: 0, webSockets: 0, h2: 0, tcp: 0 };
  const web = http.createServer((req, res) => {
    reached.http++;
    req.resume();
    req.on('end', () => res.end('http ok'));
  });
  const wss = new WebSocketServer({ server: web });
  wss.on('connection', (ws) => {
    reached.webSockets++;
    ws.on('message', (data) => ws.send(`echo ${data.toString()}`));
    ws.on('error', () => undefined);
  });
  const h2 = http2.createServer();
  h2.on('stream', (stream) => {
    reached.h2++;
    stream.on('error', () => undefined);
    stream.resume();
    stream.on('end', () => {
      if (stream.destroyed || stream.closed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end('h2 ok');
    });
  });
  const echo = net.createServer((socket) => {
    reached.tcp++;
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  const listen = async (server: net.Server) => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return (server.address() as net.AddressInfo).port;
  };
  return {
    httpPort: await listen(web),
    h2Port: await listen(h2),
    tcpPort: await listen(echo),
    reached,
    close() {
      wss.close();
      web.closeAllConnections();
      web.close();
      h2.close();
      echo.close();
    },
  };
}
