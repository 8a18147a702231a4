/**
 * `inject` on Kubernetes YAML: finds the pod template of each object (Pod, Deployment,
 * StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, and the items of any object with items, as
 * kubectl reads lists), decides what to do with it (pod-plan.ts), and adds, updates or removes
 * the sidecar in place (template-edit.ts) — editing the YAML document, so everything else
 * (comments, order, the user's own containers) stays as written.
 * Idempotent: the sidecar it added (marked by the status annotation) is replaced, so a second run
 * changes nothing and a changed annotation updates it. `uninject` removes exactly what inject
 * added (a collection it emptied goes too), and nothing a user wrote.
 *
 * Any input has an answer: YAML it cannot read or edit (too deep, alias bombs, aliases where the
 * sidecar goes) is one SidecarError naming the file or the object, never a crash.
 */
import { type Document, isScalar, parseAllDocuments, type Tags, visit } from 'yaml';
import { ErrorCodes, SidecarError } from '../errors.js';
import type { InjectDefaults } from './annotations.js';
import { MAX_DEPTH, tooDeep, yamlTooDeep } from './json-depth.js';
import { boundedProblems, objectLabel } from './messages.js';
import { injectedByUs, isRecord, type PodPlan, planPod } from './pod-plan.js';
import { applyPlan, type Path } from './template-edit.js';

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

/**
 * Read and write YAML the way kubectl reads it (go-yaml v2: YAML 1.1 scalars), whatever a `%YAML`
 * directive says. Read as YAML 1.2, `defaultMode: 0400` is the number 400 and was written back
 * as `400`, which kubectl reads as 0o620; a label value `yes` added unquoted would reach the API
 * server as `true`. go-yaml v2 has no sexagesimal numbers (`1:20`) and keeps timestamps as
 * strings, so those two YAML 1.1 types are left out: a value inject does not change is written
 * as it was read.
 */
// A merge key (`<<`) is refused below, never expanded: it is read as a plain key to be found.
// go-yaml v2 has no !!omap, !!pairs or !!set either; without them a map inject adds is a map.
const LEFT_OUT = ['timestamp', 'merge', 'omap', 'pairs', 'set'].map((name) => `tag:yaml.org,2002:${name}`);
const KUBECTL_YAML = {
  version: '1.1',
  schema: 'yaml-1.1',
  customTags: (tags: Tags) => tags.filter((tag) => typeof tag === 'string' || (!LEFT_OUT.includes(tag.tag) && tag.format !== 'TIME')),
} as const;

/** Transforms every document of `text`; throws one SidecarError listing every problem found. */
export function injectYaml(text: string, source: string, options: InjectOptions): InjectResult {
  const problems: string[] = [];
  const report: string[] = [];
  if (yamlTooDeep(text)) {
    throw new SidecarError(
      ErrorCodes.INJECT_INVALID,
      `${source}: nested deeper than inject reads (100 flow levels, 200 columns of indentation); no Kubernetes object is`,
    );
  }
  let docs: Document.Parsed[];
  try {
    docs = parseAllDocuments(text, KUBECTL_YAML);
  } catch (err) {
    throw new SidecarError(ErrorCodes.INJECT_INVALID, `${source}: not YAML inject can read (${unreadable(err)})`);
  }
  let changed = false;
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      problems.push(`${source}: not valid YAML: ${doc.errors[0]?.message.split('\n')[0]}`);
      continue;
    }
    let object: unknown;
    try {
      object = doc.toJS({ maxAliasCount: 100 }) as unknown; // an alias bomb is refused, not expanded
    } catch (err) {
      problems.push(`${source}: not YAML inject can read (${unreadable(err)})`);
      continue;
    }
    if (tooDeep(object)) {
      problems.push(`${source}: a document is nested deeper than ${MAX_DEPTH} levels; no Kubernetes object is`);
      continue;
    }
    // kubectl reads YAML 1.1, where `<<` merges a map into its parent; this library reads it as
    // a plain key. A merged-in hostNetwork, container or annotation would reach the cluster
    // without inject having seen it, so a document with one is refused, not read differently.
    if (hasMergeKey(doc)) {
      problems.push(
        `${source}: a document uses a YAML merge key (<<), which kubectl expands and inject does not read; write the merged fields out in full`,
      );
      continue;
    }
    const written = writtenBack(doc, source, problems);
    if (written === undefined) continue;
    visitObject(doc, [], object, options, problems, report);
    if (writtenBack(doc, source, problems) !== written) changed = true;
  }
  if (problems.length > 0) throw new SidecarError(ErrorCodes.INJECT_INVALID, problems.join('\n'));
  // Nothing to change: the input comes back byte for byte, not as the library would write it
  // (which is not always stable: `?` is written `? ` once and `\n? ` the next time).
  if (!changed) return { text, report };
  // Documents keep their own start markers; join them the way they were separated.
  try {
    return { text: docs.map((d) => d.toString({ lineWidth: 0 })).join(''), report };
  } catch (err) {
    throw new SidecarError(ErrorCodes.INJECT_INVALID, `${source}: cannot write this YAML back (${unreadable(err)})`);
  }
}

/** The document as inject would write it, or undefined (and a problem) when it cannot be written. */
function writtenBack(doc: Document.Parsed, source: string, problems: string[]): string | undefined {
  try {
    return doc.toString({ lineWidth: 0 });
  } catch (err) {
    problems.push(`${source}: cannot write this YAML back (${unreadable(err)})`);
    return undefined;
  }
}

