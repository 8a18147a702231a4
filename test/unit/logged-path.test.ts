/**
 * loggedPath, the one redaction of request targets in access and audit lines: whatever the
 * target, a secret in its query, fragment, userinfo or a `;` path parameter never comes out.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loggedPath } from '../../src/proxy/forwarded-path.js';

const SECRET = 'S3CR3T';
const segment = fc.stringMatching(/^[A-Za-z0-9._~%-]{0,8}$/);

describe('loggedPath', () => {
  it.each([
    ['/a/b?token=x', '/a/b'],
    ['/a#frag?x', '/a'],
    ['/public;jsessionid=x/y;v=1', '/public;/y;'],
    ['/a%3bjsessionid=x/b', '/a%3b/b'],
    ['http://user:pw@host:8080/p;x=1?q', 'http://host:8080/p;'],
    ['https://u@h', 'https://h'],
    ['//u:p@h/x', '//h/x'],
    ['http://host/p@q', 'http://host/p@q'],
  ])('%s is logged as %s', (target, logged) => {
    expect(loggedPath(target)).toBe(logged);
  });

  it('never lets a secret in userinfo, a path parameter, the query or a fragment through', () => {
    const hidden = fc.constantFrom(
      (p: string) => `http://user:${SECRET}@host${p}`,
      (p: string) => `https://${SECRET}@h${p}`,
      (p: string) => `${p};jsessionid=${SECRET}`,
      (p: string) => `${p}%3Bjsessionid=${SECRET}/x`,
      (p: string) => `${p}?token=${SECRET}`,
      (p: string) => `${p}#${SECRET}`,
    );
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 5 }), hidden, fc.array(segment, { maxLength: 3 }), (before, hide, after) => {
        const target = `${hide(`/${before.join('/')}`)}/${after.join('/')}`;
        expect(loggedPath(target)).not.toContain(SECRET);
      }),
    );
  });
});
