/**
 * What the access log and audit lines say a request was for: the path, never a secret that
 * travels in a target (logs are kept and shipped far more widely than the app's traffic), and on
 * inbound listeners the normalized path that was authorized and forwarded, not the raw target.
 * A refused target is logged raw but for what `loggedPath` cuts.
 */

/** Paths longer than this are cut in the access log (a request head may hold 16 KiB of path). */
const MAX_LOGGED_PATH = 2048;

/** A scheme and `//` (absolute form), or `//` alone: what comes next up to a `/` is an authority. */
const AUTHORITY_START = /^(?:[A-Za-z][A-Za-z0-9+.-]*:)?\/\//;
/** A `;` path parameter (raw or encoded as %3B) up to the end of its segment. */
const PATH_PARAMETER = /(?:;|%3B)[^/]*/gi;

/**
 * A request target as it may be logged — the one redaction used by every log line: no query or
 * fragment (tokens, API keys), no userinfo (`http://user:password@host/…`), and `;` path
 * parameters cut to their `;` or `%3B` (`/a;jsessionid=…/b` → `/a;/b`: servlet session ids), then cut to
 * a loggable length.
 */
export function loggedPath(target: string): string {
  const end = target.search(/[?#]/);
  let rest = end === -1 ? target : target.slice(0, end);
  const authority = AUTHORITY_START.exec(rest);
  if (authority) {
    const start = authority[0].length;
    const slash = rest.indexOf('/', start);
    const hostEnd = slash === -1 ? rest.length : slash;
    const at = rest.lastIndexOf('@', hostEnd - 1);
    if (at >= start) rest = rest.slice(0, start) + rest.slice(at + 1);
  }
  return rest.replace(PATH_PARAMETER, (param) => param.slice(0, param.startsWith(';') ? 1 : 3)).slice(0, MAX_LOGGED_PATH);
}
