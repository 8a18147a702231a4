/**
 * Path normalization, by example and by property: for any target, what the rules decide on and
 * what the app receives are the same path, however the target was spelt.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PATH_POLICY, normalizeTarget, type PathPolicy } from '../../src/proxy/request-target.js';
import { pathMatcher } from '../../src/tls/authorization.js';
import { decodedPath, servletPath } from '../support/servlet-routing.js';

const STRIP: PathPolicy = { ...DEFAULT_PATH_POLICY, semicolons: 'strip' };

describe('normalizeTarget', () => {
  it.each([
    ['/a/b/../c', '/a/c'],
    ['/a/./b', '/a/b'],
    ['/../../a', '/a'],
    ['/a/..', '/'],
    ['/a/b/..', '/a/'],
    ['//a///b', '/a/b'],
    ['/%61%62c', '/abc'],
    ['/a%2e%2E/b', '/a../b'],
    ['/a/%2e%2e/b', '/b'],
    ['/x%3a%3ay', '/x%3A%3Ay'],
    ['/q?a=../b&c=%2f', '/q?a=../b&c=%2f'],
    ['http://host:8080/a/../b?x', '/b?x'],
    ['https://host', '/'],
    ['HTTP://host?q', '/?q'],
  ])('%s → %s', (raw, target) => {
    expect(normalizeTarget(raw)).toMatchObject({ ok: true, target });
  });

  it.each([
    ['*', 'must be a path'],
    ['a/b', 'must be a path'],
    ['/a%2fb', 'encoded /'],
    ['/a%5Cb', 'encoded /'],
    ['/a\\b', 'backslash'],
    ['/a%zz', 'malformed'],
    ['/a%2', 'malformed'],
    ['/a#frag', 'fragment'],
    ['/a b', 'percent-encoded'],
    ['/é', 'percent-encoded'],
    ['/a?b c', 'control character'],
    ['/public/..;/admin', 'path parameter'],
    ['/public/..;x=1/admin', 'path parameter'],
    ['/public/.;/../admin', 'path parameter'],
    ['/a;jsessionid=1', 'path parameter'],
    ['/public/..%3B/admin', 'path parameter'],
    ['/public/..%3b/admin', 'path parameter'],
  ])('refuses %s', (raw, reason) => {
    const result = normalizeTarget(raw);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toContain(reason);
  });

  it('keeps an encoded slash as it is when escapedSlashes is keep', () => {
    expect(normalizeTarget('/a%2fb/../c', { ...DEFAULT_PATH_POLICY, escapedSlashes: 'keep' })).toMatchObject({ ok: true, path: '/c' });
    expect(normalizeTarget('/a%2fb', { ...DEFAULT_PATH_POLICY, escapedSlashes: 'keep' })).toMatchObject({ ok: true, path: '/a%2Fb' });
  });

  it('keeps repeated slashes when mergeSlashes is off', () => {
    expect(normalizeTarget('//a//b', { ...DEFAULT_PATH_POLICY, mergeSlashes: false })).toMatchObject({ ok: true, path: '//a//b' });
  });

  it('keeps ; in the query: only the path has parameters', () => {
    expect(normalizeTarget('/a?x=1;y=2')).toMatchObject({ ok: true, path: '/a', target: '/a?x=1;y=2' });
  });

  it.each([
    ['/public/..;/admin', '/admin'],
    ['/public/..;x=1/admin', '/admin'],
    ['/public/.;/../admin', '/admin'],
    ['/public;jsessionid=A1/x;v=2?q;1', '/public/x?q;1'],
    ['/a/;x/b', '/a/b'],
  ])("with semicolons strip, cuts each segment's parameters before the dot segments: %s → %s", (raw, target) => {
    expect(normalizeTarget(raw, STRIP)).toMatchObject({ ok: true, target });
  });

  it('with semicolons strip, still refuses an encoded ; (%3B), which apps decode before or after cutting', () => {
    expect(normalizeTarget('/public/..%3B/admin', STRIP)).toMatchObject({ ok: false });
  });
});

/** Segments an attacker combines: dots in every spelling, encodings, the protected names, noise. */
const segment = fc.oneof(
  fc.constantFrom(
    '..',
    '.',
    '%2e',
    '%2E',
    '%2e%2e',
    '.%2e',
    '%2E.',
    '',
    'admin',
    'public',
    '%70ublic',
    'pub%6cic',
    'public-admin',
    'publ%69city',
    '%2f',
    '%5c',
    '\\',
    '%',
    '%zz',
    'a b',
    '..;',
    '..;x=1',
    '.;',
    ';',
    'public;v=1',
    'admin;',
    '%3b',
    '%3B',
  ),
  fc.stringMatching(/^[A-Za-z0-9\-._~!$&'()*+,;=:@]{0,6}$/),
  fc.stringMatching(/^(\.|\.\.|admin|public)?;[A-Za-z0-9=.;]{0,4}$/),
  fc.stringMatching(/^(%[0-9A-Fa-f]{2}){1,3}$/),
);
const target = fc
  .tuple(
    fc.constantFrom('', 'http://x', 'https://h:1'),
    fc.array(segment, { maxLength: 8 }),
    fc.option(fc.stringMatching(/^[A-Za-z0-9=&%./]{0,8}$/), { nil: undefined }),
  )
  .map(([prefix, segments, query]) => `${prefix}/${segments.join('/')}${query === undefined ? '' : `?${query}`}`);

/** How an app reads the path it received: WHATWG URL parsing, then each segment percent-decoded (Express). */
function appView(forwarded: string): string | undefined {
  // undefined: invalid UTF-8 escapes, which the app answers 400 itself
  return decodedPath(new URL(forwarded, 'http://app.invalid').pathname);
}

describe('properties', () => {
  it('a normalized path has no dot segments or repeated slashes, and normalizing it again changes nothing', () => {
    fc.assert(
      fc.property(target, (raw) => {
        const result = normalizeTarget(raw);
        if (!result.ok) return;
        expect(result.path.startsWith('/')).toBe(true);
        expect(result.path).not.toMatch(/\/\/|\/\.\.?(\/|$)/);
        expect(normalizeTarget(result.target)).toEqual(result);
      }),
      { numRuns: 3000 },
    );
  });

  it('the app parses the forwarded path as exactly the path that was authorized', () => {
    fc.assert(
      fc.property(target, (raw) => {
        const result = normalizeTarget(raw);
        if (!result.ok) return;
        expect(new URL(result.target, 'http://app.invalid').pathname).toBe(result.path);
      }),
      { numRuns: 3000 },
    );
  });

  it('a rule for /public allows a target exactly when the app would route it under /public', () => {
    const allowsPublic = pathMatcher('/public');
    fc.assert(
      fc.property(target, (raw) => {
        const result = normalizeTarget(raw);
        if (!result.ok) return;
        const seen = appView(result.target);
        if (seen === undefined) return;
        expect(allowsPublic(result.path)).toBe(seen === '/public' || seen.startsWith('/public/'));
      }),
      { numRuns: 3000 },
    );
  });

  it.each([
    ['semicolons reject (default)', DEFAULT_PATH_POLICY],
    ['semicolons strip', STRIP],
  ])(
    '%s: an app that routes like Tomcat/Spring (;params cut per segment, then normalized) serves exactly the authorized path',
    (_, policy) => {
      const allowsPublic = pathMatcher('/public');
      fc.assert(
        fc.property(target, (raw) => {
          const result = normalizeTarget(raw, policy);
          if (!result.ok) return;
          const authorized = decodedPath(result.path);
          if (authorized === undefined) return;
          const served = servletPath(result.target);
          expect(served).toBe(authorized);
          expect(allowsPublic(result.path)).toBe(served === '/public' || (served ?? '').startsWith('/public/'));
        }),
        { numRuns: 5000 },
      );
    },
  );
});
