/**
 * Issue 24 review, finding 3: `inject` read some manifests differently from kubectl, so what it
 * checked was not what the cluster got. kubectl reads YAML 1.1, whose merge key `<<` brought a
 * hostNetwork (or containers, or annotations) into a pod that inject saw without it; and kubectl
 * treats any object with non-null `items` as a list — a PodList was passed through uninjected
 * and unmentioned, and a `kind: Pod` decoy with items was injected while kubectl applied its
 * hostNetwork items. Now a merge key is refused, every object with items is read as a list,
 * one with both items and a pod spec is refused, and every object seen gets a report line.
 */
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { ErrorCodes } from '../../src/errors.js';
import { injectYaml } from '../../src/kubernetes/inject.js';
import { errorOf } from '../support/errors.js';

const options = { vaultAddr: 'https://vault.vault.svc:8200', image: 'example/sidecar:1' };
type Json = Record<string, unknown>;

const ANNOTATIONS = `
    vault-mtls-sidecar/inject: "true"
    vault-mtls-sidecar/role: orders
    vault-mtls-sidecar/inbound: "8443:8080"`;

const pod = (name: string, spec: string, indent = '') =>
  `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  annotations:${ANNOTATIONS}
spec:
${spec}`
    .split('\n')
    .map((line) => indent + line)
    .join('\n');

/** What kubectl applies: YAML 1.1 merge keys expanded. */
const asKubectlReads = (text: string) => parseAllDocuments(text, { merge: true }).map((d) => d.toJS() as Json);

describe('YAML merge keys', () => {
  it.each([
    ['hostNetwork merged into the spec', pod('p', '  <<: {hostNetwork: true}\n  containers:\n  - name: app\n    image: nginx')],
    ['containers merged from an anchor', `${pod('p', '  <<: &base {containers: [{name: app, image: nginx}]}\n  hostNetwork: false')}`],
    ['a quoted merge key', pod('p', '  "<<": {hostNetwork: true}\n  containers:\n  - name: app\n    image: nginx')],
  ])('%s: refused, naming the merge key', (_what, text) => {
    // kubectl would see fields inject did not check.
    expect(asKubectlReads(text).length).toBeGreaterThan(0);
    const err = errorOf(() => injectYaml(text, 'm.yaml', options));
    expect(err.code).toBe(ErrorCodes.INJECT_INVALID);
    expect(err.message).toMatch(/^m\.yaml: a document uses a YAML merge key \(<<\)/);
  });

  it('a good pod in the same run is still injected once the merge key is gone', () => {
    const result = injectYaml(pod('p', '  containers:\n  - name: app\n    image: nginx'), 'm.yaml', options);
    expect(result.report).toEqual(['Pod p: injected (role orders)']);
  });
});

describe('objects with items', () => {
  const podList = `apiVersion: v1\nkind: PodList\nitems:\n${pod('orders', '  containers:\n  - name: app\n    image: nginx', '  ').replace(/^ {2}apiVersion/, '- apiVersion')}`;

  it('a PodList is read as kubectl reads it: its pod is injected and reported', () => {
    const result = injectYaml(podList, 'l.yaml', options);
    const items = (asKubectlReads(result.text)[0] as { items: { spec: Json }[] }).items;
    expect(((items[0]?.spec.initContainers ?? []) as Json[])[0]).toMatchObject({ name: 'mtls-sidecar' });
    expect(result.report).toEqual(['PodList (unnamed): a list of 1 object', 'Pod orders: injected (role orders)']);
  });

  it('a kind: Pod decoy with items is refused: kubectl would apply the items', () => {
    const decoy = `${pod('decoy', '  containers:\n  - name: app\n    image: nginx')}\nitems:\n${pod('orders', '  hostNetwork: true\n  containers:\n  - name: app\n    image: nginx', '  ').replace(/^ {2}apiVersion/, '- apiVersion')}`;
    expect((parse(decoy) as Json).items).toHaveLength(1);
    const err = errorOf(() => injectYaml(decoy, 'l2.yaml', options));
    expect(err.code).toBe(ErrorCodes.INJECT_INVALID);
    expect(err.message).toBe(
      'Pod decoy: has both items and a spec; kubectl applies the items and drops the rest, so inject refuses to guess: split it into a list and the object',
    );
  });

  it('a hostNetwork pod hidden in any list kind is refused like a bare one', () => {
    const hidden = `apiVersion: v1\nkind: ConfigMapList\nitems:\n${pod('orders', '  hostNetwork: true\n  containers:\n  - name: app\n    image: nginx', '  ').replace(/^ {2}apiVersion/, '- apiVersion')}`;
    const err = errorOf(() => injectYaml(hidden, 'l3.yaml', options));
    expect(err.message).toMatch(/^Pod orders: spec\.hostNetwork is true/);
  });

  it('reports every object, the skipped ones too', () => {
    const text = `apiVersion: v1\nkind: Service\nmetadata: {name: orders, namespace: shop}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n`;
    expect(injectYaml(text, 'x.yaml', options).report).toEqual([
      'Service shop/orders: skipped (no pod template)',
      'ConfigMap c: skipped (no pod template)',
    ]);
  });
});

