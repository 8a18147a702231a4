/**
 * What gets added to a pod for a SidecarRequest: the native sidecar container (as in
 * deploy/deployment.yaml) carrying its whole configuration in VAULT_MTLS_SIDECAR_CONFIG, and the
 * service-account token projected for audience "vault". Plain objects: `inject` writes them into
 * YAML, the webhook into a JSON patch.
 */
import { stringify } from 'yaml';
import { CONFIG_ENV } from '../config/load.js';
import { vaultNames } from '../vault/names.js';
import type { SidecarRequest } from './annotations.js';

export const CONTAINER_NAME = 'mtls-sidecar';
export const TOKEN_VOLUME = 'vault-mtls-sidecar-token';
const TOKEN_DIR = '/var/run/secrets/vault';

import { ADMIN_PORT } from './annotation-values.js';

export interface PodIdentity {
  namespace: string;
  serviceAccount: string;
}

/**
 * The sidecar's configuration: names from the role (the service) and namespace, the SPIFFE ID
 * from the service account, and the Vault roles `vault setup` makes for that service in that
 * namespace (src/vault/names.ts).
 */
export function sidecarConfig(request: SidecarRequest, pod: PodIdentity): Record<string, unknown> {
  const { role } = request;
  const ns = pod.namespace;
  const vaultRoles = vaultNames(role, ns);
  return {
    vault: {
      pki: { mount: request.pkiMount, role: vaultRoles.pkiRole },
      auth: { method: 'kubernetes', mount: request.authMount, role: vaultRoles.authRole, tokenFile: `${TOKEN_DIR}/token` },
    },
    identity: {
      commonName: `${role}.${ns}.svc`,
      dnsNames: [role, `${role}.${ns}`, `${role}.${ns}.svc`, `${role}.${ns}.svc.cluster.local`],
      uriSans: [`spiffe://cluster.local/ns/${ns}/sa/${pod.serviceAccount}`],
      ...(request.ttl ? { ttl: request.ttl } : {}),
    },
    ...(request.inbound.length > 0
      ? {
          inbound: request.inbound.map((p) => ({
            name: `in-${p.port}`,
            mode: p.mode,
            listen: `0.0.0.0:${p.port}`,
            target: `127.0.0.1:${p.appPort}`,
          })),
        }
      : {}),
    ...(request.outbound.length > 0
      ? {
          outbound: request.outbound.map((p) => ({
            name: `out-${p.localPort}`,
            mode: p.mode,
            listen: `127.0.0.1:${p.localPort}`,
            target: `${p.host}:${p.port}`,
            serverName: p.host,
          })),
        }
      : {}),
    // kubelet probes come from the node, so the pod IP: from there only /healthz, /readyz and
    // /metrics answer (src/admin/server.ts); /certs and POST /rotate answer loopback callers.
    admin: { listen: `0.0.0.0:${ADMIN_PORT}` },
  };
}

/**
 * The startup probe holds the app until /readyz (a verified certificate, every listener bound).
 * Waiting for Vault is not a crash: the sidecar keeps retrying (every few seconds while it has no
 * certificate) and /healthz stays OK, so a restart would only add crash-loop back-off to the
 * recovery — 60 s (the old threshold) restarted every pod started during an outage every minute.
 * A day of 1 s probes: the app stays held through any outage worth riding out and starts within
 * a second of the first certificate. Liveness (/healthz) takes over once started.
 */
export const STARTUP_PROBE_TIMING = { periodSeconds: 1, failureThreshold: 86_400 } as const;

export function sidecarContainer(request: SidecarRequest, pod: PodIdentity): Record<string, unknown> {
  const probe = (path: string) => ({ httpGet: { path, port: ADMIN_PORT } });
  return {
    name: CONTAINER_NAME,
    image: request.image,
    restartPolicy: 'Always',
    args: ['run'],
    env: [
      { name: 'VAULT_ADDR', value: request.vaultAddr },
      { name: CONFIG_ENV, value: stringify(sidecarConfig(request, pod)) },
    ],
    ports: [
      ...request.inbound.map((p) => ({ name: `mtls-${p.port}`.slice(0, 15), containerPort: p.port })),
      { name: 'sidecar-admin', containerPort: ADMIN_PORT },
    ],
    startupProbe: { ...probe('/readyz'), ...STARTUP_PROBE_TIMING },
    readinessProbe: { ...probe('/readyz'), periodSeconds: 5 },
    livenessProbe: { ...probe('/healthz'), periodSeconds: 10 },
    resources: {
      requests: { cpu: request.cpuRequest, memory: request.memoryRequest },
      limits: { memory: request.memoryLimit },
    },
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: 1000,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [{ name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true }],
  };
}

export function tokenVolume(): Record<string, unknown> {
  return {
    name: TOKEN_VOLUME,
    projected: { sources: [{ serviceAccountToken: { path: 'token', audience: 'vault', expirationSeconds: 3600 } }] },
  };
}
