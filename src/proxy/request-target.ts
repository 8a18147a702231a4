/**
 * One canonical request target, decided once: the path that authorization rules see is the path the
 * app receives. Rules checked on one reading of a target and a different one forwarded is how
 * `/admin/../public` reached an app's /admin handler. Envoy's `normalize_path`, `merge_slashes` and
 * `path_with_escaped_slashes_action` are the model:
 *
 * - the absolute form (`GET http://host/p`) becomes the origin form (`/p`);
 * - percent-encoded unreserved characters (RFC 3986 §2.3) are decoded, other escapes upper-cased,
 *   so `%2e%2e` is `..` and is resolved like it;
 * - dot segments are removed (RFC 3986 §5.2.4) and, by default, repeated slashes merged;
 * - what cannot be normalized safely is refused: an encoded `/` or `\` (apps disagree on whether it
 *   separates segments), a raw `\` (some stacks read it as `/`), bad escapes, control characters,
 *   a fragment, or a target that is not a path;
 * - `;` path parameters are refused by default, as Spring Security's StrictHttpFirewall does:
 *   Tomcat, Jetty and Spring cut `;…` off each segment *before* resolving dot segments, so
 *   `/public/..;/admin` is `/admin` to them while it is under /public to anyone who keeps it.
 *   With `semicolons: strip` they are cut here the same way, before normalizing, and the app gets
 *   the path without them. An encoded `;` (%3B) is refused either way: apps disagree on whether
 *   they decode it before or after cutting parameters.
 *
 * The query is kept byte for byte: it is the app's business, and rules do not look at it.
 */

export interface PathPolicy {
  /** `//a///b` → `/a/b` (Envoy's merge_slashes). */
  readonly mergeSlashes: boolean;
  /** `%2F`/`%5C` in a path: refuse the request, or forward the escape untouched (a rule then sees it as part of one segment). */
  readonly escapedSlashes: 'reject' | 'keep';
  /** `;` path parameters (`/a;x=1/b`): refuse the request, or cut them off each segment (Tomcat's reading). */
  readonly semicolons: 'reject' | 'strip';
}

export const DEFAULT_PATH_POLICY: PathPolicy = { mergeSlashes: true, escapedSlashes: 'reject', semicolons: 'reject' };

export type NormalizedTarget =
  | {
      readonly ok: true;
      /** The normalized path, without the query: what rules are checked against. */
      readonly path: string;
      /** Path plus the original query: what is forwarded. */
      readonly target: string;
    }
  | { readonly ok: false; readonly reason: string };

const UNRESERVED = /[A-Za-z0-9\-._~]/;
const HEX = '0123456789ABCDEF';

/** Characters allowed raw in a path (RFC 3986 pchar plus `/`), other than `%`. */
function isPathChar(code: number): boolean {
  // Printable ASCII other than space, `"`, `#`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`: those
  // are refused (or, for `?` and `#`, handled by the caller); anything else is data.
  if (code <= 0x20 || code >= 0x7f) return false;
  return !'"#<>\\^`{|}'.includes(String.fromCharCode(code));
}

/** Refused targets carry the reason shown to the client (400) and in the log. */
const refuse = (reason: string): NormalizedTarget => ({ ok: false, reason });

/**
 * The common case, checked with one regex instead of the character walk below: an origin-form
 * path of plain characters (no `%`, no `\\`, no `;`), no `//` and no `.` or `..` segment, and a
 * printable query. It is already normal, so it is forwarded as it came, without a copy.
 */
const ALREADY_NORMAL = /^(?!.*\/\/)(?!.*\/\.\.?(?:[/?]|$))\/[A-Za-z0-9\-._~!$&'()*+,=:@/]*(?:\?[\x21-\x22\x24-\x7e]*)?$/;

const SEMICOLON_REFUSED =
  'the path holds a ; path parameter (as in /a;x=1), which Tomcat, Jetty and Spring cut before routing (requestPath.semicolons is reject)';

export function normalizeTarget(raw: string, policy: PathPolicy = DEFAULT_PATH_POLICY): NormalizedTarget {
  if (ALREADY_NORMAL.test(raw)) {
    const q = raw.indexOf('?');
    return { ok: true, path: q === -1 ? raw : raw.slice(0, q), target: raw };
  }
  let rest = raw;
  // Absolute form: what an HTTP/1.1 proxy client sends; the app gets the origin form.
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(rest);
  if (scheme) {
    const pathStart = rest.indexOf('/', scheme[0].length);
    const queryStart = rest.indexOf('?', scheme[0].length);
    if (pathStart === -1 || (queryStart !== -1 && queryStart < pathStart)) {
      rest = `/${queryStart === -1 ? '' : rest.slice(queryStart)}`;
    } else rest = rest.slice(pathStart);
  }
  const q = rest.indexOf('?');
  const rawPath = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? '' : rest.slice(q);
  if (!rawPath.startsWith('/')) return refuse('the request target must be a path starting with /');
  if (query.includes('#') || rawPath.includes('#')) return refuse('a request target must not carry a fragment (#)');
  for (let i = 0; i < query.length; i++) {
    const code = query.charCodeAt(i);
    if (code <= 0x20 || code === 0x7f || code > 0x7e) return refuse('the query holds a control character or a non-ASCII byte');
  }

  let decoded = '';
  for (let i = 0; i < rawPath.length; i++) {
    const ch = rawPath[i] as string;
    if (ch === '%') {
      const hex = rawPath.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return refuse('the path holds a malformed percent escape');
      const byte = Number.parseInt(hex, 16);
      const char = String.fromCharCode(byte);
      i += 2;
      if (char === ';') return refuse('the path holds an encoded ; (%3B), which apps decode before or after cutting path parameters');
      if (char === '/' || char === '\\') {
        if (policy.escapedSlashes === 'reject') return refuse('the path holds an encoded / or \\ (%2F, %5C), which apps read differently');
        decoded += `%${hex.toUpperCase()}`;
      } else if (UNRESERVED.test(char)) decoded += char;
      else decoded += `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
      continue;
    }
    if (ch === ';') {
      if (policy.semicolons === 'reject') return refuse(SEMICOLON_REFUSED);
      // strip: the parameter runs to the end of its segment; the app never sees it.
      const next = rawPath.indexOf('/', i);
      i = next === -1 ? rawPath.length : next - 1;
      continue;
    }
    if (ch === '\\') return refuse('the path holds a backslash, which some servers read as /');
    if (!isPathChar(ch.charCodeAt(0))) return refuse('the path holds a character that must be percent-encoded');
    decoded += ch;
  }

  const path = removeDotSegments(policy.mergeSlashes ? decoded.replace(/\/{2,}/g, '/') : decoded);
  return { ok: true, path, target: path + query };
}

/**
 * RFC 3986 §5.2.4 on an absolute path: `.` segments vanish, `..` removes the segment before it and
 * never climbs above the root; a trailing `.` or `..` leaves the path ending in `/`.
 */
function removeDotSegments(path: string): string {
  const input = path.split('/').slice(1);
  const output: string[] = [];
  for (const [i, segment] of input.entries()) {
    const last = i === input.length - 1;
    if (segment === '.' || segment === '..') {
      if (segment === '..') output.pop();
      if (last) output.push('');
      continue;
    }
    output.push(segment);
  }
  return `/${output.join('/')}`;
}
