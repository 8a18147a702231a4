/**
 * What the trust refresher does with an issuer no loaded CRL covers (the edge cases; the real
 * Vault cases are in test/integration/intermediate-ca.test.ts): `soft` enforces no CRL until
 * every issuer has one, `closed` keeps them; either way the gap is logged once, not per refresh.
 */
import { pino } from 'pino';
import { expect, it } from 'vitest';
import type { CrlGap, TrustMaterial } from '../../src/identity/trust.js';
import { TrustStore } from '../../src/identity/trust.js';
import { TrustRefresher } from '../../src/identity/trust-refresher.js';

function logged(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

const gap: CrlGap = { issuer: 'new-root', reason: 'Vault returned no CRL for it', retry: true };
const material = (crlMissing: CrlGap[]): TrustMaterial => ({ caPems: ['ca-a', 'ca-b'], crlPems: ['crl-a'], crlMissing });

it.each([
  ['soft', []],
  ['closed', ['crl-a']],
] as const)('with crl: %s, an issuer without a CRL leaves CRLs %j enforced, logged once', async (crlMode, enforced) => {
  const { logger, lines } = logged();
  const trust = new TrustStore();
  let next = material([gap]);
  const refresher = new TrustRefresher({ fetchTrust: async () => next, trust, intervalSeconds: 300, crlMode, logger });
  await refresher.refreshNow();
  await refresher.refreshNow();
  expect(trust.material.caPems).toEqual(['ca-a', 'ca-b']);
  expect(trust.material.crlPems).toEqual(enforced);
  const warnings = lines.filter((line) => line.code === 'SIDECAR_CRL_MISSING');
  expect(warnings).toHaveLength(1);
  expect(warnings[0]?.msg).toContain('no CRL for new-root: Vault returned no CRL for it');
  // Once every issuer has a CRL, all are enforced again.
  next = material([]);
  await refresher.refreshNow();
  expect(trust.material.crlPems).toEqual(['crl-a']);
  await refresher.stop();
});
