/**
 * `vault-mtls-sidecar webhook`: the mutating admission webhook (src/kubernetes/webhook.ts) on
 * HTTPS. Its serving certificate comes from the configured identity source (Vault or files),
 * exactly as a sidecar's, and rotates without a restart; /readyz on the admin server says when it
 * has one. The Helm chart (deploy/) is to register it with a MutatingWebhookConfiguration.
 */
import https from 'node:https';
import type { Argv } from 'yargs';
import type { Environment } from '../config/load.js';
import { parseHostPort } from '../config/parse.js';
import { ErrorCodes, SidecarError } from '../errors.js';
import { youngGarbage } from '../memory/young-garbage.js';
import { keepServerCurrent } from '../tls/generation.js';
import { DEFAULT_IMAGE } from './inject.js';
import { type RunArgs, runOptions, startFromArgs } from './run.js';

/** How long a connection may stay silent: in the TLS handshake, before or within a request. */
const SILENT_PEER_MS = 5000;

/**
 * The API server opens a few connections per replica and reuses them; past these, a peer holding
 * sockets competes only with itself (silent handshakes evict each other, see connection-gate.ts).
 */
const WEBHOOK_LIMITS = { maxConnections: 256, maxPendingHandshakes: 128 };

export type WebhookArgs = RunArgs & { listen: string; 'pod-vault-addr'?: string; image: string; 'pin-image': boolean };

export function webhookOptions(yargs: Argv): Argv<WebhookArgs> {
  return runOptions(yargs)
    .option('listen', { type: 'string', default: '0.0.0.0:8443', describe: 'HTTPS address the API server calls (POST /mutate)' })
    .option('pod-vault-addr', {
      type: 'string',
      describe: "Vault address for injected pods without the annotation (default: the webhook's own)",
    })
    .option('image', {
      type: 'string',
      default: DEFAULT_IMAGE,
      describe: 'sidecar image for injected pods',
    })
    .option('pin-image', {
      type: 'boolean',
      default: true,
      describe: 'every pod gets --image, and a pod with the vault-mtls-sidecar/image annotation is refused (--no-pin-image allows it)',
    }) as Argv<WebhookArgs>;
}

export async function webhookCommand(args: WebhookArgs, env: Environment): Promise<number> {
  const address = parseHostPort(args.listen);
  if (!address) throw new SidecarError(ErrorCodes.USAGE, `webhook --listen: "${args.listen}" is not host:port; use e.g. 0.0.0.0:8443`);
  const { sidecar, config, logger, serving } = await startFromArgs(args, env);
  const { webhookHandler } = await import('../kubernetes/webhook.js');
  const { listenOn } = await import('../proxy/server-lifecycle.js');
  const { gateConnections } = await import('../proxy/connection-gate.js');
  // The API server presents no client certificate to webhooks unless the cluster's admission
  // configuration gives it one (not possible on most managed clusters), so none is asked for: the
  // chart's NetworkPolicy limits who can connect, and every request is answered without trust.
  // It answers within timeoutSeconds (≤ 30 s) or gives up, so a peer that stays silent, before
  // the handshake or mid-request, is cut after a few seconds instead of holding a socket.
  const server = https.createServer(
    {
      // tls.profile applies as on every listener (keepServerCurrent sets the context at once).
      ...sidecar.contexts.current().server,
      handshakeTimeout: SILENT_PEER_MS,
      headersTimeout: SILENT_PEER_MS,
      requestTimeout: SILENT_PEER_MS,
      connectionsCheckingInterval: 1000,
      keepAliveTimeout: SILENT_PEER_MS,
    },
    webhookHandler(
      { vaultAddr: args['pod-vault-addr'] ?? config.vault?.address, image: args.image, pinImage: args['pin-image'] },
      logger,
      sidecar.audit,
      (bytes) => youngGarbage.relayed(bytes),
    ),
  );
  gateConnections(server, 'webhook', WEBHOOK_LIMITS, sidecar.metrics, sidecar.audit);
  keepServerCurrent(server, sidecar.contexts);
  const bound = await listenOn(server, address, 'webhook --listen');
  logger.info({ address: `${address.host}:${bound.port}` }, 'webhook listener ready');
  const code = await serving;
  server.close();
  server.closeAllConnections();
  return code;
}
