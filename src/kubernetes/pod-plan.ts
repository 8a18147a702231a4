/**
 * What to do with one pod template, decided once for `inject` (which edits YAML) and the webhook
 * (which answers a JSON patch): add or replace the sidecar, remove it, leave the pod alone, or
 * refuse it with messages that name the field or annotation. Pure: plain objects in, a plan out;
 * it throws for no input, so a hostile pod is a refusal, never a crash.
 *
 * A container named mtls-sidecar is the injector's own only when the pod carries the status
 * annotation it sets; one without it (added by hand, or an app that picked the name) is never
 * replaced or removed — a pod that asks for injection with one is refused.
 */
import { INJECTED_LABEL, type InjectDefaults, PREFIX, readAnnotations, type SidecarRequest, STATUS_ANNOTATION } from './annotations.js';
import { CONTAINER_NAME, TOKEN_VOLUME } from './sidecar-spec.js';

export type PodPlan =
  | { kind: 'inject'; request: SidecarRequest; namespace: string; serviceAccount: string }
  /** The injector's sidecar is there and the annotations no longer ask for it. */
  | { kind: 'remove' }
  | { kind: 'leave'; reason: string }
  | { kind: 'refuse'; problems: string[] };

export interface PodTemplate {
  /** The workload's own annotations (the pod template's win); the same object for a bare Pod. */
  workloadAnnotations: unknown;
  metadata: unknown;
  spec: unknown;
  /** Where the template is, for messages: "" for a Pod, "spec.template." for a Deployment. */
  field: string;
  namespace: string;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The fields injection reads or writes, with the types Kubernetes gives them. */
function shapeProblems(template: PodTemplate): string[] {
  const problems: string[] = [];
  const at = template.field;
  const { metadata, spec } = template;
  const stringMap = (value: unknown, field: string) => {
    if (value === undefined || value === null) return;
    if (!isRecord(value) || Object.values(value).some((v) => typeof v !== 'string'))
      problems.push(`${at}${field} must be a map of strings (found ${describe(value)})`);
  };
  if (metadata !== undefined && metadata !== null && !isRecord(metadata)) {
    problems.push(`${at}metadata must be an object (found ${describe(metadata)})`);
  } else if (isRecord(metadata)) {
    stringMap(metadata.labels, 'metadata.labels');
    // Annotation values of the wrong type are reported by name by readAnnotations.
    if (metadata.annotations !== undefined && metadata.annotations !== null && !isRecord(metadata.annotations))
      problems.push(`${at}metadata.annotations must be a map of strings (found ${describe(metadata.annotations)})`);
  }
  if (!isRecord(template.workloadAnnotations) && template.workloadAnnotations !== undefined && template.workloadAnnotations !== null)
    problems.push(`metadata.annotations must be a map of strings (found ${describe(template.workloadAnnotations)})`);
  if (spec !== undefined && spec !== null && !isRecord(spec)) {
    problems.push(`${at}spec must be an object (found ${describe(spec)})`);
    return problems;
  }
  if (!isRecord(spec)) return problems;
  for (const list of ['initContainers', 'containers', 'volumes'] as const) {
    const value = spec[list];
    if (value === undefined || value === null) continue;
    if (!Array.isArray(value)) problems.push(`${at}spec.${list} must be a list (found ${describe(value)})`);
    else if (value.some((item) => !isRecord(item) || (item.name !== undefined && typeof item.name !== 'string')))
      problems.push(`${at}spec.${list} must be a list of objects with a string name`);
  }
  if (spec.hostNetwork !== undefined && spec.hostNetwork !== null && typeof spec.hostNetwork !== 'boolean')
    problems.push(`${at}spec.hostNetwork must be true or false (found ${describe(spec.hostNetwork)})`);
  if (spec.serviceAccountName !== undefined && spec.serviceAccountName !== null && typeof spec.serviceAccountName !== 'string')
    problems.push(`${at}spec.serviceAccountName must be a string (found ${describe(spec.serviceAccountName)})`);
  return problems;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function named(list: unknown, name: string): boolean {
  return Array.isArray(list) && list.some((item) => isRecord(item) && item.name === name);
}

/** Whether the pod carries the injector's sidecar: the status annotation says it added one. */
export function injectedByUs(metadata: unknown): boolean {
  return isRecord(metadata) && isRecord(metadata.annotations) && typeof metadata.annotations[STATUS_ANNOTATION] === 'string';
}

export function planPod(template: PodTemplate, options: InjectDefaults): PodPlan {
  const shape = shapeProblems(template);
  if (shape.length > 0) return { kind: 'refuse', problems: shape };
  const metadata = isRecord(template.metadata) ? template.metadata : {};
  const spec = isRecord(template.spec) ? template.spec : {};
  const ours = injectedByUs(metadata);
  // The pod template's annotations win over the workload's own.
  const annotations = {
    ...(isRecord(template.workloadAnnotations) ? template.workloadAnnotations : {}),
    ...(isRecord(metadata.annotations) ? metadata.annotations : {}),
  };
  const reading = readAnnotations(annotations, options);
  if (reading.kind === 'invalid') return { kind: 'refuse', problems: reading.problems };
  const foreign = !ours && (named(spec.initContainers, CONTAINER_NAME) || named(spec.containers, CONTAINER_NAME));
  if (reading.kind === 'none') {
    if (ours) return { kind: 'remove' };
    return {
      kind: 'leave',
      reason: foreign
        ? `its ${CONTAINER_NAME} container was not added by inject (no ${STATUS_ANNOTATION} annotation): left as written`
        : `not annotated ${PREFIX}inject: "true"`,
    };
  }
  const problems: string[] = [];
  if (foreign) {
    problems.push(
      `a container named ${CONTAINER_NAME} is already in the pod and was not added by inject (no ${STATUS_ANNOTATION} annotation); rename it, or delete it to let inject add the sidecar`,
    );
  }
  if (!ours && named(spec.volumes, TOKEN_VOLUME)) {
    problems.push(`a volume named ${TOKEN_VOLUME} is already in the pod and was not added by inject; rename it`);
  }
  if (spec.hostNetwork === true) {
    problems.push(
      `${template.field}spec.hostNetwork is true: the sidecar's loopback listeners would be the node's, open to every process on it; run the pod without hostNetwork`,
    );
  }
  if (problems.length > 0) return { kind: 'refuse', problems };
  return {
    kind: 'inject',
    request: reading.request,
    namespace: template.namespace,
    serviceAccount: typeof spec.serviceAccountName === 'string' && spec.serviceAccountName ? spec.serviceAccountName : 'default',
  };
}

/** The label and annotation keys a plan adds, for the appliers. */
export const MARKS = { label: INJECTED_LABEL, annotation: STATUS_ANNOTATION } as const;
