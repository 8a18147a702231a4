/** Binding and draining for every listener the sidecar runs (inbound, outbound, admin). */
import { once } from 'node:events';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import type { HostPort } from '../config/parse.js';
import { ErrorCodes, SidecarError } from '../errors.js';

export async function listenOn(server: NetServer, address: HostPort, field: string): Promise<AddressInfo> {
  server.listen(address.port, address.host);
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err))]);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    const hint =
      code === 'EADDRINUSE'
        ? 'another process uses that port'
        : code === 'EACCES'
          ? 'ports below 1024 need privileges'
          : 'check the address';
    throw new SidecarError(ErrorCodes.LISTEN_FAILED, `${field}: cannot listen on ${address.host}:${address.port} (${code}); ${hint}`, {
      cause: err,
    });
  }
  return server.address() as AddressInfo;
}

/**
 * Stops accepting, lets in-flight requests finish for up to `graceMs`, then closes what is left.
 * Idle keep-alive connections are closed at once so they do not hold the drain open.
 */
export async function drainServer(server: HttpServer, graceMs: number): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      server.closeAllConnections();
      resolve();
    }, graceMs);
  });
  await Promise.race([closed, deadline]);
  clearInterval(idleSweep);
  clearTimeout(timer);
}

/** Remembers a raw server's open sockets so a drain can close what is left after the grace period. */
export function trackSockets(server: NetServer, event: 'connection' | 'secureConnection' = 'connection'): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on(event, (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return sockets;
}

/** For byte pipes (tcp mode): stop accepting, let open connections finish for up to `graceMs`, then close them. */
export async function drainRawServer(server: NetServer, sockets: Set<Socket>, graceMs: number): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      for (const socket of sockets) socket.destroy();
      resolve();
    }, graceMs);
  });
  await Promise.race([closed, deadline]);
  clearTimeout(timer);
}
