/**
 * The headers that tell the app who called and how: the caller's identity (XFCC or RFC 9440) and
 * X-Forwarded-*. The sidecar alone sets them, and sets them *last*, after hop-by-hop processing, so
 * a client can neither forge them (its own copies are dropped, `X_Forwarded_Client_Cert` with
 * underscores included, which some stacks read as the dashed name) nor remove ours (a client's
 * `Connection: x-forwarded-client-cert` only names a header the client sent).
 */
import type { TLSSocket } from 'node:tls';
import type { InboundListenerConfig } from '../config/schema.js';
import { formatXfcc, type PeerIdentity, rfc9440Headers } from '../tls/peer.js';

export const IDENTITY_HEADERS = ['x-forwarded-client-cert', 'client-cert', 'client-cert-chain'] as const;
const FORWARDED_HEADERS = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-port', 'x-forwarded-host'] as const;
const PROTECTED: ReadonlySet<string> = new Set<string>([...IDENTITY_HEADERS, ...FORWARDED_HEADERS]);

/**
 * True for a client's header that must not reach the app as sent: identity and forwarding headers
 * (ours replace them), and any spelling of them with `_` for `-`. Names are lower case.
 */
export function isCallerHeader(name: string): boolean {
  if (PROTECTED.has(name)) return true;
  return name.includes('_') && PROTECTED.has(name.replaceAll('_', '-'));
}

export interface ForwardingFacts {
  /** The client's Host (or :authority). */
  readonly host: string | undefined;
  /** What the client sent as X-Forwarded-For, for `forwardedHeaders: append`. */
  readonly forwardedFor: string | string[] | undefined;
}

/** The headers the app gets about the caller, as a flat [name, value, …] list, appended after everything else. */
export function callerHeaders(config: InboundListenerConfig, peer: PeerIdentity, socket: TLSSocket, facts: ForwardingFacts): string[] {
  const out: string[] = [];
  if (config.forwardClientCert === 'xfcc') out.push('x-forwarded-client-cert', formatXfcc(peer));
  else if (config.forwardClientCert === 'rfc9440') {
    const headers = rfc9440Headers(socket);
    if (headers) for (const [name, value] of Object.entries(headers)) out.push(name, value);
  }
  const remote = socket.remoteAddress ?? '';
  const prior = config.forwardedHeaders === 'append' ? [facts.forwardedFor ?? []].flat().join(', ') : '';
  out.push('x-forwarded-for', prior ? `${prior}, ${remote}` : remote, 'x-forwarded-proto', 'https');
  out.push('x-forwarded-port', String(socket.localPort ?? ''));
  if (facts.host) out.push('x-forwarded-host', facts.host);
  return out;
}
