/**
 * The edits `inject` makes to a YAML document for a pod plan: the sidecar, its token volume and
 * the marks added (or replaced), or exactly those removed — in place, through the document's
 * nodes, so the rest of the file stays as written. A collection left empty by a removal goes too.
 */
import { type Document, isMap, isSeq } from 'yaml';
import { STATUS_INJECTED } from './annotations.js';
import { MARKS, type PodPlan } from './pod-plan.js';
import { CONTAINER_NAME, sidecarContainer, TOKEN_VOLUME, tokenVolume } from './sidecar-spec.js';

export type Path = (string | number)[];

export function applyPlan(doc: Document, plan: PodPlan, specPath: Path, metaPath: Path): void {
  if (plan.kind === 'remove') {
    remove(doc, specPath, metaPath);
    return;
  }
  if (plan.kind !== 'inject') return;
  // Only the injector's own sidecar is here to replace (planPod refused any other).
  removeNamed(doc, [...specPath, 'containers'], CONTAINER_NAME);
  upsertNamed(doc, [...specPath, 'initContainers'], sidecarContainer(plan.request, plan), 'first');
  upsertNamed(doc, [...specPath, 'volumes'], tokenVolume(), 'last');
  doc.setIn([...metaPath, 'labels', MARKS.label], 'true');
  doc.setIn([...metaPath, 'annotations', MARKS.annotation], STATUS_INJECTED);
}

function remove(doc: Document, specPath: Path, metaPath: Path): void {
  removeNamed(doc, [...specPath, 'initContainers'], CONTAINER_NAME);
  removeNamed(doc, [...specPath, 'containers'], CONTAINER_NAME);
  removeNamed(doc, [...specPath, 'volumes'], TOKEN_VOLUME);
  doc.deleteIn([...metaPath, 'labels', MARKS.label]);
  doc.deleteIn([...metaPath, 'annotations', MARKS.annotation]);
  dropIfEmpty(doc, [...metaPath, 'labels']);
  dropIfEmpty(doc, [...metaPath, 'annotations']);
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
