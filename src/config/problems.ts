/**
 * Config problems as people can act on them: each names the field, what was expected and what was
 * found, and a misspelt field gets the nearest valid name ("did you mean `source`?"). Every problem
 * of a file is reported at once, so fixing a config takes one run, not one per mistake.
 */
import type * as z from 'zod/mini';

/** The fields an object in `schema` at `path` accepts (all branches of a union), or none when unknown. */
export function knownKeysAt(schema: z.core.$ZodType, path: readonly PropertyKey[]): string[] {
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
  switch (def.type) {
    case 'optional':
    case 'default':
    case 'prefault':
    case 'nullable':
    case 'readonly':
      return knownKeysAt(def.innerType as z.core.$ZodType, path);
    case 'pipe':
      return knownKeysAt(def.in as z.core.$ZodType, path);
    case 'array':
      return typeof path[0] === 'number' ? knownKeysAt(def.element as z.core.$ZodType, path.slice(1)) : [];
    case 'union':
      return [...new Set((def.options as z.core.$ZodType[]).flatMap((option) => knownKeysAt(option, path)))];
    case 'object': {
      const shape = def.shape as Record<string, z.core.$ZodType>;
      if (path.length === 0) return Object.keys(shape);
      const child = shape[String(path[0])];
      return child ? knownKeysAt(child, path.slice(1)) : [];
    }
    default:
      return [];
  }
}

/** Edit distance (insertions, deletions, substitutions, adjacent swaps): how far a typo is from a name. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) (d[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j] as number, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

/** The valid name closest to `typo`, when it is close enough to be a likely slip (case ignored). */
export function nearest(typo: string, names: readonly string[]): string | undefined {
  let best: { name: string; score: number } | undefined;
  for (const name of names) {
    const score = distance(typo.toLowerCase(), name.toLowerCase());
    if (!best || score < best.score) best = { name, score };
  }
  return best && best.score <= Math.max(1, Math.floor(typo.length / 3)) ? best.name : undefined;
}

const KINDS: Record<string, string> = {
  array: 'a list',
  object: 'a map of fields',
  string: 'a string',
  number: 'a number',
  boolean: 'true or false',
};

/** What a user wrote, as they would recognise it. */
function found(input: unknown): string {
  if (input === undefined) return 'nothing';
  if (input === null) return 'an empty value';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'a map of fields';
  if (typeof input === 'string') return `the string ${JSON.stringify(input)}`;
  return `${typeof input === 'boolean' ? '' : `the ${typeof input} `}${String(input)}`;
}

export function fieldPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '');
}

/** One line per problem, each starting `config: <field>: `. Unknown fields first: they often cause the rest. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], schema: z.core.$ZodType): string[] {
  const lines = issues.flatMap((issue): { unknown: boolean; line: string }[] => {
    const at = fieldPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(schema, issue.path);
      return issue.keys.map((key) => {
        const guess = nearest(key, known);
        const hint = guess ? `did you mean "${guess}"?` : `valid fields here: ${known.join(', ')}`;
        return { unknown: true, line: `config: ${at ? `${at}: ` : ''}unknown field "${key}"; ${hint}` };
      });
    }
    const field = at || '(top level)';
    if (issue.code === 'invalid_type') {
      if (issue.input === undefined) return [{ unknown: false, line: `config: ${field}: is required` }];
      const expected = KINDS[issue.expected] ?? issue.expected;
      return [{ unknown: false, line: `config: ${field}: expected ${expected}, found ${found(issue.input)}` }];
    }
    if (issue.code === 'invalid_value') {
      const options = issue.values.map((v) => JSON.stringify(v)).join(', ');
      return [{ unknown: false, line: `config: ${field}: expected one of ${options}, found ${found(issue.input)}` }];
    }
    return [{ unknown: false, line: `config: ${field}: ${issue.message}` }];
  });
  return [...lines.filter((l) => l.unknown), ...lines.filter((l) => !l.unknown)].map((l) => l.line);
}
