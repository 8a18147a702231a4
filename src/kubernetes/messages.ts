/**
 * Bounds on what `inject` and the webhook say about an object. Names, keys and values in a
 * message come from whoever wrote the pod, so each is cut, the problems are capped, and the whole
 * message has a ceiling: a 620 KB review once made a 420 MB reply (a 600 KB name before each of
 * 700 problems) and the webhook ran out of heap. A reader needs the first problems, not all.
 */

/** Kubernetes names: 253 characters for most objects (DNS subdomains), 63 for namespaces. */
export const MAX_NAME = 253;
export const MAX_NAMESPACE = 63;
/** A value or key quoted in a problem. */
export const MAX_QUOTED = 128;
/** Problems listed in one message; the rest are counted. */
export const MAX_PROBLEMS = 20;
/** One message, whatever it lists. */
export const MAX_MESSAGE = 4096;

/** `text`, or its first `max` characters followed by how long it was. */
export function clip(text: string, max: number = MAX_QUOTED): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(${text.length} characters)`;
}

/** "a, b, c" for up to `max` items, then "…and N more". */
export function listSome(items: readonly string[], max = 10): string {
  const shown = items.slice(0, max).map((item) => clip(item));
  return items.length > max ? `${shown.join(', ')}, …and ${items.length - max} more` : shown.join(', ');
}

/** `Kind namespace/name` with both parts cut to what Kubernetes allows. */
export function objectLabel(kind: string, namespace: string | undefined, name: string): string {
  return `${clip(kind, MAX_QUOTED)} ${namespace === undefined ? '' : `${clip(namespace, MAX_NAMESPACE)}/`}${clip(name, MAX_NAME)}`;
}

/**
 * The first MAX_PROBLEMS problems, each cut and preceded by `prefix` (the object's label), under
 * MAX_MESSAGE characters in all; the rest are counted in a last line.
 */
export function boundedProblems(problems: readonly string[], prefix = ''): string[] {
  const out: string[] = [];
  let total = 0;
  for (const problem of problems.slice(0, MAX_PROBLEMS)) {
    const line = `${prefix}${clip(problem, 1024)}`;
    if (out.length > 0 && total + line.length > MAX_MESSAGE - 64 - prefix.length) break;
    out.push(line);
    total += line.length + 2;
  }
  if (out.length < problems.length) out.push(`${prefix}…and ${problems.length - out.length} more problems`);
  return out;
}
