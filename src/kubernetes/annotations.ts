/**
 * The pod annotations that ask for the sidecar, read into what to inject. One parser for
 * `inject` and the admission webhook: an unknown or malformed annotation is an error that names
 * the annotation and the object, never silently ignored.
 */
import { parseHostPort } from '../config/parse.js';
import { checkImage, checkMount, checkPorts, checkResources, checkRole, checkTtl, checkVaultAddr } from './annotation-values.js';
import { clip, listSome } from './messages.js';

export const PREFIX = 'vault-mtls-sidecar/';
/** The pod label an injected pod carries (deploy/monitoring's PodMonitor selects it). */
export const INJECTED_LABEL = `${PREFIX}injected`;
/**
 * The annotation `inject` and the webhook set on a pod they added the sidecar to: the only proof
 * that a container named mtls-sidecar is theirs to replace or remove. A hand-written sidecar (as
 * in deploy/deployment.yaml, which carries the label above too) or an app container of that name
 * never has it. Set by the injector, not a setting: it is not among ANNOTATIONS.
 */
export const STATUS_ANNOTATION = `${PREFIX}status`;
/** Its value: what was added, so a reader of the pod sees it. */
export const STATUS_INJECTED = 'injected: initContainers/mtls-sidecar, volumes/vault-mtls-sidecar-token';

const ANNOTATIONS = {
  inject: '"true" to add the sidecar, "false" to remove it',
  role: 'the service, as given to vault setup --service (its PKI and kubernetes auth roles are <role>.<namespace>)',
  'vault-addr': "Vault's address (default: inject --vault-addr)",
  'auth-mount': 'the kubernetes auth mount (default kubernetes)',
  'pki-mount': 'the PKI mount that issues leaves (default pki_int, as vault setup makes it)',
  inbound: 'mTLS ports to the app: PORT:APP_PORT[/http|h2|tcp], comma-separated',
  outbound: 'local ports to upstreams: LOCAL_PORT=HOST:PORT[/http|h2|tcp], comma-separated',
  ttl: 'certificate lifetime, e.g. 1h',
  image: 'the sidecar image',
  'cpu-request': 'CPU request (default 50m)',
  'memory-request': 'memory request (default 96Mi)',
  'memory-limit': 'memory limit (default 256Mi)',
} as const;

type Mode = 'http' | 'h2' | 'tcp';

export interface InboundPort {
  port: number;
  appPort: number;
  mode: Mode;
}

export interface OutboundPort {
  localPort: number;
  host: string;
  port: number;
  mode: Mode;
}

export interface SidecarRequest {
  role: string;
  vaultAddr: string;
  authMount: string;
  pkiMount: string;
  inbound: InboundPort[];
  outbound: OutboundPort[];
  ttl: string | undefined;
  image: string;
  cpuRequest: string;
  memoryRequest: string;
  memoryLimit: string;
}

export interface InjectDefaults {
  vaultAddr?: string | undefined;
  image: string;
  /** Refuse the image annotation: every pod gets `image` (webhook --pin-image). */
  pinImage?: boolean | undefined;
}

/** What the annotations ask for: a sidecar, none (inject "false" or no annotation), or problems. */
export type Reading = { kind: 'inject'; request: SidecarRequest } | { kind: 'none' } | { kind: 'invalid'; problems: string[] };

