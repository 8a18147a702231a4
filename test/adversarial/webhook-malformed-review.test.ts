/**
 * Issue 24, defect 1: one unauthenticated request ended the webhook. `admit()` ran in
 * `req.on('end')` with no error path, so a Pod whose labels were a string, whose spec was not an
 * object, or a deeply nested body (a stack overflow in the YAML library) threw and the process
 * exited — and with failurePolicy Fail, pod creation stopped in every opted-in namespace. Now
 * every request has an answer: an AdmissionReview that denies with a message naming the field,
 * or a 400 for a body that is not an AdmissionReview at all, and the webhook keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdmissionResponse, admissionReview, goodPod, startWebhookUnderAttack, type WebhookUnderAttack } from './webhook-process.js';

let webhook: WebhookUnderAttack;

beforeAll(async () => {
  webhook = await startWebhookUnderAttack();
});

afterAll(async () => {
  await webhook?.stop();
});

/** Posts `body` and returns the AdmissionReview response, after checking the envelope and the uid. */
async function denied(body: unknown): Promise<AdmissionResponse> {
  const answer = await webhook.post(typeof body === 'string' ? body : JSON.stringify(body));
  expect(answer.status, answer.text).toBe(200);
  const review = answer.json as { apiVersion: string; kind: string; response: AdmissionResponse };
  expect(review).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
  expect(review.response.uid).toBe('b6c1a6d2-0000-4000-8000-000000000001');
  expect(review.response.allowed).toBe(false);
  expect(review.response.patch).toBeUndefined();
  return review.response;
}

const annotated = goodPod();

describe('a Pod with fields of the wrong type is denied with a message naming the field', () => {
  it.each([
    [
      'metadata.labels is a string',
      { ...annotated, metadata: { ...(annotated.metadata as object), labels: 'app=orders' } },
      /metadata\.labels/,
    ],
    ['metadata.annotations is a list', { ...annotated, metadata: { name: 'x', annotations: ['a'] } }, /metadata\.annotations/],
    ['metadata is a number', { ...annotated, metadata: 7 }, /metadata/],
    ['spec is a string', { ...annotated, spec: 'x' }, /spec/],
    ['spec.containers is an object', { ...annotated, spec: { containers: { name: 'app' } } }, /spec\.containers/],
    ['spec.initContainers holds a string', { ...annotated, spec: { initContainers: ['x'], containers: [] } }, /spec\.initContainers/],
    ['spec.volumes is a number', { ...annotated, spec: { volumes: 3, containers: [] } }, /spec\.volumes/],
    ['the object is a list', [annotated], /request\.object/],
    ['the object is null', null, /request\.object/],
  ])('%s', async (_what, object, message) => {
    const response = await denied(admissionReview(object));
    expect(response.status?.message).toMatch(message);
    expect(response.status?.code).toBe(400);
    await webhook.assertServesGoodPod();
  });

  it('wrong types in the request itself (kind, operation, namespace)', async () => {
    for (const extra of [{ kind: 'Pod' }, { kind: { kind: 7 } }, { operation: ['CREATE'] }, { namespace: { name: 'mesh' } }]) {
      const response = await denied(admissionReview(annotated, extra));
      expect(response.status?.message).toMatch(/request\.(kind|operation|namespace)/);
    }
    await webhook.assertServesGoodPod();
  });
});

describe('bodies nested deeper than any Pod', () => {
  it('denies a Pod with a field nested 200,000 levels deep, instead of overflowing the stack', async () => {
    const deep = `${'{"a":'.repeat(200_000)}1${'}'.repeat(200_000)}`;
    const body = JSON.stringify(admissionReview({ ...annotated, spec: { containers: [], x: 0 } })).replace('"x":0', `"x":${deep}`);
    const response = await denied(body);
    expect(response.status?.message).toMatch(/nested deeper than \d+ levels/);
    await webhook.assertServesGoodPod();
  });

  it('answers 400 to a body that is deep nesting and nothing else', async () => {
    const answer = await webhook.post(`${'['.repeat(500_000)}${']'.repeat(500_000)}`);
    expect(answer.status).toBe(400);
    await webhook.assertServesGoodPod();
  });
});

describe('bodies that are not an AdmissionReview v1', () => {
  it.each([
    ['not JSON', 'not json'],
    ['a JSON string', '"AdmissionReview"'],
    ['null', 'null'],
    ['v1beta1', JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', request: { uid: 'x' } })],
    ['no request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' })],
    ['request is a string', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: 'x' })],
    ['uid is a number', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 1 } })],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
  ])('%s: 400 with a message', async (_what, body) => {
    const answer = await webhook.post(body);
    expect(answer.status).toBe(400);
    expect(answer.text).toMatch(/AdmissionReview/);
    await webhook.assertServesGoodPod();
  });
});
