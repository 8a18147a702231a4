/** When a certificate from a new issuer may replace the current one (pure timing, no waiting). */

import { pino } from 'pino';
import { expect, it } from 'vitest';
import type { CertificateBundle } from '../../src/identity/bundle.js';
import {
  type HandoverOptions,
  handoverDelayMs,
  holdForIssuerHandover,
  issuerRemoved,
  renewWhenIssuerRemoved,
} from '../../src/identity/issuer-handover.js';
import { TrustStore } from '../../src/identity/trust.js';

const bundle = (trustPem: string[]): CertificateBundle => ({ certPem: 'leaf', keyPem: 'key', chainPem: [], trustPem });

/** Serving a certificate from `old`, a minute's propagation time, no deadline. */
const handoverOptions = (trust: TrustStore): HandoverOptions => ({
  trust,
  refresh: async () => undefined,
  propagationMs: 60_000,
  holdUntilAtLatest: () => Number.MAX_SAFE_INTEGER,
  current: () => bundle(['old']),
  logger: pino({ level: 'silent' }),
});

it('publishes at once from issuers trusted since start-up, and holds one first seen later for the propagation time', () => {
  const trust = new TrustStore();
  trust.update({ caPems: ['old'], crlPems: [] }, new Date(1_000));
  trust.update({ caPems: ['old', 'new'], crlPems: [] }, new Date(50_000));
  expect(trust.firstSeen('old')?.getTime()).toBe(0);
  expect(trust.firstSeen('new')?.getTime()).toBe(50_000);
  const never = Number.MAX_SAFE_INTEGER;
  expect(handoverDelayMs(bundle(['old']), trust, 30_000, never, 60_000)).toBe(0);
  expect(handoverDelayMs(bundle(['new']), trust, 30_000, never, 60_000)).toBe(20_000);
  expect(handoverDelayMs(bundle(['new']), trust, 30_000, never, 90_000)).toBe(0);
  // An issuer not in the bundle at all counts as first seen now.
  expect(handoverDelayMs(bundle(['unknown']), trust, 30_000, never, 60_000)).toBe(30_000);
});

it('never holds past the point where the current certificate would run out', () => {
  const trust = new TrustStore();
  trust.update({ caPems: ['old'], crlPems: [] }, new Date(0));
  trust.update({ caPems: ['old', 'new'], crlPems: [] }, new Date(50_000));
  expect(handoverDelayMs(bundle(['new']), trust, 30_000, 55_000, 52_000)).toBe(3_000);
  expect(handoverDelayMs(bundle(['new']), trust, 30_000, 40_000, 52_000)).toBe(0);
});

it('stops holding at once when the renewer stops', async () => {
  const trust = new TrustStore();
  trust.update({ caPems: ['old'], crlPems: [] }, new Date(0));
  trust.update({ caPems: ['old', 'new'], crlPems: [] }, new Date());
  const stopping = new AbortController();
  const started = Date.now();
  const held = holdForIssuerHandover(bundle(['new']), handoverOptions(trust), stopping.signal);
  setTimeout(() => stopping.abort(), 50);
  await held;
  expect(Date.now() - started).toBeLessThan(5_000);
});

it("does not hold when the current certificate's issuer has left the mount (a CA replaced wholesale)", async () => {
  const trust = new TrustStore();
  trust.update({ caPems: ['old'], crlPems: [] }, new Date(0));
  trust.update({ caPems: ['new'], crlPems: [] }, new Date());
  expect(issuerRemoved(bundle(['old']), trust)).toBe(true);
  expect(issuerRemoved(bundle(['new']), trust)).toBe(false);
  const started = Date.now();
  await holdForIssuerHandover(bundle(['new']), handoverOptions(trust), new AbortController().signal);
  expect(Date.now() - started).toBeLessThan(5_000);
});

it('renews once a refresh shows the current issuer gone, and not while it stays', () => {
  const trust = new TrustStore();
  trust.update({ caPems: ['old', 'other'], crlPems: [] }, new Date(0));
  let renewals = 0;
  renewWhenIssuerRemoved({ trust, current: () => bundle(['old\n']), renewNow: () => ++renewals > 0, logger: pino({ level: 'silent' }) });
  trust.update({ caPems: ['old', 'other', 'new'], crlPems: [] });
  expect(renewals).toBe(0);
  trust.update({ caPems: ['other', 'new'], crlPems: [] });
  expect(renewals).toBe(1);
});

it("a renewal's ca_chain naming an issuer not in the bundle fetches the mount's issuers once; the chain itself is never trusted", async () => {
  const trust = new TrustStore();
  trust.update({ caPems: ['old'], crlPems: [] }, new Date(0));
  const signal = new AbortController().signal;
  let fetches = 0;
  // The mount lists the new issuer (a rotation not seen yet): that one fetch brings it in.
  const rotation: HandoverOptions = {
    ...handoverOptions(trust),
    propagationMs: 0,
    refresh: async () => {
      fetches++;
      trust.update({ caPems: ['old', 'new'], crlPems: [] });
    },
  };
  await holdForIssuerHandover(bundle(['new']), rotation, signal);
  await holdForIssuerHandover(bundle(['new']), rotation, signal);
  expect(fetches).toBe(1);
  // An answer naming a CA the mount does not list (a tampered response): fetched for, not trusted.
  const forged: HandoverOptions = { ...rotation, refresh: async () => void fetches++ };
  await holdForIssuerHandover(bundle(['forged']), forged, signal);
  expect(fetches).toBe(2);
  expect(trust.has('forged')).toBe(false);
});