export function readAnnotations(annotations: Record<string, unknown>, defaults: InjectDefaults): Reading {
  const problems: string[] = [];
  const ours = new Map<string, string>();
  // Unknown keys are one problem however many there are (each once listed every known name).
  const unknown: string[] = [];
  for (const [key, value] of Object.entries(annotations)) {
    if (!key.startsWith(PREFIX) || key === STATUS_ANNOTATION) continue;
    const name = key.slice(PREFIX.length);
    if (!Object.hasOwn(ANNOTATIONS, name)) {
      unknown.push(key);
      continue;
    }
    if (typeof value !== 'string') {
      problems.push(`annotation ${key} must be a string (quote it in YAML: "${clip(String(value))}")`);
      continue;
    }
    ours.set(name, value.trim());
  }
  if (unknown.length > 0) {
    problems.unshift(
      `unknown ${unknown.length === 1 ? 'annotation' : 'annotations'} ${listSome(unknown)}; known: ${Object.keys(ANNOTATIONS).join(', ')}`,
    );
  }
  const inject = ours.get('inject');
  if (inject !== undefined && inject !== 'true' && inject !== 'false') {
    problems.push(`annotation ${PREFIX}inject is "${clip(inject)}"; use "true" or "false"`);
  }
  if (problems.length > 0) return { kind: 'invalid', problems };
  if (inject !== 'true') return { kind: 'none' };

  const role = ours.get('role');
  if (!role) problems.push(`annotation ${PREFIX}role is missing: name the service's Vault role`);
  const vaultAddr = ours.get('vault-addr') ?? defaults.vaultAddr;
  if (!vaultAddr) problems.push(`no Vault address: set annotation ${PREFIX}vault-addr or pass inject --vault-addr`);
  const inbound = list(ours.get('inbound')).map((entry) => inboundPort(entry, problems));
  const outbound = list(ours.get('outbound')).map((entry) => outboundPort(entry, problems));
  if (inbound.length === 0 && outbound.length === 0) {
    problems.push(`annotations ${PREFIX}inbound and ${PREFIX}outbound are both empty: give at least one port`);
  }
  if (role) checkRole(role, problems);
  if (vaultAddr) checkVaultAddr(vaultAddr, ours.has('vault-addr'), problems);
  checkMount('auth-mount', ours.get('auth-mount') || undefined, problems);
  checkMount('pki-mount', ours.get('pki-mount') || undefined, problems);
  checkPorts(
    [
      ...inbound.flatMap((p) => (p ? [{ port: p.port, use: `${PREFIX}inbound ${p.port}:${p.appPort}` }] : [])),
      ...outbound.flatMap((p) => (p ? [{ port: p.localPort, use: `${PREFIX}outbound ${p.localPort}=${clip(p.host)}:${p.port}` }] : [])),
    ],
    inbound.flatMap((p) => (p ? [{ port: p.appPort, use: `${PREFIX}inbound ${p.port}:${p.appPort}` }] : [])),
    problems,
  );
  const resources = {
    cpuRequest: ours.get('cpu-request') || '50m',
    memoryRequest: ours.get('memory-request') || '96Mi',
    memoryLimit: ours.get('memory-limit') || '256Mi',
  };
  checkResources(resources, problems);
  const ttl = ours.get('ttl') || undefined;
  checkTtl(ttl, problems);
  const image = ours.get('image') || undefined;
  checkImage(image, defaults.pinImage ? defaults.image : undefined, problems);
  if (problems.length > 0 || !role || !vaultAddr) return { kind: 'invalid', problems };
  return {
    kind: 'inject',
    request: {
      role,
      vaultAddr,
      authMount: ours.get('auth-mount') || 'kubernetes',
      pkiMount: ours.get('pki-mount') || 'pki_int',
      inbound: inbound.filter((p): p is InboundPort => p !== undefined),
      outbound: outbound.filter((p): p is OutboundPort => p !== undefined),
      ttl,
      image: image ?? defaults.image,
      ...resources,
    },
  };
}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function modeOf(entry: string, problems: string[], annotation: string): { body: string; mode: Mode } {
  const [body = '', mode = 'http', ...rest] = entry.split('/');
  if (rest.length > 0 || !['http', 'h2', 'tcp'].includes(mode)) {
    problems.push(
      `annotation ${PREFIX}${annotation}: "${clip(entry)}" has mode "${clip(entry.slice(body.length + 1))}"; use http, h2 or tcp`,
    );
  }
  return { body, mode: mode as Mode };
}

function portNumber(text: string): number | undefined {
  const n = Number(text);
  return /^\d+$/.test(text) && n >= 1 && n <= 65535 ? n : undefined;
}

function inboundPort(entry: string, problems: string[]): InboundPort | undefined {
  const { body, mode } = modeOf(entry, problems, 'inbound');
  const [port, appPort] = body.split(':').map(portNumber);
  if (body.split(':').length !== 2 || port === undefined || appPort === undefined) {
    problems.push(`annotation ${PREFIX}inbound: "${clip(entry)}" is not PORT:APP_PORT, e.g. 8443:8080`);
    return undefined;
  }
  return { port, appPort, mode };
}

function outboundPort(entry: string, problems: string[]): OutboundPort | undefined {
  const { body, mode } = modeOf(entry, problems, 'outbound');
  const at = body.indexOf('=');
  const localPort = portNumber(body.slice(0, at));
  const target = at > 0 ? parseHostPort(body.slice(at + 1)) : undefined;
  if (localPort === undefined || !target) {
    problems.push(`annotation ${PREFIX}outbound: "${clip(entry)}" is not LOCAL_PORT=HOST:PORT, e.g. 9001=payments.default.svc:8443`);
    return undefined;
  }
  return { localPort, host: target.host, port: target.port, mode };
}
