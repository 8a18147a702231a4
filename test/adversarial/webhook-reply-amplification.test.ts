/**
 * Issue 24 review, finding 1: one ~620 KB AdmissionReview ended the webhook. Every problem was
 * prefixed with `Pod ns/name` (a name of any length) and each of 700 unknown
 * `vault-mtls-sidecar/*` keys was its own problem listing every known annotation: a 420 MB reply,
 * and V8 ran out of heap under the chart's 192Mi limit. The reply is now bounded whatever the
 * review: names are cut, unknown keys are one problem, and the message has a fixed ceiling.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type AdmissionResponse, admissionReview, goodPod, startWebhookUnderAttack, type WebhookUnderAttack } from './webhook-process.js';

let webhook: WebhookUnderAttack;

// Roughly what V8 gets in the chart's 192Mi container.
beforeAll(async () => {
  webhook = await startWebhookUnderAttack([], { NODE_OPTIONS: '--max-old-space-size=160' });
});

afterAll(async () => {
  await webhook?.stop();
});

it('a long name and hundreds of unknown annotations get one short denial, and the webhook lives', async () => {
  for (const [nameLength, keys] of [
    [600_000, 700],
    [1_000_000, 300],
    [10, 20_000],
  ] as const) {
    const annotations: Record<string, string> = { 'vault-mtls-sidecar/inject': 'true' };
    for (let i = 0; i < keys; i++) annotations[`vault-mtls-sidecar/u${i}`] = '';
    const body = JSON.stringify(admissionReview({ ...goodPod(), metadata: { name: 'a'.repeat(nameLength), annotations } }));
    const answer = await webhook.post(body);
    // What the attacker got: a denial of a few KB, not hundreds of MB.
    expect(answer.status, answer.text.slice(0, 200)).toBe(200);
    expect(answer.text.length).toBeLessThan(8192);
    const response = (answer.json as { response: AdmissionResponse }).response;
    expect(response.allowed).toBe(false);
    expect(response.status?.message).toMatch(/unknown annotations vault-mtls-sidecar\/u0, .*and \d+ more/);
    expect(webhook.process.child.exitCode, webhook.process.stderr().slice(-600)).toBeNull();
  }
  // A good pod is still injected, by the same process.
  await webhook.assertServesGoodPod();
}, 120_000);
