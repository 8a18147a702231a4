/**
 * `inject` on Kubernetes YAML: finds the pod template of each object (Pod, Deployment,
 * StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, and the items of a List), reads its
 * annotations, and adds, updates or removes the sidecar in place — editing the YAML document, so
 * everything else (comments, order, the user's own containers) stays as written. Idempotent: the
 * sidecar is found by name and replaced, so a second run changes nothing and a changed annotation
 * updates it. `uninject` removes exactly what inject adds (a collection it emptied goes too).
 */
import { Document, isMap, isSeq, parseAllDocuments } from 'yaml';
import { ErrorCodes, SidecarError } from '../errors.js';
import { INJECTED_LABEL, type InjectDefaults, PREFIX, readAnnotations } from './annotations.js';
import { CONTAINER_NAME, sidecarContainer, TOKEN_VOLUME, tokenVolume } from './sidecar-spec.js';

type Path = (string | number)[];

/** Where the pod template's metadata and spec are, per kind (relative to the object). */
const POD_TEMPLATE: Record<string, Path> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export interface InjectOptions extends InjectDefaults {
  uninject?: boolean;
  /** For objects without metadata.namespace. */
  namespace?: string;
}

export interface InjectResult {
  text: string;
  /** "Deployment shop/orders: injected", one per pod template seen. */
  report: string[];
}

/** Transforms every document of `text`; throws one SidecarError listing every problem found. */
export function injectYaml(text: string, source: string, options: InjectOptions): InjectResult {
  const docs = parseAllDocuments(text);
  const problems: string[] = [];
  const report: string[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      problems.push(`${source}: not valid YAML: ${doc.errors[0]?.message.split('\n')[0]}`);
      continue;
    }
    const object = doc.toJS() as unknown;
    if (!isRecord(object)) continue;
    if (object.kind === 'List' && Array.isArray(object.items)) {
      object.items.forEach((item, i) => {
        injectObject(doc, ['items', i], item, options, problems, report);
      });
    } else injectObject(doc, [], object, options, problems, report);
  }
  if (problems.length > 0) throw new SidecarError(ErrorCodes.INJECT_INVALID, problems.join('\n'));
  // Documents keep their own start markers; join them the way they were separated.
  return { text: docs.map((d) => d.toString({ lineWidth: 0 })).join(''), report };
}

export interface PodResult {
  /** The pod with the sidecar added, updated or removed; undefined when nothing changes. */
  pod?: Record<string, unknown>;
  /** Annotation problems, each naming the annotation and the pod: the pod must be refused. */
  problems: string[];
}

/** The admission webhook's entry: the same transform on a Pod as JSON (namespace from the request). */
export function injectPod(pod: Record<string, unknown>, namespace: string, options: InjectDefaults): PodResult {
  const object = { ...pod, kind: 'Pod', metadata: { namespace, ...(isRecord(pod.metadata) ? pod.metadata : {}) } };
  const doc = new Document(object);
  const problems: string[] = [];
  const report: string[] = [];
  injectObject(doc, [], object, options, problems, report);
  if (problems.length > 0) return { problems };
  const after = doc.toJS() as Record<string, unknown>;
  return JSON.stringify(after) === JSON.stringify(object) ? { problems } : { pod: after, problems };
}

