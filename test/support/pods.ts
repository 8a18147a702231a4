/**
 * Reading and reaching pods of the one-node cluster (kube-node.ts): waiting for them through the
 * API, their events, and calling into a pod's own network namespace from the host (nsenter + curl),
 * as a process inside the pod would — the only way to reach what listens on the pod's 127.0.0.1.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { waitFor } from './cli.js';
import type { KubeApiServer } from './kube-apiserver.js';
import type { KubeNode } from './kube-node.js';

const exec = promisify(execFile);

export interface ContainerStatus {
  name: string;
  ready: boolean;
  started?: boolean;
  restartCount: number;
  containerID?: string;
  state: {
    running?: { startedAt: string };
    terminated?: { exitCode: number; reason?: string; startedAt?: string; finishedAt?: string };
    waiting?: { reason?: string; message?: string };
  };
  lastState?: { terminated?: { exitCode: number; reason?: string } };
}

export interface Pod {
  metadata: { name: string; namespace: string; uid: string; labels?: Record<string, string>; deletionTimestamp?: string };
  spec: { nodeName?: string; initContainers?: { name: string }[]; containers: { name: string }[] };
  status: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    initContainerStatuses?: ContainerStatus[];
    containerStatuses?: ContainerStatus[];
  };
}

export async function listPods(kube: KubeApiServer, namespace: string, selector: string): Promise<Pod[]> {
  const res = await kube.request<{ items?: Pod[] }>(
    'GET',
    `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(selector)}`,
  );
  return res.body.items ?? [];
}

export function isReady(pod: Pod): boolean {
  return (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Every container status of the pod, the native sidecar (an init container) included. */
export function statuses(pod: Pod): ContainerStatus[] {
  return [...(pod.status.initContainerStatuses ?? []), ...(pod.status.containerStatuses ?? [])];
}

export function status(pod: Pod, container: string): ContainerStatus | undefined {
  return statuses(pod).find((s) => s.name === container);
}

/** Waits for one pod matching `selector` for which `accept` holds, and returns it. */
export async function waitForPod(
  node: KubeNode,
  namespace: string,
  selector: string,
  accept: (pod: Pod) => boolean,
  what: string,
  timeoutMs = 180_000,
): Promise<Pod> {
  let found: Pod | undefined;
  let last: Pod[] = [];
  await waitFor(
    async () => {
      last = await listPods(node.kube, namespace, selector).catch(() => []);
      found = last.find((p) => !p.metadata.deletionTimestamp && accept(p));
      return found !== undefined;
    },
    timeoutMs,
    () =>
      `${what} (${namespace} ${selector}: ${JSON.stringify(last.map((p) => ({ name: p.metadata.name, phase: p.status.phase, statuses: statuses(p).map((s) => ({ name: s.name, ready: s.ready, state: s.state, restarts: s.restartCount })) })))}; kubelet: ${node.kubeletLog().slice(-1500)})`,
  );
  return found as Pod;
}

export interface PodEvent {
  reason: string;
  message: string;
  type: string;
  count?: number;
  firstTimestamp?: string;
  eventTime?: string;
}

/** The events of one pod, oldest first, as `kubectl describe pod` lists them. */
export async function podEvents(kube: KubeApiServer, pod: Pod): Promise<PodEvent[]> {
  const res = await kube.request<{ items?: PodEvent[] }>(
    'GET',
    `/api/v1/namespaces/${pod.metadata.namespace}/events?fieldSelector=${encodeURIComponent(`involvedObject.uid=${pod.metadata.uid}`)}`,
  );
  return res.body.items ?? [];
}

/** The host pid of a running container of the pod (containerd's task), to enter its namespaces. */
export async function containerPid(node: KubeNode, pod: Pod, container: string): Promise<number> {
  const id = status(pod, container)?.containerID?.replace(/^containerd:\/\//, '');
  if (!id) throw new Error(`${pod.metadata.name}: container ${container} has no ID yet`);
  const line = (await node.ctr(['tasks', 'ls'])).split('\n').find((l) => l.startsWith(`${id} `));
  const pid = Number(line?.trim().split(/\s+/)[1]);
  if (!pid) throw new Error(`${pod.metadata.name}: no running task for ${container} (${id})`);
  return pid;
}

/**
 * GET http://127.0.0.1:<port><path> from inside the pod's network namespace (curl on the host,
 * entered with nsenter into the network namespace only): what the pod's app would see.
 */
export async function curlInPod(
  pid: number,
  port: number,
  urlPath: string,
  opts: { method?: string; maxSeconds?: number } = {},
): Promise<{ status: number; body: string }> {
  const { stdout } = await exec('nsenter', [
    `--target=${pid}`,
    '--net',
    'curl',
    '--silent',
    '--request',
    opts.method ?? 'GET',
    '--max-time',
    String(opts.maxSeconds ?? 10),
    '--write-out',
    '\n%{http_code}',
    `http://127.0.0.1:${port}${urlPath}`,
  ]).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '\n0' }));
  const cut = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

/** Runs a command in a running container (ctr's exec: the container's user, environment and limits). */
export async function execInContainer(node: KubeNode, pod: Pod, container: string, args: string[]): Promise<{ code: number; out: string }> {
  const id = status(pod, container)?.containerID?.replace(/^containerd:\/\//, '');
  if (!id) throw new Error(`${pod.metadata.name}: container ${container} has no ID yet`);
  try {
    const out = await node.ctr(['tasks', 'exec', '--exec-id', `test-${Date.now()}`, id, ...args]);
    return { code: 0, out };
  } catch (err) {
    return { code: 1, out: (err as Error).message };
  }
}
