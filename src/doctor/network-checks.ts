/**
 * The pod side of `doctor`: the listener ports, the certificate in a real mutual TLS handshake
 * with itself (as peers will check it: chain, CRLs, key usages), and each outbound upstream dialled
 * with mTLS and checked for the expected name — through the TLS code `run` uses.
 */
import net from 'node:net';
import tls from 'node:tls';
import { pino } from 'pino';
import { formatHostPort, type HostPort } from '../config/parse.js';
import type { Config, OutboundListenerConfig } from '../config/schema/index.js';
import { errorMessage } from '../errors.js';
import type { CertificateBundle } from '../identity/bundle.js';
import { IdentityStore } from '../identity/store.js';
import { type TrustMaterial, TrustStore } from '../identity/trust.js';
import { listenOn } from '../proxy/server-lifecycle.js';
import { upstreamFor } from '../proxy/upstream.js';
import { AuditLog } from '../telemetry/audit.js';
import { handshakeFailureReason, Metrics } from '../telemetry/metrics.js';
import { TlsContexts } from '../tls/contexts.js';
import { peerIdentity } from '../tls/peer.js';
import { type CheckResult, fail, pass, skip } from './report.js';

/** The upstream hung up as soon as the handshake was done: what a server that rejects the client certificate does over TLS 1.3. */
const REFUSED_AFTER_HANDSHAKE = 'ERR_TLS_REFUSED_AFTER_HANDSHAKE';

/** How long an established connection is watched for the peer refusing our certificate (TLS 1.3 says so after the handshake). */
const REFUSAL_WAIT_MS = 300;

const NEEDS_CERTIFICATE = 'needs a certificate the sidecar would serve (see the checks above)';

/** Whether a vault-mtls-sidecar answers on the admin address: then its listener ports are in use by it. */
async function runningSidecar(admin: HostPort): Promise<boolean> {
  try {
    const res = await fetch(`http://${formatHostPort(admin)}/healthz`, { signal: AbortSignal.timeout(1000) });
    return res.ok && ((await res.json()) as { status?: string }).status === 'ok';
  } catch {
    return false;
  }
}

/** Binds `address` as a listener would (listenOn) and lets go; the bind error when it cannot. */
async function bindable(address: HostPort, id: string): Promise<NodeJS.ErrnoException | undefined> {
  const server = net.createServer();
  try {
    await listenOn(server, address, id);
    return undefined;
  } catch (err) {
    return (err as Error).cause as NodeJS.ErrnoException;
  } finally {
    server.close();
  }
}

const BIND_FIXES: Record<string, string> = {
  EADDRINUSE: 'another process holds the port (ss -ltnp | grep :PORT); pick another port or stop it',
  EACCES: 'ports below 1024 need privileges the sidecar should not have: use a port above 1024',
  EADDRNOTAVAIL: 'no interface of this host has that address: use 0.0.0.0, 127.0.0.1 or the pod IP',
};

export async function portChecks(config: Config): Promise<CheckResult[]> {
  const listeners: { id: string; listen: HostPort }[] = [
    ...config.inbound.map((l) => ({ id: `listen.${l.name}`, listen: l.listen })),
    ...config.outbound.map((l) => ({ id: `listen.${l.name}`, listen: l.listen })),
    { id: 'listen.admin', listen: config.admin.listen },
  ];
  const sidecarRunning = await runningSidecar(config.admin.listen);
  const checks: CheckResult[] = [];
  for (const { id, listen } of listeners) {
    const where = formatHostPort(listen);
    if (listen.port === 0) {
      checks.push(pass(id, `${where}: any free port`));
      continue;
    }
    const err = await bindable(listen, id);
    if (!err) checks.push(pass(id, `${where} is free`));
    else if (err.code === 'EADDRINUSE' && sidecarRunning)
      checks.push(pass(id, `${where} is in use by the running sidecar (its admin answers)`));
    else
      checks.push(
        fail(
          id,
          `${where}: ${err.code ?? errorMessage(err)}`,
          (BIND_FIXES[err.code ?? ''] ?? 'check the listen address').replace('PORT', String(listen.port)),
        ),
      );
  }
  return checks;
}

/**
 * TLS contexts as `run` builds them, from the certificate and trust material the earlier checks
 * produced; undefined when there is none, or when the sidecar would refuse to serve the certificate
 * (verify-before-publish: the checks above say why).
 */
export function contextsFor(
  config: Config,
  bundle: CertificateBundle | undefined,
  trust: TrustMaterial | undefined,
): TlsContexts | undefined {
  if (!bundle || !trust) return undefined;
  const store = new IdentityStore({ commonName: '', dnsNames: [], ipSans: [], uriSans: [], ttl: 0 });
  try {
    store.publish(bundle);
  } catch {
    return undefined;
  }
  const trustStore = new TrustStore();
  const crlMode = config.vault?.pki.crl ?? 'off';
  // As the trust refresher does: soft mode enforces no CRL while an issuer has none.
  const enforceCrls = crlMode === 'closed' || (crlMode === 'soft' && (trust.crlMissing ?? []).length === 0);
  trustStore.update({ caPems: trust.caPems, crlPems: enforceCrls ? trust.crlPems : [] });
  return new TlsContexts(store, trustStore, config.tls);
}

const REASON_FIXES: Record<string, string> = {
  unknown_ca: 'the certificate does not chain to the trust bundle: issue it from the CA peers trust',
  expired: 'renew the certificate',
  not_yet_valid: 'check the clocks',
  revoked: 'the certificate was revoked: issue a new one',
  wrong_purpose:
    'the certificate lacks the clientAuth or serverAuth extended key usage: a Vault role needs client_flag and server_flag (the defaults)',
};

