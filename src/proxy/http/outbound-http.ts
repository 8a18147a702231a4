/**
 * Outbound in http mode: the app speaks plaintext HTTP to a localhost port; we forward over a
 * keep-alive pool of mTLS connections to the target, presenting the pod's certificate and checking
 * that the server carries the expected name.
 */
import http from 'node:http';
import type { OutboundListenerConfig } from '../../config/schema/index.js';
import { deadlinesFor } from '../certificate-deadline.js';
import { sendJsonError } from '../json-error.js';
import { guardRequestBody, httpServerOptions } from '../limits.js';
import { type Listener, type ListenerDeps, listenerHandle } from '../listener.js';
import { IGNORE_BODY } from '../listener-types.js';
import { upstreamFor } from '../upstream.js';
import { createHttpForwarder } from './http-forwarder.js';
import { MtlsAgent } from './mtls-agent.js';
import { MtlsPool } from './mtls-pool.js';

export function createOutboundHttpListener(config: OutboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const log = deps.logger.child({ listener: config.name, direction: 'outbound' });
  const upstream = upstreamFor(config, deps);
  const connectTimeoutMs = config.limits.connectTimeout * 1000;
  const deadlines = deadlinesFor(config.name, config.limits, deps);
  const pool = new MtlsPool(deps.contexts, upstream, connectTimeoutMs, config.limits.maxConnections, deadlines);
  const upgradeAgent = new MtlsAgent(deps.contexts, upstream, connectTimeoutMs, deadlines);
  const forwarder = createHttpForwarder({
    target: `https://${upstream.targetText}`,
    pool: () => pool.current(),
    upgradeAgent,
    // The upstream sees its own name in Host, as if the app had called it directly.
    host: upstream.targetText,
    servername: upstream.servername,
    idleTimeoutMs: config.limits.idleTimeout * 1000,
    bodyRelayed: deps.bodyRelayed ?? IGNORE_BODY,
    onError(err, _req, res) {
      const failure = upstream.failed(err);
      if (res instanceof http.ServerResponse) sendJsonError(res, 502, failure.code, failure.message);
      else res.destroy();
    },
  });

  const server = http.createServer(httpServerOptions(config.limits), (req, res) => {
    guardRequestBody(req, res, config.limits);
    forwarder.web(req, res);
  });
  // WebSocket upgrades go through an mTLS agent built from the same upstream description.
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    forwarder.ws(req, socket, head);
  });

  return listenerHandle({
    config,
    index,
    kind: 'http',
    upstream,
    direction: 'outbound',
    server,
    deps,
    logger: log,
    afterDrain: () => {
      upgradeAgent.destroy();
      void pool.destroy();
    },
  });
}