it('a name of a megabyte and a thousand bad annotations make a message of a few KB', () => {
  const annotations = Array.from({ length: 1000 }, (_, i) => `    vault-mtls-sidecar/u${i}: ""`).join('\n');
  const text = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${'a'.repeat(1_000_000)}\n  annotations:\n    vault-mtls-sidecar/inject: "true"\n${annotations}\nspec:\n  containers:\n  - name: app\n`;
  const err = errorOf(() => injectYaml(text, 'big.yaml', options));
  expect(err.code).toBe(ErrorCodes.INJECT_INVALID);
  expect(err.message.length).toBeLessThan(8192);
  expect(err.message).toMatch(/unknown annotations vault-mtls-sidecar\/u0, .*…and 990 more/);
});

/**
 * Issue 24 review, late finding: kubectl reads YAML 1.1 (go-yaml v2) and inject read YAML 1.2, so
 * a scalar whose meaning differs between the two changed when inject wrote the document back:
 * `defaultMode: 0400` (octal 256 for kubectl) came back as `400` (0o620, group-writable), and
 * `hostNetwork: no` (false for kubectl) was refused as not a boolean. Now inject reads and writes
 * scalars as kubectl does, and leaves out the YAML 1.1 types go-yaml v2 lacks (sexagesimal
 * numbers, timestamps), so every value it does not change is written as it was read.
 */
describe('scalars read as kubectl reads them (YAML 1.1)', () => {
  const spec = `  volumes:
  - name: secrets
    secret: {secretName: s, defaultMode: 0400}
  containers:
  - name: app
    image: nginx
    env:
    - {name: OCTAL, value: 0750}
    - {name: HEX, value: 0x1F}
    - {name: SEXAGESIMAL, value: 1:20}
    - {name: DATE, value: 2001-12-14}
    - {name: SWITCH, value: on}
    - {name: ANSWER, value: n}`;

  it('a file mode and every other scalar inject does not change keeps its value and its form', () => {
    const result = injectYaml(pod('p', spec), 'm.yaml', options);
    expect(result.report).toEqual(['Pod p: injected (role orders)']);
    for (const line of ['defaultMode: 0400', 'value: 0750', 'value: 1:20', 'value: 2001-12-14', 'value: on', 'value: n']) {
      expect(result.text).toContain(line);
    }
    expect(result.text).toMatch(/value: 0x1[Ff]\b/); // the same number; the library writes hex digits in lower case
  });

  it('`hostNetwork: no` is false, as kubectl reads it: the pod is injected', () => {
    const result = injectYaml(pod('p', `  hostNetwork: no\n${spec}`), 'm.yaml', options);
    expect(result.report).toEqual(['Pod p: injected (role orders)']);
    expect(result.text).toContain('hostNetwork: no');
  });

  it('`hostNetwork: yes` is true, as kubectl reads it: refused as a hostNetwork pod', () => {
    const err = errorOf(() => injectYaml(pod('p', `  hostNetwork: yes\n${spec}`), 'm.yaml', options));
    expect(err.code).toBe(ErrorCodes.INJECT_INVALID);
    expect(err.message).toMatch(/spec\.hostNetwork is true/);
  });

  it('what inject adds reads back as strings where it wrote strings (no bare yes/no/on/off)', () => {
    const result = injectYaml(pod('p', spec), 'm.yaml', options);
    expect(result.text).toContain('vault-mtls-sidecar/injected: "true"');
    expect(result.text).not.toContain('!!');
  });
});
