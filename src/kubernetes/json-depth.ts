/**
 * How deep a parsed document nests, found without recursion: JSON.parse itself is iterative, but
 * everything after it (the YAML library, JSON.stringify, structured logging) recurses, and a body
 * of 200,000 `{` overflowed the stack. No Pod nests anywhere near MAX_DEPTH (containers, env,
 * valueFrom, affinity terms: about a dozen levels).
 */
export const MAX_DEPTH = 100;

/** Whether any value nests deeper than `limit`. Work is bounded by the value's size. */
export function tooDeep(value: unknown, limit = MAX_DEPTH): boolean {
  const stack: { value: object; depth: number }[] = [];
  if (typeof value === 'object' && value !== null) stack.push({ value, depth: 0 });
  while (stack.length > 0) {
    const item = stack.pop();
    if (!item) break;
    if (item.depth >= limit) return true;
    for (const child of Object.values(item.value)) {
      if (typeof child === 'object' && child !== null) stack.push({ value: child as object, depth: item.depth + 1 });
    }
  }
  return false;
}

/** Flow collections (`[`, `{`) open at once, and indentation plus `- `/`? `/`: ` indicators on one line. */
const MAX_YAML_FLOW = 100;
const MAX_YAML_LINE_DEPTH = 200;

/**
 * Whether YAML text may nest deeper than the YAML library can take. The library recurses per
 * level and overflows the stack somewhere past 500; where the overflow lands is chance, and one
 * landing inside Node's module loader ended the `inject` process. So the text is bounded before
 * it is parsed, by an over-estimate: every bracket counts (in quotes and comments too), and a line
 * counts its indentation and its block indicators (outside flow collections). No Kubernetes manifest comes near either bound.
 */
export function yamlTooDeep(text: string): boolean {
  let flow = 0;
  let indent = 0;
  let indicators = 0;
  let lineStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 /* \n */) {
      lineStart = true;
      indent = 0;
      indicators = 0;
      continue;
    }
    if (lineStart && (c === 32 || c === 9)) {
      indent++;
    } else {
      lineStart = false;
      if (c === 91 /* [ */ || c === 123 /* { */) flow++;
      else if ((c === 93 /* ] */ || c === 125) /* } */ && flow > 0) flow--;
      // In flow context the brackets are the nesting; `a: 1, b: 2` on one line is not.
      else if (flow === 0 && (c === 45 /* - */ || c === 63 /* ? */ || c === 58) /* : */ && text.charCodeAt(i + 1) === 32) indicators++;
    }
    if (flow > MAX_YAML_FLOW || indent + indicators > MAX_YAML_LINE_DEPTH) return true;
  }
  return false;
}
