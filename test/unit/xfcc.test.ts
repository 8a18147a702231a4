/**
 * x-forwarded-client-cert encoding, by property: whatever a certificate's names hold (quotes,
 * backslashes, commas, semicolons, equals signs, non-ASCII, control characters), the app splits
 * the header back into the same fields (Envoy's grammar), and the Subject back into the same
 * attributes (RFC 4514).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseSubjectAltName } from '../../src/identity/bundle.js';
import { formatDistinguishedName, formatXfcc, type PeerIdentity } from '../../src/tls/peer.js';

/** Envoy's XFCC grammar for one element: key=value pairs split by `;`, values optionally quoted with `\` escapes. */
function parseXfcc(header: string): [string, string][] {
  const pairs: [string, string][] = [];
  let i = 0;
  while (i < header.length) {
    const eq = header.indexOf('=', i);
    const key = header.slice(i, eq);
    let value = '';
    i = eq + 1;
    if (header[i] === '"') {
      i++;
      while (header[i] !== '"') {
        if (header[i] === '\\') i++;
        value += header[i];
        i++;
      }
      i++;
    } else {
      while (i < header.length && header[i] !== ';' && header[i] !== ',') value += header[i++];
    }
    pairs.push([key, value]);
    if (header[i] === ',') throw new Error('a second element: a value leaked a comma');
    i++; // the ';'
  }
  return pairs;
}

/** RFC 4514 back to attribute pairs, least specific first (certificate order). */
function parseDn(dn: string): [string, string][] {
  const rdns: [string, string][] = [];
  let i = 0;
  while (i < dn.length) {
    const eq = dn.indexOf('=', i);
    const type = dn.slice(i, eq);
    const bytes: number[] = [];
    i = eq + 1;
    while (i < dn.length && dn[i] !== ',') {
      if (dn[i] === '\\') {
        const hex = dn.slice(i + 1, i + 3);
        if (/^[0-9A-F]{2}$/.test(hex)) {
          bytes.push(Number.parseInt(hex, 16));
          i += 3;
          continue;
        }
        i++;
      }
      bytes.push(...Buffer.from(dn[i] as string));
      i++;
    }
    rdns.push([type, Buffer.from(bytes).toString('utf8')]);
    i++;
  }
  return rdns.reverse();
}

const anyText = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 });
const ia5 = fc.stringMatching(/^[\x20-\x7e]{1,30}$/);

function peer(subject: Record<string, string[]>, uris: string[], dnsNames: string[]): PeerIdentity {
  return {
    subject: formatDistinguishedName(subject),
    commonNames: [],
    organizationalUnits: [],
    uris,
    dnsNames,
    hash: 'ab'.repeat(32),
    ca: false,
  };
}

describe('XFCC', () => {
  it('parses back to the same Hash, Subject, URI and DNS fields for any names', () => {
    fc.assert(
      fc.property(
        fc.record({ CN: fc.array(anyText, { minLength: 1, maxLength: 2 }), O: fc.array(anyText, { maxLength: 1 }) }),
        fc.array(ia5, { maxLength: 3 }),
        fc.array(ia5, { maxLength: 3 }),
        (subject, uris, dnsNames) => {
          const identity = peer(subject, uris, dnsNames);
          const header = formatXfcc(identity);
          expect(header).toMatch(/^[\x20-\x7e]+$/);
          const fields = parseXfcc(header);
          expect(fields).toEqual([
            ['Hash', identity.hash],
            ['Subject', identity.subject],
            ...uris.map((u): [string, string] => ['URI', u]),
            ...dnsNames.map((d): [string, string] => ['DNS', d]),
          ]);
          const attributes = [...subject.CN.map((v): [string, string] => ['CN', v]), ...subject.O.map((v): [string, string] => ['O', v])];
          expect(parseDn(identity.subject)).toEqual(attributes);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('quotes and escapes a name that tries to inject a field', () => {
    const header = formatXfcc(peer({ CN: ['x\\";URI=spiffe://evil'] }, ['spiffe://a/b;DNS=evil'], []));
    expect(parseXfcc(header).map(([k]) => k)).toEqual(['Hash', 'Subject', 'URI']);
  });
});

describe('parseSubjectAltName', () => {
  /** Node prints a SAN value with special characters as a JSON string. */
  const nodeStyle = (kind: string, value: string) =>
    /^[\x21-\x7e]*$/.test(value) && !/[,"\\]/.test(value) ? `${kind}:${value}` : `${kind}:${JSON.stringify(value)}`;

  it('reads every SAN back, even one that spells another inside a quoted value', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('DNS', 'URI', 'IP Address'), ia5), { maxLength: 5 }), (sans) => {
        const printed = sans.map(([kind, value]) => nodeStyle(kind, value)).join(', ');
        const parsed = parseSubjectAltName(printed || undefined);
        expect(parsed.dnsNames).toEqual(sans.filter(([k]) => k === 'DNS').map(([, v]) => v));
        expect(parsed.uris).toEqual(sans.filter(([k]) => k === 'URI').map(([, v]) => v));
        expect(parsed.ipAddresses).toEqual(sans.filter(([k]) => k === 'IP Address').map(([, v]) => v));
      }),
      { numRuns: 2000 },
    );
  });

  it('does not let a URI SAN smuggle in a DNS name', () => {
    expect(parseSubjectAltName('URI:"spiffe://a/b, DNS:evil.test", DNS:ok.test')).toEqual({
      dnsNames: ['ok.test'],
      ipAddresses: [],
      uris: ['spiffe://a/b, DNS:evil.test'],
    });
  });
});