function injectObject(doc: Document, at: Path, object: unknown, options: InjectOptions, problems: string[], report: string[]): void {
  if (!isRecord(object) || typeof object.kind !== 'string') return;
  const templateAt = POD_TEMPLATE[object.kind];
  if (!templateAt) return;
  const meta = isRecord(object.metadata) ? object.metadata : {};
  const name = `${object.kind} ${typeof meta.namespace === 'string' ? `${meta.namespace}/` : ''}${String(meta.name ?? (meta.generateName ? `${String(meta.generateName)}…` : '(unnamed)'))}`;
  const template = get(object, templateAt);
  if (!isRecord(template)) {
    problems.push(`${name}: no pod template at ${templateAt.join('.') || '.'}`);
    return;
  }
  const podMeta = isRecord(template.metadata) ? template.metadata : {};
  const podSpec = isRecord(template.spec) ? template.spec : {};
  const metaPath = [...at, ...templateAt, 'metadata'];
  const specPath = [...at, ...templateAt, 'spec'];

  if (options.uninject) {
    remove(doc, specPath, metaPath);
    report.push(`${name}: uninjected`);
    return;
  }
  // The pod template's annotations win over the workload's own.
  const annotations = {
    ...(isRecord(meta.annotations) ? meta.annotations : {}),
    ...(isRecord(podMeta.annotations) ? podMeta.annotations : {}),
  };
  const reading = readAnnotations(annotations, options);
  if (reading.kind === 'invalid') {
    for (const problem of reading.problems) problems.push(`${name}: ${problem}`);
    return;
  }
  if (reading.kind === 'none') {
    // inject "false" (or no annotation) on a pod that has the sidecar: take it out.
    if (hasSidecar(podSpec)) {
      remove(doc, specPath, metaPath);
      report.push(`${name}: sidecar removed (not annotated ${PREFIX}inject: "true")`);
    } else report.push(`${name}: skipped (not annotated ${PREFIX}inject: "true")`);
    return;
  }
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : (options.namespace ?? 'default');
  const serviceAccount = typeof podSpec.serviceAccountName === 'string' ? podSpec.serviceAccountName : 'default';
  // A classic container from an older injection or by hand would run twice: move it.
  removeNamed(doc, [...specPath, 'containers'], CONTAINER_NAME);
  upsertNamed(doc, [...specPath, 'initContainers'], sidecarContainer(reading.request, { namespace, serviceAccount }), 'first');
  upsertNamed(doc, [...specPath, 'volumes'], tokenVolume(), 'last');
  doc.setIn([...metaPath, 'labels', INJECTED_LABEL], 'true');
  report.push(`${name}: injected (role ${reading.request.role})`);
}

function hasSidecar(podSpec: Record<string, unknown>): boolean {
  const named = (list: unknown) => Array.isArray(list) && list.some((c) => isRecord(c) && c.name === CONTAINER_NAME);
  return named(podSpec.initContainers) || named(podSpec.containers);
}

function remove(doc: Document, specPath: Path, metaPath: Path): void {
  removeNamed(doc, [...specPath, 'initContainers'], CONTAINER_NAME);
  removeNamed(doc, [...specPath, 'containers'], CONTAINER_NAME);
  removeNamed(doc, [...specPath, 'volumes'], TOKEN_VOLUME);
  doc.deleteIn([...metaPath, 'labels', INJECTED_LABEL]);
  dropIfEmpty(doc, [...metaPath, 'labels']);
  dropIfEmpty(doc, metaPath);
}

/** Replaces the item with `value.name` in the list at `path`, or adds it (first or last). */
function upsertNamed(doc: Document, path: Path, value: Record<string, unknown>, where: 'first' | 'last'): void {
  const seq = doc.getIn(path, true);
  const node = doc.createNode(value);
  if (!isSeq(seq)) {
    doc.setIn(path, doc.createNode([value]));
    return;
  }
  const i = seq.items.findIndex((item) => isMap(item) && item.get('name') === value.name);
  if (i >= 0) seq.items[i] = node;
  else if (where === 'first') seq.items.unshift(node);
  else seq.items.push(node);
}

function removeNamed(doc: Document, path: Path, name: string): void {
  const seq = doc.getIn(path, true);
  if (!isSeq(seq)) return;
  const kept = seq.items.filter((item) => !(isMap(item) && item.get('name') === name));
  if (kept.length === seq.items.length) return;
  seq.items = kept;
  dropIfEmpty(doc, path);
}

function dropIfEmpty(doc: Document, path: Path): void {
  const node = doc.getIn(path, true);
  if ((isSeq(node) || isMap(node)) && node.items.length === 0) doc.deleteIn(path);
}

function get(object: Record<string, unknown>, path: Path): unknown {
  let at: unknown = object;
  for (const key of path) at = isRecord(at) || Array.isArray(at) ? (at as Record<string | number, unknown>)[key] : undefined;
  return at;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
