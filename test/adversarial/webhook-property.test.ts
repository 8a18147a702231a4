/**
 * Issue 24's property for the webhook: any JSON shaped around an AdmissionReview — with the wrong
 * type at every level — and any other body, posted to the real webhook process (the built CLI),
 * gets an AdmissionReview answer or a 400; the process stays alive, and a good pod is patched
 * afterwards. An answer that carries a patch is one the API server can apply: applied to the pod,
 * it leaves exactly one sidecar.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { admissionReview } from './admission-shapes.js';
import { type AdmissionResponse, patchOf, startWebhookUnderAttack, type WebhookUnderAttack } from './webhook-process.js';

let webhook: WebhookUnderAttack;

beforeAll(async () => {
  webhook = await startWebhookUnderAttack();
});

afterAll(async () => {
  await webhook?.stop();
});

type Json = Record<string, unknown>;

/** RFC 6902 add/remove on the paths the webhook writes (/a or /a/b), as the API server would apply them. */
function applyPatch(pod: Json, patch: { op: string; path: string; value?: unknown }[]): Json {
  const out = structuredClone(pod);
  for (const { op, path, value } of patch) {
    const keys = path.split('/').slice(1);
    const last = keys.pop() as string;
    let at: Json = out;
    for (const key of keys) {
      expect(typeof at[key] === 'object' && at[key] !== null && !Array.isArray(at[key]), `${path}: parent ${key} must be an object`).toBe(
        true,
      );
      at = at[key] as Json;
    }
    if (op === 'add') at[last] = value;
    else {
      expect(Object.hasOwn(at, last), `remove ${path}: it must exist`).toBe(true);
      delete at[last];
    }
  }
  return out;
}

/** What the answers were, so the property is seen to reach injection and not only the 400s. */
const seen = { bad: 0, denied: 0, allowed: 0, patched: 0 };

/** A denial is a few KB whatever was sent; a patch echoes at most the lists it rewrites (base64). */
const MAX_DENIAL_BYTES = 8192;

function checkAnswer(body: unknown, status: number | string, json: unknown, text = '', sent = ''): void {
  expect([200, 400]).toContain(status);
  expect(text.length).toBeLessThan(MAX_DENIAL_BYTES + 2 * sent.length);
  if (status === 400) {
    seen.bad++;
    return;
  }
  const review = json as { apiVersion: string; kind: string; response: AdmissionResponse };
  expect(review).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
  const request = (body as { request: { uid: string; object: Json } }).request;
  expect(review.response.uid).toBe(request.uid);
  expect(typeof review.response.allowed).toBe('boolean');
  seen[review.response.allowed ? 'allowed' : 'denied']++;
  if (!review.response.allowed) {
    expect(review.response.status?.message).toMatch(/\S/);
    expect(text.length).toBeLessThan(MAX_DENIAL_BYTES);
    expect(review.response.patch).toBeUndefined();
  }
  if (review.response.patch !== undefined) {
    seen.patched++;
    expect(review.response.patchType).toBe('JSONPatch');
    const after = applyPatch(request.object, patchOf(review.response));
    const spec = after.spec as Json;
    const all = [...((spec.initContainers as Json[]) ?? []), ...((spec.containers as Json[]) ?? [])];
    expect(all.filter((c) => c.name === 'mtls-sidecar')).toHaveLength(
      (spec.initContainers as Json[] | undefined)?.[0]?.name === 'mtls-sidecar' ? 1 : 0,
    );
  }
}

it('answers any AdmissionReview-shaped JSON with an AdmissionReview or a 400, and stays alive', async () => {
  await fc.assert(
    fc.asyncProperty(admissionReview, async (review) => {
      const sent = JSON.stringify(review);
      const answer = await webhook.post(sent);
      checkAnswer(review, answer.status, answer.json, answer.text, sent);
    }),
    { numRuns: 400 },
  );
  expect(Math.min(seen.bad, seen.denied, seen.allowed, seen.patched), JSON.stringify(seen)).toBeGreaterThan(0);
  await webhook.assertServesGoodPod();
}, 120_000);

it('answers any other body with a 400 (or an AdmissionReview when it happens to be one), and stays alive', async () => {
  const bodies = fc.oneof(
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.string(),
    fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('latin1')),
  );
  await fc.assert(
    fc.asyncProperty(bodies, async (body) => {
      const answer = await webhook.post(body);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        expect(answer.status).toBe(400);
        return;
      }
      checkAnswer(parsed, answer.status, answer.json, answer.text, body);
    }),
    { numRuns: 200 },
  );
  await webhook.assertServesGoodPod();
}, 120_000);

it('keeps every answer small however long the names and however many the bad annotations', async () => {
  // Issue 24 review: a long name times many problems made a 420 MB reply.
  const hostile = fc
    .record({
      nameLength: fc.integer({ min: 0, max: 300_000 }),
      namespaceLength: fc.integer({ min: 1, max: 50_000 }),
      unknown: fc.integer({ min: 0, max: 3000 }),
      nonString: fc.integer({ min: 0, max: 300 }),
      inject: fc.constantFrom('true', 'maybe', 'x'.repeat(100_000)),
      inbound: fc.constantFrom('8443:8080', 'bad,'.repeat(5000), '1:1,'.repeat(3000)),
    })
    .map((h) => {
      const annotations: Record<string, unknown> = {
        'vault-mtls-sidecar/inject': h.inject,
        'vault-mtls-sidecar/role': 'orders',
        'vault-mtls-sidecar/inbound': h.inbound,
      };
      for (let i = 0; i < h.unknown; i++) annotations[`vault-mtls-sidecar/${'k'.repeat(60)}${i}`] = '';
      for (let i = 0; i < h.nonString; i++) annotations[`vault-mtls-sidecar/cpu-request${i}`] = [i, { i }];
      const review = {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: 'b6c1a6d2-0000-4000-8000-000000000002',
          kind: { group: '', version: 'v1', kind: 'Pod' },
          operation: 'CREATE',
          namespace: 'n'.repeat(h.namespaceLength),
          object: {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: 'a'.repeat(h.nameLength), annotations },
            spec: { containers: [{ name: 'app' }] },
          },
        },
      };
      return review;
    });
  await fc.assert(
    fc.asyncProperty(hostile, async (review) => {
      const sent = JSON.stringify(review);
      const answer = await webhook.post(sent);
      if (sent.length > 2 * 1024 * 1024) {
        expect(answer.status).toBe(413);
        return;
      }
      checkAnswer(review, answer.status, answer.json, answer.text, sent);
    }),
    { numRuns: 40 },
  );
  await webhook.assertServesGoodPod();
}, 120_000);
