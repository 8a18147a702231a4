/**
 * Checks on annotation values that would otherwise pass through to the pod unchecked: a value the
 * API server rejects turns a `kubectl apply` into a confusing error far from the annotation, and
 * one it accepts but the sidecar cannot live with (a 1Mi memory limit, a 1s certificate lifetime,
 * two listeners on one port) becomes a crash-loop. Each message names the annotation, what was
 * found and what to write instead; `inject` and the webhook print the same ones.
 */
import { parseDurationSeconds } from '../config/parse.js';
import { clip } from './messages.js';

const PREFIX = 'vault-mtls-sidecar/';

/** The sidecar's admin server (probes, metrics) in every injected pod. */
export const ADMIN_PORT = 15000;

/**
 * Below this the sidecar is OOM-killed at start (docs/benchmark.md "Footprint": ~85 MiB idle on Node 24), so
 * a smaller limit is a crash-loop, never a working pod.
 */
const MIN_MEMORY_LIMIT_BYTES = 96 * 1024 * 1024;

/** The longest certificate the annotation may ask for; short-lived is the point. */
const MAX_TTL_SECONDS = 30 * 86400;

/** As the sidecar's own config check (identity.ttl): renewal needs time to happen. */
const MIN_TTL_SECONDS = 10;

const MEMORY_UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/** "256Mi", "1G", "134217728" → bytes; undefined for anything else (Kubernetes accepts more, we accept these). */
export function memoryBytes(text: string): number | undefined {
  const match = /^(\d{1,12})(k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * (MEMORY_UNITS[match[2] ?? ''] ?? 1);
}

/** "50m", "0.5", "2" → millicores; undefined for anything else. */
export function cpuMillis(text: string): number | undefined {
  const milli = /^(\d{1,9})m$/.exec(text);
  if (milli) return Number(milli[1]);
  const cores = /^(\d{1,6})(\.\d{1,3})?$/.exec(text);
  return cores ? Math.round(Number(text) * 1000) : undefined;
}

export interface Resources {
  cpuRequest: string;
  memoryRequest: string;
  memoryLimit: string;
}

export function checkResources(resources: Resources, problems: string[]): void {
  const cpu = cpuMillis(resources.cpuRequest);
  if (cpu === undefined || cpu === 0) {
    problems.push(`annotation ${PREFIX}cpu-request: "${clip(resources.cpuRequest)}" is not a CPU quantity above zero; use e.g. 50m or 0.5`);
  }
  const request = memoryBytes(resources.memoryRequest);
  const limit = memoryBytes(resources.memoryLimit);
  if (request === undefined || request === 0) {
    problems.push(
      `annotation ${PREFIX}memory-request: "${clip(resources.memoryRequest)}" is not a memory quantity above zero; use e.g. 96Mi`,
    );
  }
  if (limit === undefined) {
    problems.push(`annotation ${PREFIX}memory-limit: "${clip(resources.memoryLimit)}" is not a memory quantity; use e.g. 256Mi`);
  } else if (limit < MIN_MEMORY_LIMIT_BYTES) {
    problems.push(
      `annotation ${PREFIX}memory-limit: "${clip(resources.memoryLimit)}" is below 96Mi, where the sidecar is killed for memory at start; use at least 96Mi (default 256Mi)`,
    );
  }
  if (request !== undefined && limit !== undefined && request > limit) {
    problems.push(
      `annotation ${PREFIX}memory-request: "${clip(resources.memoryRequest)}" is above memory-limit "${clip(resources.memoryLimit)}"; the API server refuses a request above its limit`,
    );
  }
}

export function checkTtl(ttl: string | undefined, problems: string[]): void {
  if (ttl === undefined) return;
  const seconds = parseDurationSeconds(ttl);
  if (seconds === undefined) {
    problems.push(`annotation ${PREFIX}ttl: "${clip(ttl)}" is not a duration; use e.g. 1h, 30m or 90s`);
  } else if (seconds < MIN_TTL_SECONDS || seconds > MAX_TTL_SECONDS) {
    problems.push(
      `annotation ${PREFIX}ttl: "${clip(ttl)}" is outside 10s to 30d; certificates this sidecar renews live minutes to hours (e.g. 1h)`,
    );
  }
}

/**
 * An image reference as Kubernetes passes it on: [registry[:port]/]path[:tag][@digest], no spaces,
 * no shell or YAML syntax.
 */
const IMAGE = /^[a-z0-9]+([._-][a-z0-9]+)*(:\d+)?(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;

export function checkImage(annotation: string | undefined, pinned: string | undefined, problems: string[]): void {
  if (annotation === undefined) return;
  if (pinned !== undefined) {
    problems.push(
      `annotation ${PREFIX}image is refused: this injector pins the sidecar image to ${pinned} (--pin-image); remove the annotation`,
    );
    return;
  }
  if (annotation.length > 512 || !IMAGE.test(annotation)) {
    problems.push(
      `annotation ${PREFIX}image: "${clip(annotation)}" is not an image reference; use e.g. ghcr.io/example/vault-mtls-sidecar:0.1.0`,
    );
  }
}

/** The role names the certificate (`<role>.<namespace>.svc`) and Vault paths: a DNS label. */
export function checkRole(role: string, problems: string[]): void {
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(role)) {
    problems.push(
      `annotation ${PREFIX}role: "${clip(role)}" is not a DNS label (lowercase letters, digits and -, at most 63); it becomes the certificate's name <role>.<namespace>.svc`,
    );
  }
}

export interface PortUse {
  port: number;
  /** How the annotation named it, for the message: `inbound 8443:8080`. */
  use: string;
}

/**
 * The sidecar binds every inbound port (0.0.0.0) and every outbound local port (127.0.0.1) in the
 * pod's one network namespace, beside the admin server on 15000; the app binds the inbound
 * targets. Two of them on one port is a sidecar or an app that cannot start.
 */
export function checkPorts(bound: PortUse[], appPorts: PortUse[], problems: string[]): void {
  const seen = new Map<number, string>([[ADMIN_PORT, 'the sidecar admin server']]);
  for (const { port, use } of bound) {
    const other = seen.get(port);
    if (other !== undefined) problems.push(`port ${port} is used twice: ${use} and ${other}; give each listener its own port`);
    else seen.set(port, use);
  }
  for (const { port, use } of appPorts) {
    const other = seen.get(port);
    if (other !== undefined)
      problems.push(`port ${port} is used twice: ${use} (the app listens there) and ${other}; give the sidecar another port`);
  }
}

export function checkVaultAddr(address: string, annotated: boolean, problems: string[]): void {
  let ok = false;
  try {
    const url = new URL(address);
    ok = (url.protocol === 'https:' || url.protocol === 'http:') && url.username === '' && url.password === '';
  } catch {
    ok = false;
  }
  if (!ok) {
    const from = annotated ? `annotation ${PREFIX}vault-addr` : 'the Vault address (--vault-addr)';
    problems.push(`${from}: "${clip(address)}" is not an http:// or https:// URL; use e.g. https://vault.vault.svc:8200`);
  }
}

/** A Vault mount path: segments of letters, digits, `.`, `_` and `-`. */
export function checkMount(annotation: 'auth-mount' | 'pki-mount', value: string | undefined, problems: string[]): void {
  if (value === undefined || /^[\w.-]{1,64}(\/[\w.-]{1,64}){0,7}$/.test(value)) return;
  problems.push(`annotation ${PREFIX}${annotation}: "${clip(value)}" is not a Vault mount path; use e.g. pki_int or kubernetes`);
}