/** Why the YAML library gave up: a stack overflow is nesting, the rest say what they are. */
function unreadable(err: unknown): string {
  if (err instanceof RangeError) return 'nested too deeply';
  return err instanceof Error ? (err.message.split('\n')[0] ?? err.name) : String(err);
}

/** Whether any map in the document has a `<<` key (YAML 1.1's merge key, quoted or not). */
function hasMergeKey(doc: Document): boolean {
  let found = false;
  visit(doc, {
    Pair(_, pair) {
      if (isScalar(pair.key) && pair.key.value === '<<') {
        found = true;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found;
}

function objectName(object: Record<string, unknown>, kind: string): string {
  const meta = isRecord(object.metadata) ? object.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : typeof meta.generateName === 'string' ? `${meta.generateName}…` : '(unnamed)';
  return objectLabel(kind, typeof meta.namespace === 'string' ? meta.namespace : undefined, name);
}

/**
 * One object of a document, as kubectl reads it: any object with non-null `items` is a list
 * (PodList, ConfigMapList, or a `kind: Pod` that also has items — kubectl applies the items, not
 * the pod), its items read the same way; any other object is injected if it has a pod template.
 * Every object seen gets a report line, so nothing passes by unmentioned.
 */
function visitObject(doc: Document, at: Path, object: unknown, options: InjectOptions, problems: string[], report: string[]): void {
  if (at.length === 0 && (object === null || object === undefined)) return; // an empty document
  if (!isRecord(object)) {
    report.push(`${at.length > 0 ? `item ${at.join('.')}` : 'a document'}: skipped (not a Kubernetes object)`);
    return;
  }
  const kind = typeof object.kind === 'string' && object.kind ? object.kind : '(no kind)';
  if (object.items !== undefined && object.items !== null) {
    const name = objectName(object, kind);
    if (!Array.isArray(object.items)) {
      problems.push(`${name}: items must be a list (kubectl reads an object with items as a list)`);
      return;
    }
    if (Object.hasOwn(POD_TEMPLATE, kind) || object.spec !== undefined) {
      problems.push(
        `${name}: has both items and a spec; kubectl applies the items and drops the rest, so inject refuses to guess: split it into a list and the object`,
      );
      return;
    }
    report.push(`${name}: a list of ${object.items.length} ${object.items.length === 1 ? 'object' : 'objects'}`);
    object.items.forEach((item, i) => {
      visitObject(doc, [...at, 'items', i], item, options, problems, report);
    });
    return;
  }
  injectObject(doc, at, object, kind, options, problems, report);
}

function injectObject(
  doc: Document,
  at: Path,
  object: Record<string, unknown>,
  kind: string,
  options: InjectOptions,
  problems: string[],
  report: string[],
): void {
  const name = objectName(object, kind);
  const templateAt = Object.hasOwn(POD_TEMPLATE, kind) ? POD_TEMPLATE[kind] : undefined;
  if (!templateAt) {
    report.push(`${name}: skipped (no pod template)`);
    return;
  }
  const meta = isRecord(object.metadata) ? object.metadata : {};
  const template = get(object, templateAt);
  if (!isRecord(template)) {
    problems.push(`${name}: no pod template at ${templateAt.join('.') || '.'}`);
    return;
  }
  const metaPath = [...at, ...templateAt, 'metadata'];
  const specPath = [...at, ...templateAt, 'spec'];
  const field = templateAt.length > 0 ? `${templateAt.join('.')}.` : '';
  let plan: PodPlan;
  if (options.uninject) {
    plan = injectedByUs(template.metadata)
      ? { kind: 'remove' }
      : { kind: 'leave', reason: 'not injected by inject (no vault-mtls-sidecar/status annotation): left as written' };
  } else {
    plan = planPod(
      {
        workloadAnnotations: templateAt.length > 0 ? meta.annotations : undefined,
        metadata: template.metadata,
        spec: template.spec,
        field,
        namespace: typeof meta.namespace === 'string' ? meta.namespace : (options.namespace ?? 'default'),
      },
      options,
    );
  }
  try {
    applyPlan(doc, plan, specPath, metaPath);
  } catch (err) {
    // Aliases or merge keys where the sidecar goes: the document cannot be edited in place.
    problems.push(`${name}: cannot edit its pod template in place (${unreadable(err)}); write it without YAML aliases or merge keys`);
    return;
  }
  // Bounded however many problems the pod has (messages.ts); the name is cut in objectName.
  if (plan.kind === 'refuse') problems.push(...boundedProblems(plan.problems, `${name}: `));
  else if (plan.kind === 'inject') report.push(`${name}: injected (role ${plan.request.role})`);
  else if (plan.kind === 'remove')
    report.push(`${name}: ${options.uninject ? 'uninjected' : `sidecar removed (not annotated vault-mtls-sidecar/inject: "true")`}`);
  else report.push(`${name}: skipped (${plan.reason})`);
}

function get(object: Record<string, unknown>, path: Path): unknown {
  let at: unknown = object;
  for (const key of path) at = isRecord(at) || Array.isArray(at) ? (at as Record<string | number, unknown>)[key] : undefined;
  return at;
}
