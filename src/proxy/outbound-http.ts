/**
 * Outbound in http mode: the app speaks plaintext HTTP to a localhost port; we forward over a
 * keep-alive pool of mTLS connections to the target, presenting the pod's certificate and checking
 * that the server carries the expected name.
 */
import http from 'node:http';
import { isIP } from 'node:net';
import httpProxy from 'http-proxy';
import { formatHostPort } from '../config/parse.js';
import type { OutboundListenerConfig } from '../config/schema.js';
import { ErrorCodes } from '../errors.js';
import { handshakeFailureReason } from '../telemetry/metrics.js';
import { hopByHopNames, stripHopByHop } from './hop-by-hop.js';
import { sendJsonError } from './json-error.js';
import { httpServerOptions } from './limits.js';
import { type Listener, type ListenerDeps, listenerHandle } from './listener.js';
import { MtlsAgent } from './mtls-agent.js';

const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']);

export function createOutboundHttpListener(config: OutboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const { contexts, metrics, audit } = deps;
  const log = deps.logger.child({ listener: config.name, direction: 'outbound' });
  const targetText = formatHostPort(config.target);
  const expectedName = config.serverName ?? config.target.host;
  const agent = new MtlsAgent(contexts, {
    expectedName,
    // SNI carries host names only, never IP addresses (RFC 6066 §3).
    servername: isIP(expectedName) ? undefined : expectedName,
    connectTimeoutMs: config.limits.connectTimeout * 1000,
  });
  const proxy = httpProxy.createProxyServer({
    target: `https://${targetText}`,
    agent,
    secure: true,
    // The upstream sees its own name in Host, as if the app had called it directly.
    changeOrigin: true,
    proxyTimeout: config.limits.idleTimeout * 1000,
  });

  proxy.on('proxyReq', (proxyReq, req) => {
    for (const name of hopByHopNames(req.headers)) proxyReq.removeHeader(name);
  });
  proxy.on('proxyRes', (proxyRes) => stripHopByHop(proxyRes.headers));
  proxy.on('error', (err, _req, res) => {
    const reason = (err as NodeJS.ErrnoException).code ?? err.message;
    const unreachable = NETWORK_ERRORS.has(reason);
    const code = unreachable ? ErrorCodes.UPSTREAM_UNREACHABLE : ErrorCodes.UPSTREAM_HANDSHAKE_FAILED;
    if (unreachable) {
      log.warn({ event: 'upstream_unreachable', target: targetText, reason }, 'upstream request failed');
    } else {
      const label = handshakeFailureReason(err as Error & { code?: string });
      metrics.handshakeFailures.inc({ listener: config.name, reason: label });
      audit.record(
        {
          event: 'upstream_handshake_failed',
          listener: config.name,
          remoteAddress: targetText,
          peer: expectedName,
          reason: label,
          detail: reason,
        },
        'mTLS handshake with the upstream failed',
      );
    }
    const message = unreachable
      ? `cannot reach ${targetText} (${reason})`
      : `mTLS to ${targetText} failed (${reason}); the server must present a certificate for "${expectedName}" from the trusted CA`;
    if (res instanceof http.ServerResponse) sendJsonError(res, 502, code, message);
    else res.destroy();
  });

  const server = http.createServer(httpServerOptions(config.limits), (req, res) => proxy.web(req, res));
  // WebSocket upgrades go through the same mTLS agent as requests.
  server.on('upgrade', (req, socket, head) => proxy.ws(req, socket, head));

  return listenerHandle({
    config,
    index,
    kind: 'http',
    direction: 'outbound',
    server,
    metrics,
    logger: log,
    details: { target: targetText, expectedName },
    afterDrain: () => {
      agent.destroy();
    },
  });
}
