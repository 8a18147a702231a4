/**
 * Issue 24, defect 11: `inject` and the webhook deleted any container named mtls-sidecar — one
 * added by hand to an unannotated pod (as deploy/deployment.yaml does), or an app container that
 * happens to have the name. Now only the sidecar the injector added (marked by the
 * vault-mtls-sidecar/status annotation) is replaced or removed; a pod that asks for injection
 * while carrying a foreign one is refused with a message saying what to do.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { ErrorCodes } from '../../src/errors.js';
import { injectYaml } from '../../src/kubernetes/inject.js';
import { errorOf } from '../support/errors.js';
import { WORKLOADS } from '../support/workloads.js';
import { GOOD_ANNOTATIONS, goodPod, patchOf, startWebhookUnderAttack, type WebhookUnderAttack } from './webhook-process.js';

const options = { vaultAddr: 'https://vault.vault.svc:8200', image: 'example/sidecar:1' };
const handWritten = readFileSync(path.resolve(import.meta.dirname, '../../deploy/deployment.yaml'), 'utf8');
type Json = Record<string, unknown>;
const templateOf = (deployment: unknown) => ((deployment as Json).spec as Json).template as { metadata: Json; spec: Json };

describe('inject', () => {
  it('leaves a hand-written sidecar in an unannotated pod as written (deploy/deployment.yaml)', () => {
    const result = injectYaml(handWritten, 'deployment.yaml', options);
    expect(parseAllDocuments(result.text).map((d) => d.toJS())).toEqual(parseAllDocuments(handWritten).map((d) => d.toJS()));
    expect(result.report).toEqual([
      'Deployment default/orders: skipped (its mtls-sidecar container was not added by inject (no vault-mtls-sidecar/status annotation): left as written)',
    ]);
  });

  it('--uninject leaves a hand-written sidecar as written too', () => {
    const result = injectYaml(handWritten, 'deployment.yaml', { ...options, uninject: true });
    expect(templateOf(parse(result.text)).spec.initContainers).toHaveLength(1);
  });

  it('refuses an annotated pod whose app container is named mtls-sidecar, and keeps it', () => {
    const clash = (WORKLOADS.Deployment as string).replace('- name: app # the app itself', '- name: mtls-sidecar # the app itself');
    const err = errorOf(() => injectYaml(clash, 'x', options));
    expect(err.code).toBe(ErrorCodes.INJECT_INVALID);
    expect(err.message).toBe(
      'Deployment shop/orders: a container named mtls-sidecar is already in the pod and was not added by inject (no vault-mtls-sidecar/status annotation); rename it, or delete it to let inject add the sidecar',
    );
  });

  it('still replaces the sidecar it added itself, and removes it when asked', () => {
    const once = injectYaml(WORKLOADS.Deployment as string, 'x', options).text;
    expect(templateOf(parse(once)).metadata.annotations).toMatchObject({ 'vault-mtls-sidecar/status': expect.stringMatching(/^injected/) });
    const again = injectYaml(once.replace('role: orders', 'role: billing'), 'x', options).text;
    expect((templateOf(parse(again)).spec.initContainers as Json[]).map((c) => c.name)).toEqual(['mtls-sidecar']);
    const back = injectYaml(again, 'x', { ...options, uninject: true }).text;
    expect(templateOf(parse(back)).spec.initContainers).toBeUndefined();
  });
});

describe('the webhook (built CLI)', () => {
  let webhook: WebhookUnderAttack;
  beforeAll(async () => {
    webhook = await startWebhookUnderAttack();
  });
  afterAll(async () => {
    await webhook?.stop();
  });

  it('allows an unannotated pod with a hand-written sidecar unchanged', async () => {
    const pod = goodPod({});
    (pod.spec as Json).initContainers = [{ name: 'mtls-sidecar', image: 'mine:1', restartPolicy: 'Always' }];
    const response = await webhook.review(pod);
    expect(response).toMatchObject({ allowed: true });
    expect(response.patch).toBeUndefined();
    await webhook.assertServesGoodPod();
  });

  it('denies an annotated pod whose app container is named mtls-sidecar, instead of deleting it', async () => {
    const pod = goodPod(GOOD_ANNOTATIONS);
    (pod.spec as Json).containers = [{ name: 'mtls-sidecar', image: 'example/orders:1.0' }];
    const response = await webhook.review(pod);
    expect(response.allowed).toBe(false);
    expect(response.status?.message).toBe(
      'Pod mesh/orders: a container named mtls-sidecar is already in the pod and was not added by inject (no vault-mtls-sidecar/status annotation); rename it, or delete it to let inject add the sidecar',
    );
    await webhook.assertServesGoodPod();
  });

  it('removes the sidecar it marked when the pod no longer asks for it, and only that', async () => {
    const pod = parse(injectYaml(WORKLOADS.Pod as string, 'x', options).text) as Json;
    const annotations = (pod.metadata as Json).annotations as Json;
    annotations['vault-mtls-sidecar/inject'] = 'false';
    const patch = patchOf(await webhook.review(pod));
    expect(patch).toEqual(
      expect.arrayContaining([
        { op: 'remove', path: '/spec/initContainers' },
        { op: 'remove', path: '/spec/volumes' },
        { op: 'remove', path: '/metadata/labels' },
      ]),
    );
    const kept = patch.find((op) => op.path === '/metadata/annotations')?.value as Json;
    expect(kept['vault-mtls-sidecar/status']).toBeUndefined();
    expect(kept['vault-mtls-sidecar/role']).toBe('orders');
    await webhook.assertServesGoodPod();
  });

  it('replaces the sidecar of a pod inject already marked, keeping the app', async () => {
    const pod = parse(injectYaml(WORKLOADS.Pod as string, 'x', options).text) as Json;
    const patch = patchOf(await webhook.review(pod));
    const init = patch.find((op) => op.path === '/spec/initContainers')?.value as Json[];
    expect(init.map((c) => c.name)).toEqual(['mtls-sidecar']);
    expect(patch.find((op) => op.path === '/spec/containers')).toBeUndefined();
    await webhook.assertServesGoodPod();
  });
});
