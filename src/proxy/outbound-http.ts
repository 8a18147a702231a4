/**
 * Outbound in http mode: the app speaks plaintext HTTP to a localhost port; we forward over a
 * keep-alive pool of mTLS connections to the target, presenting the pod's certificate and checking
 * that the server carries the expected name.
 */
import http from 'node:http';
import httpProxy from 'http-proxy';
import type { OutboundListenerConfig } from '../config/schema.js';
import { hopByHopNames, stripHopByHop } from './hop-by-hop.js';
import { sendJsonError } from './json-error.js';
import { httpServerOptions } from './limits.js';
import { type Listener, type ListenerDeps, listenerHandle } from './listener.js';
import { MtlsAgent } from './mtls-agent.js';
import { upstreamFor } from './upstream.js';

export function createOutboundHttpListener(config: OutboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const log = deps.logger.child({ listener: config.name, direction: 'outbound' });
  const upstream = upstreamFor(config, deps);
  const agent = new MtlsAgent(deps.contexts, upstream, config.limits.connectTimeout * 1000);
  const proxy = httpProxy.createProxyServer({
    target: `https://${upstream.targetText}`,
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
    const failure = upstream.failed(err as Error & { code?: string });
    if (res instanceof http.ServerResponse) sendJsonError(res, 502, failure.code, failure.message);
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
    metrics: deps.metrics,
    logger: log,
    details: { target: upstream.targetText, expectedName: upstream.expectedName },
    afterDrain: () => agent.destroy(),
  });
}
