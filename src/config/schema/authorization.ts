/**
 * An inbound listener's allow rules: which peers (by certificate identity) may call, and, in http
 * mode, with which methods and paths.
 */
import * as z from 'zod/mini';

/** The fields of an allow rule that match the peer's certificate; every rule names one. */
export const IDENTITY_FIELDS = ['spiffe', 'uri', 'dns', 'cn', 'ou'] as const;

const NON_EMPTY = 'must not be empty; omit the field to allow every method or path';

/**
 * One allow rule: every identity field given must match the peer (any of its values); `*` matches
 * one segment (between `/` in URIs, `.` in DNS names), `**` anything. Methods and path prefixes
 * (http mode only) narrow the rule further.
 */
export const allowRule = z
  .strictObject({
    spiffe: z.optional(z.string().check(z.minLength(1))),
    uri: z.optional(z.string().check(z.minLength(1))),
    dns: z.optional(z.string().check(z.minLength(1))),
    cn: z.optional(z.string().check(z.minLength(1))),
    ou: z.optional(z.string().check(z.minLength(1))),
    // An empty list reads as "any method/path" to some and "none" to others: omit the field instead.
    methods: z.optional(z.array(z.string().check(z.minLength(1), z.toUpperCase())).check(z.minLength(1, NON_EMPTY))),
    paths: z.optional(
      z
        .array(
          z.string().check(
            z.startsWith('/'),
            // Requests are matched on their normalized path, so a rule that is not normalized could never match.
            z.refine(
              (path) => !/\/\/|\/\.\.?(\/|$)|[?#;\\]/.test(path),
              'write the path normalized, as requests are matched: no //, no . or .. segments, no ? # ; or \\',
            ),
          ),
        )
        .check(z.minLength(1, NON_EMPTY)),
    ),
  })
  // A rule matches the peers its identity fields match; with none, every peer the CA trusts (tcp
  // mode, which has no request to narrow it, let everyone in through a paths-only rule).
  .check(
    z.refine(
      (rule) => IDENTITY_FIELDS.some((field) => rule[field] !== undefined),
      'name the peer with spiffe, uri, dns, cn or ou: a rule without one matches every peer the CA trusts (omit authorization to allow them all)',
    ),
  )
  // Both match URI SANs; a rule naming both would silently test only one.
  .check(z.refine((rule) => !(rule.spiffe && rule.uri), 'spiffe and uri both match URI SANs; give one of them per rule'));
