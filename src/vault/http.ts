/**
 * The HTTP requests node-vault makes, made here instead of by its axios. axios follows every
 * redirect (node-vault drops `maxRedirects`) to any origin, sending the X-Vault-Token header along
 * and, for a 307, the body again — a login's JWT or secret_id. Whoever can make Vault's address
 * answer a redirect (a compromised node, a proxy, DNS) would collect both. Here a redirect is
 * followed only to vault.address's own origin or one listed in vault.redirectOrigins (Vault HA
 * nodes' api_addr); anything else is refused and nothing is sent there.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { ErrorCodes, SidecarError } from '../errors.js';

export interface VaultHttpOptions {
  /** vault.address: its origin is where the token may go. */
  readonly address: string;
  /** Further origins a redirect may lead to (vault.redirectOrigins). */
  readonly redirectOrigins: readonly string[];
  readonly ca?: string | undefined;
  readonly rejectUnauthorized: boolean;
  /** Idle time on the socket before a request is given up (the session bounds the whole call). */
  readonly timeoutMs: number;
}

/** What node-vault hands its request function, and what it expects back. */
export interface NodeVaultRequest {
  readonly method: string;
  readonly uri: string;
  readonly headers?: Record<string, string> | undefined;
  readonly json?: unknown;
}

export interface NodeVaultResponse {
  readonly statusCode: number;
  readonly body: unknown;
  readonly request: { readonly path: string };
}

/** Vault's HA standbys answer 307 (method and body kept); 308 means the same. Other 3xx are answers. */
const FOLLOWED = new Set([307, 308]);
const MAX_REDIRECTS = 3;
/** A CRL of a busy mount is the largest thing Vault sends us; this bounds memory against a hostile answer. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

export type VaultRequest = (request: NodeVaultRequest) => Promise<NodeVaultResponse>;

export function createVaultRequest(options: VaultHttpOptions): VaultRequest {
  const home = new URL(options.address).origin;
  const allowed = new Set([home, ...options.redirectOrigins.map((origin) => new URL(origin).origin)]);
  const agents = {
    'http:': new FreshAfterFailure.Http({ keepAlive: true }),
    'https:': new FreshAfterFailure.Https({
      keepAlive: true,
      rejectUnauthorized: options.rejectUnauthorized,
      ...(options.ca ? { ca: options.ca } : {}),
    }),
  };
  return async (request) => {
    const body = request.json === undefined ? undefined : Buffer.from(JSON.stringify(request.json));
    let url = new URL(request.uri);
    let from = url.origin;
    for (let hops = 0; ; hops++) {
      if (!allowed.has(url.origin)) throw redirectRefused(request, url, allowed);
      const response = await send(url, request, body, agents, options.timeoutMs).catch((err: unknown) => {
        // A failure after a redirect is not VAULT_ADDR's: say which address failed and who sent us there.
        if (hops > 0 && err instanceof Error) Object.assign(err, { vaultOrigin: url.origin, redirectedBy: from });
        throw err;
      });
      const location = response.location;
      if (!FOLLOWED.has(response.statusCode) || location === undefined) {
        return { statusCode: response.statusCode, body: response.body, request: { path: new URL(request.uri).pathname } };
      }
      if (hops >= MAX_REDIRECTS) {
        throw new SidecarError(
          ErrorCodes.VAULT_REQUEST_FAILED,
          `vault: ${request.method} ${new URL(request.uri).pathname}: more than ${MAX_REDIRECTS} redirects; point VAULT_ADDR at the active node`,
        );
      }
      from = url.origin;
      url = new URL(location, url);
    }
  };
}

function redirectRefused(request: NodeVaultRequest, to: URL, allowed: ReadonlySet<string>): SidecarError {
  return new SidecarError(
    ErrorCodes.VAULT_REDIRECT_REFUSED,
    `vault: ${request.method} ${new URL(request.uri).pathname} was redirected to ${to.origin}, which is not Vault's origin (${[...allowed].join(', ')}); the token and credentials were not sent there. Point VAULT_ADDR at the active node or a load balancer in front of it, or list that node's api_addr in vault.redirectOrigins`,
  );
}

/**
 * Keep-alive pools, except after a failure. Behind a Service or load balancer, one connection is
 * one Vault node: a node that answers 5xx (sealed, a standby that cannot find the active node, a
 * proxy's 502/503/504) or fails the connection would get every retry on a kept-alive socket —
 * renewals stuck on a sealed node for as long as it stays sealed (issue 29). So a socket that was
 * answered 5xx or a redirect is closed instead of pooled, and after any failed attempt the idle sockets are
 * closed too: the next attempt dials again and the balancer may pick a healthy node.
 */
const condemned = new WeakSet<object>();

/** Node's types declare keepSocketAlive as void; it returns whether the socket goes back to the pool. */
type KeepSocketAlive = (socket: Duplex) => boolean;

const FreshAfterFailure = {
  Http: class extends http.Agent {
    override keepSocketAlive(socket: Duplex): boolean {
      return !condemned.has(socket) && (super.keepSocketAlive as KeepSocketAlive)(socket);
    }
  },
  Https: class extends https.Agent {
    override keepSocketAlive(socket: Duplex): boolean {
      return !condemned.has(socket) && (super.keepSocketAlive as KeepSocketAlive)(socket);
    }
  },
};

/** Closes every idle pooled socket, so the next request opens a new connection. */
function dropIdle(agent: http.Agent): void {
  for (const sockets of Object.values(agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
}

interface RawResponse {
  readonly statusCode: number;
  readonly location: string | undefined;
  readonly body: unknown;
}

function send(
  url: URL,
  request: NodeVaultRequest,
  body: Buffer | undefined,
  agents: Record<'http:' | 'https:', http.Agent>,
  timeoutMs: number,
): Promise<RawResponse> {
  const secure = url.protocol === 'https:';
  // Lower-cased, so node-vault's `Content-Type` (PATCH) is not sent twice.
  const headers: Record<string, string | number> = { accept: 'application/json' };
  for (const [name, value] of Object.entries(request.headers ?? {})) headers[name.toLowerCase()] = value;
  if (body) {
    headers['content-type'] ??= 'application/json';
    headers['content-length'] = body.length;
  }
  const agent = agents[secure ? 'https:' : 'http:'];
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(url, { method: request.method, headers, agent }, (res) => {
      if ((res.statusCode ?? 0) >= 500) {
        condemned.add(res.socket);
        dropIdle(agent);
      } else if (FOLLOWED.has(res.statusCode ?? 0) && res.headers.location !== undefined) {
        // A redirecting node's own connection only: a standby naming a lost leader during an
        // election redirects every request it gets, and kept, its connection took every retry (the
        // HA test's refused 307s); the pooled connection to the node redirected to is good.
        condemned.add(res.socket);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          req.destroy(
            Object.assign(new Error(`Vault's answer is larger than ${MAX_BODY_BYTES} bytes`), { code: 'VAULT_ANSWER_TOO_LARGE' }),
          );
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, location: res.headers.location, body: parse(Buffer.concat(chunks)) }));
      res.on('error', reject);
    });
    // axios called its idle timeout ECONNABORTED; errors.ts words it as Vault being slow.
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no data within ${timeoutMs / 1000}s`), { code: 'ECONNABORTED' })));
    req.on('error', (err) => {
      dropIdle(agent);
      reject(err);
    });
    req.end(body);
  });
}

/** Vault answers JSON; an empty body (204) or a proxy's HTML page comes back as it is. */
function parse(raw: Buffer): unknown {
  if (raw.length === 0) return undefined;
  const text = raw.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
