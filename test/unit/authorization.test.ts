import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { AuthorizationPolicy, globToRegExp } from '../../src/tls/authorization.js';
import type { PeerIdentity } from '../../src/tls/peer.js';

const peer = (fields: Partial<PeerIdentity>): PeerIdentity => ({
  subject: 'CN=x',
  commonNames: [],
  organizationalUnits: [],
  uris: [],
  dnsNames: [],
  hash: '00',
  ca: false,
  ...fields,
});

const checkout = peer({ uris: ['spiffe://cluster.local/ns/shop/sa/checkout'], dnsNames: ['checkout.shop.svc'], commonNames: ['checkout'] });

describe('globToRegExp', () => {
  it('matches one URI segment with * and any depth with **', () => {
    expect(globToRegExp('spiffe://td/ns/*/sa/web', '/').test('spiffe://td/ns/prod/sa/web')).toBe(true);
    expect(globToRegExp('spiffe://td/ns/*/sa/web', '/').test('spiffe://td/ns/a/b/sa/web')).toBe(false);
    expect(globToRegExp('spiffe://td/**', '/').test('spiffe://td/ns/a/b/sa/web')).toBe(true);
  });

  it('matches one DNS label with *', () => {
    expect(globToRegExp('*.default.svc', '.').test('orders.default.svc')).toBe(true);
    expect(globToRegExp('*.default.svc', '.').test('a.orders.default.svc')).toBe(false);
    expect(globToRegExp('**.svc', '.').test('a.orders.default.svc')).toBe(true);
  });

  it('treats regex characters literally', () => {
    expect(globToRegExp('a.b', '.').test('axb')).toBe(false);
  });
});

describe('AuthorizationPolicy', () => {
  it('allows the right SPIFFE ID and denies another', () => {
    const policy = new AuthorizationPolicy({ allow: [{ spiffe: 'spiffe://cluster.local/ns/shop/sa/checkout' }], dryRun: false });
    expect(policy.decide(checkout).allowed).toBe(true);
    expect(policy.decide(peer({ uris: ['spiffe://cluster.local/ns/shop/sa/cart'] }))).toEqual({
      allowed: false,
      denial: 'no_rule_matches_peer',
      reason: 'no allow rule matches the peer',
    });
  });

  it('allows by glob, DNS SAN, CN and OU, requiring every field of a rule', () => {
    const policy = new AuthorizationPolicy({
      allow: [{ spiffe: 'spiffe://cluster.local/ns/*/sa/checkout' }, { dns: '*.billing.svc', ou: 'finance' }, { cn: 'batch-*' }],
      dryRun: false,
    });
    expect(policy.decide(checkout)).toMatchObject({ allowed: true, rule: 0, reason: 'allow[0]' });
    expect(policy.decide(peer({ dnsNames: ['invoices.billing.svc'], organizationalUnits: ['finance'] }))).toMatchObject({ rule: 1 });
    expect(policy.decide(peer({ dnsNames: ['invoices.billing.svc'], organizationalUnits: ['sales'] })).allowed).toBe(false);
    expect(policy.decide(peer({ commonNames: ['batch-nightly'] })).reason).toBe('allow[2]');
  });

  it('narrows a rule by method and path prefix', () => {
    const policy = new AuthorizationPolicy({
      allow: [{ spiffe: 'spiffe://cluster.local/ns/shop/sa/checkout', methods: ['GET'], paths: ['/api/orders'] }],
      dryRun: false,
    });
    expect(policy.decide(checkout, { method: 'GET', path: '/api/orders/7' }).allowed).toBe(true);
    expect(policy.decide(checkout, { method: 'DELETE', path: '/api/orders/7' })).toEqual({
      allowed: false,
      denial: 'no_rule_matches_request',
      reason: 'no allow rule matches DELETE /api/orders/7',
    });
    expect(policy.decide(checkout, { method: 'GET', path: '/admin' }).allowed).toBe(false);
  });

  it('matches rule paths by whole segments, with * and ** as explicit globs', () => {
    const policy = new AuthorizationPolicy({
      allow: [{ cn: 'c', paths: ['/api/orders', '/files/*/meta', '/static/**', '/v1/'] }],
      dryRun: false,
    });
    const allows = (path: string) => policy.decide(peer({ commonNames: ['c'] }), { method: 'GET', path }).allowed;
    expect(allows('/api/orders')).toBe(true);
    expect(allows('/api/orders/7')).toBe(true);
    expect(allows('/api/orders-admin/x')).toBe(false);
    expect(allows('/api/ordersx')).toBe(false);
    expect(allows('/files/a/meta')).toBe(true);
    expect(allows('/files/a/b/meta')).toBe(false);
    expect(allows('/static/a/b/c.js')).toBe(true);
    expect(allows('/v1/x')).toBe(true);
    expect(allows('/v1')).toBe(false);
  });

  it('refuses a rule path that is not normalized, which no request could match', () => {
    for (const path of ['/api//orders', '/api/../admin', '/a/./b', '/a?x=1', '/a\\b']) {
      expect(() =>
        buildConfig(
          {
            identity: { source: 'dev', commonName: 'x' },
            inbound: [{ name: 'a', listen: '127.0.0.1:0', target: '127.0.0.1:1', authorization: { allow: [{ cn: 'c', paths: [path] }] } }],
          },
          {},
        ),
      ).toThrow(/normalized/);
    }
  });

  it('refuses an empty rule in the configuration, which would allow everyone', () => {
    expect(() =>
      buildConfig(
        {
          identity: { source: 'dev', commonName: 'x' },
          inbound: [{ name: 'a', listen: '127.0.0.1:0', target: '127.0.0.1:1', authorization: { allow: [{}] } }],
        },
        {},
      ),
    ).toThrow(/inbound\[0\]\.authorization\.allow\[0\]: name the peer with spiffe, uri, dns, cn or ou/);
  });

  it('refuses a rule naming both spiffe and uri, which would test only one of them', () => {
    expect(() =>
      buildConfig(
        {
          identity: { source: 'dev', commonName: 'x' },
          inbound: [
            {
              name: 'a',
              listen: '127.0.0.1:0',
              target: '127.0.0.1:1',
              authorization: { allow: [{ spiffe: 'spiffe://a/*', uri: 'https://b' }] },
            },
          ],
        },
        {},
      ),
    ).toThrow(/allow\[0\]: spiffe and uri both match URI SANs; give one of them per rule/);
  });
});
