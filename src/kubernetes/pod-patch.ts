/**
 * The webhook's half of injection: a plan (pod-plan.ts) for a Pod as the API server sent it,
 * turned into an RFC 6902 JSON patch. Each list or map the sidecar touches is written whole
 * (`add` replaces an existing member), so the patch never depends on indexes the API server might
 * see differently, and nothing outside those fields is echoed back.
 */
import { STATUS_INJECTED } from './annotations.js';
import { isRecord, MARKS, type PodPlan } from './pod-plan.js';
import { CONTAINER_NAME, sidecarContainer, TOKEN_VOLUME, tokenVolume } from './sidecar-spec.js';

export interface PatchOp {
  op: 'add' | 'remove';
  path: string;
  value?: unknown;
}

const withoutNamed = (list: unknown, name: string): unknown[] =>
  (Array.isArray(list) ? list : []).filter((item) => !(isRecord(item) && item.name === name));

const hasNamed = (list: unknown, name: string): boolean => Array.isArray(list) && list.some((item) => isRecord(item) && item.name === name);

/** The patch that carries out `plan` on `pod`; empty when nothing changes. */
export function podPatch(pod: Record<string, unknown>, plan: PodPlan): PatchOp[] {
  if (plan.kind !== 'inject' && plan.kind !== 'remove') return [];
  const metadata = isRecord(pod.metadata) ? pod.metadata : undefined;
  const spec = isRecord(pod.spec) ? pod.spec : undefined;
  const labels = isRecord(metadata?.labels) ? metadata.labels : {};
  const annotations = isRecord(metadata?.annotations) ? metadata.annotations : {};
  const ops: PatchOp[] = [];
  if (!metadata) ops.push({ op: 'add', path: '/metadata', value: {} });
  if (!spec) ops.push({ op: 'add', path: '/spec', value: {} });

  if (plan.kind === 'inject') {
    const container = sidecarContainer(plan.request, plan);
    ops.push({ op: 'add', path: '/spec/initContainers', value: [container, ...withoutNamed(spec?.initContainers, CONTAINER_NAME)] });
    if (hasNamed(spec?.containers, CONTAINER_NAME))
      ops.push({ op: 'add', path: '/spec/containers', value: withoutNamed(spec?.containers, CONTAINER_NAME) });
    ops.push({ op: 'add', path: '/spec/volumes', value: [...withoutNamed(spec?.volumes, TOKEN_VOLUME), tokenVolume()] });
    ops.push({ op: 'add', path: '/metadata/labels', value: { ...labels, [MARKS.label]: 'true' } });
    ops.push({ op: 'add', path: '/metadata/annotations', value: { ...annotations, [MARKS.annotation]: STATUS_INJECTED } });
    return ops;
  }
  // Remove: only what the injector added (planPod checked the status annotation).
  const listOps = (field: 'initContainers' | 'containers' | 'volumes', name: string) => {
    if (!hasNamed(spec?.[field], name)) return;
    const kept = withoutNamed(spec?.[field], name);
    ops.push(kept.length > 0 ? { op: 'add', path: `/spec/${field}`, value: kept } : { op: 'remove', path: `/spec/${field}` });
  };
  listOps('initContainers', CONTAINER_NAME);
  listOps('containers', CONTAINER_NAME);
  listOps('volumes', TOKEN_VOLUME);
  const mapOps = (field: 'labels' | 'annotations', map: Record<string, unknown>, key: string) => {
    if (!Object.hasOwn(map, key)) return;
    const { [key]: _dropped, ...kept } = map;
    ops.push(
      Object.keys(kept).length > 0 ? { op: 'add', path: `/metadata/${field}`, value: kept } : { op: 'remove', path: `/metadata/${field}` },
    );
  };
  mapOps('labels', labels, MARKS.label);
  mapOps('annotations', annotations, MARKS.annotation);
  return ops;
}
