/**
 * How a servlet container (Tomcat, Jetty) and Spring MVC behind it route a request path: the path
 * parameters (`;jsessionid=…`, `;x=1`) of each segment are cut off, then the path is
 * percent-decoded and its dot segments resolved. So `/public/..;/admin` is served as `/admin`.
 * Undefined where such an app refuses the request itself (400): an encoded `/`, a bad escape, a
 * climb above the root.
 */
export function servletPath(forwardedTarget: string): string | undefined {
  const query = forwardedTarget.indexOf('?');
  const raw = query === -1 ? forwardedTarget : forwardedTarget.slice(0, query);
  const withoutParams = raw
    .split('/')
    .map((segment) => {
      const semicolon = segment.indexOf(';');
      return semicolon === -1 ? segment : segment.slice(0, semicolon);
    })
    .join('/');
  if (/%2f|%5c/i.test(withoutParams)) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(withoutParams);
  } catch {
    return undefined;
  }
  const out: string[] = [];
  const segments = decoded
    .replace(/\/{2,}/g, '/')
    .split('/')
    .slice(1);
  for (const [i, segment] of segments.entries()) {
    const last = i === segments.length - 1;
    if (segment === '.' || segment === '..') {
      if (segment === '..' && out.pop() === undefined) return undefined;
      if (last) out.push('');
      continue;
    }
    out.push(segment);
  }
  return `/${out.join('/')}`;
}

/** A normalized path as the app reads it: each segment percent-decoded (undefined: bad UTF-8). */
export function decodedPath(path: string): string | undefined {
  try {
    return path
      .split('/')
      .map((s) => decodeURIComponent(s))
      .join('/');
  } catch {
    return undefined;
  }
}
