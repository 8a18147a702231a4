/**
 * Authorization by peer identity: allow rules over the SPIFFE ID / URI SANs, DNS SANs, CN and OU
 * of a verified client certificate, optionally narrowed by HTTP method and path. Rules are
 * compiled once per listener; evaluating one is a few regex tests. Paths are checked on the
 * normalized target (see proxy/request-target.ts), which is also what the app receives.
 */
import type { AuthorizationConfig } from '../config/schema/index.js';
import type { PeerIdentity } from './peer.js';

export interface RequestFacts {
  readonly method: string;
  readonly path: string;
}

/** A decision, with its reason as data (`rule`, `denial`) and in words for the audit log (`reason`). */
export type Decision =
  | {
      readonly allowed: true;
      /** The index of the allow rule that matched. */
      readonly rule: number;
      readonly reason: string;
    }
  | {
      readonly allowed: false;
      /** No rule matches this request (methods, paths), or none matches the peer at all. */
      readonly denial: 'no_rule_matches_request' | 'no_rule_matches_peer';
      readonly reason: string;
    };

/** `*` is one segment (no `separator`), `**` anything; everything else is literal. */
export function globToRegExp(glob: string, separator: '/' | '.' | ''): RegExp {
  const one = separator ? `[^${separator === '.' ? '.' : '/'}]*` : '.*';
  const pattern = glob
    .split('**')
    .map((part) =>
      part
        .split('*')
        .map((literal) => literal.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
        .join(one),
    )
    .join('.*');
  return new RegExp(`^${pattern}$`);
}

interface CompiledRule {
  readonly uri?: RegExp;
  readonly dns?: RegExp;
  readonly cn?: RegExp;
  readonly ou?: RegExp;
  readonly methods?: ReadonlySet<string>;
  readonly paths?: readonly PathMatcher[];
}

type PathMatcher = (path: string) => boolean;

/**
 * A rule path matches whole segments: `/api/orders` admits `/api/orders` and `/api/orders/7`, never
 * `/api/orders-admin`. `*` (one segment) and `**` (any depth) are explicit globs over the whole path.
 */
export function pathMatcher(rule: string): PathMatcher {
  if (rule.includes('*')) {
    const glob = globToRegExp(rule, '/');
    return (path) => glob.test(path);
  }
  const under = rule.endsWith('/') ? rule : `${rule}/`;
  return (path) => path === rule || path.startsWith(under);
}

const anyMatches = (pattern: RegExp | undefined, values: readonly string[]) => pattern === undefined || values.some((v) => pattern.test(v));

export class AuthorizationPolicy {
  readonly #rules: CompiledRule[];

  constructor(readonly config: AuthorizationConfig) {
    this.#rules = config.allow.map((rule) => ({
      ...(rule.spiffe || rule.uri ? { uri: globToRegExp(rule.spiffe ?? rule.uri ?? '', '/') } : {}),
      ...(rule.dns ? { dns: globToRegExp(rule.dns, '.') } : {}),
      ...(rule.cn ? { cn: globToRegExp(rule.cn, '') } : {}),
      ...(rule.ou ? { ou: globToRegExp(rule.ou, '') } : {}),
      ...(rule.methods ? { methods: new Set(rule.methods) } : {}),
      ...(rule.paths ? { paths: rule.paths.map(pathMatcher) } : {}),
    }));
  }

  /** Whether `peer` may connect at all (tcp mode, or before any request): rules with method/path limits count as possible. */
  decide(peer: PeerIdentity, request?: RequestFacts): Decision {
    for (const [index, rule] of this.#rules.entries()) {
      const identityMatches =
        anyMatches(rule.uri, peer.uris) &&
        anyMatches(rule.dns, peer.dnsNames) &&
        anyMatches(rule.cn, peer.commonNames) &&
        anyMatches(rule.ou, peer.organizationalUnits);
      if (!identityMatches) continue;
      if (request) {
        if (rule.methods && !rule.methods.has(request.method.toUpperCase())) continue;
        if (rule.paths && !rule.paths.some((matches) => matches(request.path))) continue;
      }
      return { allowed: true, rule: index, reason: `allow[${index}]` };
    }
    return request
      ? { allowed: false, denial: 'no_rule_matches_request', reason: `no allow rule matches ${request.method} ${request.path}` }
      : { allowed: false, denial: 'no_rule_matches_peer', reason: 'no allow rule matches the peer' };
  }
}
