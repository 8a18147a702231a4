/**
 * The headers that tell the app who called and how: the caller's identity (XFCC or RFC 9440) and
 * X-Forwarded-*. The sidecar alone sets them, and sets them *last*, after hop-by-hop processing, so
 * a client can neither forge them (its own copies are dropped, `X_Forwarded_Client_Cert` with
 * underscores included, which some stacks read as the dashed name) nor remove ours (a client's
 * `Connection: x-forwarded-client-cert` only names a header the client sent).
 */
import type { TLSSocket } from 'node:tls';
import type { InboundListenerConfig } from '../config/schema/index.js';
import { formatXfcc, type PeerIdentity, rfc9440Headers } from '../tls/peer.js';
import { connectionOf } from './connection.js';

const IDENTITY_HEADERS = ['x-forwarded-client-cert', 'client-cert', 'client-cert-chain'] as const;
const FORWARDED_HEADERS = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-port', 'x-forwarded-host'] as const;
/**
 * Routing headers a client must not set, because apps and frameworks act on them after the sidecar
 * authorized the request. A denylist — headers not named here pass — of the names proxies,
 * CDNs and frameworks are known to honour:
 * - who called and how: `Forwarded`, `X-Forwarded`, `Forwarded-For`, `X-Real-IP`,
 *   `X-Client-IP`, `Client-IP`, `True-Client-IP`, `X-Cluster-Client-IP` (IP allowlists and rate
 *   limiters trust them), `X-Forwarded-Scheme`, `X-Forwarded-Server`, Spring's
 *   `X-Forwarded-Prefix`/`-Ssl`: the sidecar's X-Forwarded-* are the one account;
 * - the path: `X-Original-URL`, `X-Rewrite-URL`, `X-Original-URI`, `X-Forwarded-Uri`,
 *   `X-Forwarded-Path` (IIS, Symfony, Zend and auth proxies route or check on them instead of the
 *   request line);
 * - the method: the override headers Express's method-override middleware and others honour,
 *   which would walk past a rule's `methods`.
 * Dropped always, never replaced; `_` spellings too (isCallerHeader).
 */
const ROUTING_HEADERS = [
  'forwarded',
  'x-forwarded',
  'forwarded-for',
  'x-real-ip',
  'x-client-ip',
  'client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
  'x-forwarded-scheme',
  'x-forwarded-server',
  'x-forwarded-prefix',
  'x-forwarded-ssl',
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  'x-forwarded-uri',
  'x-forwarded-path',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
] as const;
const PROTECTED: ReadonlySet<string> = new Set<string>([...IDENTITY_HEADERS, ...FORWARDED_HEADERS, ...ROUTING_HEADERS]);

/**
 * True for a client's header that must not reach the app as sent: identity and forwarding headers
 * (ours replace them), routing headers, and any spelling of them with `_` for `-`. Names are lower case.
 */
export function isCallerHeader(name: string): boolean {
  if (PROTECTED.has(name)) return true;
  return name.includes('_') && PROTECTED.has(name.replaceAll('_', '-'));
}

/**
 * What is the same for every request on a connection — the caller's identity and where it came
 * from — built once per connection (a keep-alive or h2 connection carries many requests).
 */
function connectionHeaders(config: InboundListenerConfig, peer: PeerIdentity, socket: TLSSocket): readonly string[] {
  const connection = connectionOf(socket);
  if (connection.callerHeaders) return connection.callerHeaders;
  const list: string[] = [];
  if (config.forwardClientCert === 'xfcc') list.push('x-forwarded-client-cert', formatXfcc(peer));
  else if (config.forwardClientCert === 'rfc9440') {
    const headers = rfc9440Headers(socket);
    if (headers) for (const [name, value] of Object.entries(headers)) list.push(name, value);
  }
  list.push('x-forwarded-proto', 'https', 'x-forwarded-port', String(socket.localPort ?? ''));
  connection.callerHeaders = list;
  return list;
}

/**
 * The headers the app gets about the caller, as a flat [name, value, …] list, appended after
 * everything else. `host` is the client's Host (or :authority); `forwardedFor` what it sent as
 * X-Forwarded-For, kept only with `forwardedHeaders: append`.
 */
export function callerHeaders(
  config: InboundListenerConfig,
  peer: PeerIdentity,
  socket: TLSSocket,
  host: string | undefined,
  forwardedFor: string | string[] | undefined,
): string[] {
  const remote = socket.remoteAddress ?? '';
  const prior = config.forwardedHeaders === 'append' && forwardedFor !== undefined ? [forwardedFor].flat().join(', ') : '';
  const out = [...connectionHeaders(config, peer, socket), 'x-forwarded-for', prior ? `${prior}, ${remote}` : remote];
  if (host) out.push('x-forwarded-host', host);
  return out;
}