/**
 * This certificate in a mutual TLS handshake with itself, through the contexts the listeners and
 * outbound dials use: what a peer running this sidecar will check (chain, CRLs, key usages both ways).
 */
export async function selfHandshake(contexts: TlsContexts | undefined): Promise<CheckResult> {
  if (!contexts) return skip('tls.mutual', NEEDS_CERTIFICATE);
  const server = tls.createServer({ ...contexts.current().server, requestCert: true, rejectUnauthorized: true });
  let serverError: Error | undefined;
  server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
    // Node leaves the verification failure on authorizationError and reports a bare hang-up (see admission.ts).
    const code = socket.authorizationError ? String(socket.authorizationError) : err.code;
    serverError = Object.assign(new Error(code ?? err.message), { code });
  });
  server.on('secureConnection', (socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  try {
    await new Promise<void>((resolve, reject) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        secureContext: contexts.current().client,
        rejectUnauthorized: true,
        // Names are a matter for each peer's expectations (cert.names, outbound.*), not for this check.
        checkServerIdentity: () => undefined,
      });
      socket.once('secureConnect', () => socket.once('close', () => (serverError ? reject(serverError) : resolve())));
      socket.on('data', () => undefined);
      // The server's reason (its verification of our certificate) says more than the client's hang-up; it may land just after.
      socket.once('error', (err) => setTimeout(() => reject(serverError ?? err), 50));
    });
    return pass(
      'tls.mutual',
      'the certificate passes a mutual TLS handshake with itself (chain, CRLs and key usages, as peers check them)',
    );
  } catch (err) {
    const reason = handshakeFailureReason(err as Error & { code?: string });
    return fail(
      'tls.mutual',
      `a mutual TLS handshake with this certificate fails: ${reason} (${errorMessage(err)})`,
      REASON_FIXES[reason] ?? 'see the error',
    );
  } finally {
    server.close();
  }
}

function outboundFix(reason: string, upstream: OutboundListenerConfig, expected: string): string {
  switch (reason) {
    case 'peer_refused_certificate':
      return `the upstream refused this sidecar's certificate: it must trust this sidecar's CA, and its authorization must allow this identity`;
    case 'identity_denied':
      return `the upstream's certificate does not carry ${expected}: set serverName on outbound ${upstream.name} to a name it carries`;
    case 'unknown_ca':
      return "the upstream's certificate is not from a CA in this sidecar's trust bundle (another PKI mount or CA?)";
    default:
      return REASON_FIXES[reason] ?? 'check the upstream';
  }
}

const NETWORK_FIXES: Record<string, string> = {
  ECONNREFUSED: 'nothing listens there: check the target and that the upstream (its sidecar) is running',
  ENOTFOUND: 'the host name does not resolve: check the target (Service name and namespace)',
  ETIMEDOUT: 'no answer within limits.connectTimeout: check network policies and the target',
};

/** Each outbound upstream dialled as `run` dials it, with the certificate and trust the checks above produced. */
export async function outboundChecks(config: Config, contexts: TlsContexts | undefined): Promise<CheckResult[]> {
  if (!contexts) return config.outbound.map((o) => skip(`outbound.${o.name}`, NEEDS_CERTIFICATE));
  const silent = pino({ level: 'silent' });
  const deps = { contexts, logger: silent, metrics: new Metrics(), audit: new AuditLog(silent) };
  return Promise.all(
    config.outbound.map(async (outbound): Promise<CheckResult> => {
      const id = `outbound.${outbound.name}`;
      const upstream = upstreamFor(outbound, deps);
      try {
        const { peer, alpn } = await dial(outbound, upstream.tlsOptions());
        const who = peer ? [...peer.uris, ...peer.dnsNames].join(', ') || peer.subject : 'unknown';
        const text = `${upstream.targetText}: mTLS handshake done, the server is ${who} (expected ${upstream.expectedName})`;
        if (outbound.mode === 'h2' && alpn !== 'h2') {
          return fail(
            id,
            `${text}, but it does not speak HTTP/2 (ALPN ${alpn || 'none'})`,
            'use mode http, or point the target at an h2 listener',
          );
        }
        return pass(id, text);
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (NETWORK_FIXES[code]) return fail(id, `${upstream.targetText}: ${code}`, NETWORK_FIXES[code] ?? '');
        const reason =
          code === REFUSED_AFTER_HANDSHAKE ? 'peer_refused_certificate' : handshakeFailureReason(err as Error & { code?: string });
        return fail(id, `${upstream.targetText}: ${reason} (${errorMessage(err)})`, outboundFix(reason, outbound, upstream.expectedName));
      }
    }),
  );
}

function dial(
  outbound: OutboundListenerConfig,
  options: tls.ConnectionOptions,
): Promise<{ peer: ReturnType<typeof peerIdentity>; alpn: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      ...options,
      host: outbound.target.host,
      port: outbound.target.port,
      ALPNProtocols: outbound.mode === 'h2' ? ['h2'] : ['http/1.1'],
    });
    socket.setTimeout(outbound.limits.connectTimeout * 1000, () =>
      socket.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
    );
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      const peer = peerIdentity(socket);
      const alpn = socket.alpnProtocol || '';
      // TLS 1.3: a server that refuses our certificate does so after the client's handshake is
      // done — with an alert, or (Node's servers) by closing at once.
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ peer, alpn });
      }, REFUSAL_WAIT_MS);
      socket.once('end', () => {
        clearTimeout(timer);
        reject(Object.assign(new Error('the upstream closed the connection right after the handshake'), { code: REFUSED_AFTER_HANDSHAKE }));
      });
      socket.on('data', () => undefined);
    });
  });
}
