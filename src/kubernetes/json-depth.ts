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
