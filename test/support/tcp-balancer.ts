/**
 * A TCP load balancer for tests: each new client connection is piped to the backend that
 * `pick(n)` names for the n-th connection (0-based). Like a Kubernetes Service that keeps a sealed
 * Vault pod in its endpoints: a client that keeps its connection keeps its node.
 */
import net from 'node:net';

export interface TcpBalancer {
  /** http://127.0.0.1:<port> */
  readonly address: string;
  /** How many client connections it has accepted. */
  connections(): number;
  /** Cuts every open connection (a node restarting behind the balancer); new ones are accepted. */
  dropAll(): void;
  close(): void;
}

export async function startTcpBalancer(pick: (n: number) => { host: string; port: number }): Promise<TcpBalancer> {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const to = pick(count++);
    const backend = net.connect(to.port, to.host);
    for (const s of [client, backend]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        backend.destroy();
      });
    }
    client.pipe(backend);
    backend.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `http://127.0.0.1:${port}`,
    connections: () => count,
    dropAll() {
      for (const s of sockets) s.destroy();
    },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** An origin of "host:port" for `pick`. */
export function hostPort(origin: string): { host: string; port: number } {
  const url = new URL(origin);
  return { host: url.hostname, port: Number(url.port) };
}
