/**
 * `inject` on every workload kind: the sidecar lands as a native sidecar in the pod template,
 * its configuration is one the sidecar itself accepts, a second run changes nothing, a changed
 * annotation updates it, and `--uninject` gives the input back. Malformed annotations are errors
 * naming the annotation and the object. (The API server's strict validation of the output is in
 * test/integration/kubernetes.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { buildConfig, CONFIG_ENV } from '../../src/config/load.js';
import { ErrorCodes } from '../../src/errors.js';
import { injectYaml } from '../../src/kubernetes/inject.js';
import { errorOf } from '../support/errors.js';
import { deploymentWith, WORKLOADS } from '../support/workloads.js';

const options = { vaultAddr: 'https://vault.vault.svc:8200', image: 'example/sidecar:1' };

type Json = Record<string, unknown>;
const podTemplate = (object: Json): { metadata: Json; spec: Json } => {
  const spec = object.spec as Json;
  if (object.kind === 'Pod') return object as { metadata: Json; spec: Json };
  if (object.kind === 'CronJob') return ((spec.jobTemplate as Json).spec as Json).template as { metadata: Json; spec: Json };
  return spec.template as { metadata: Json; spec: Json };
};

describe.each(Object.keys(WORKLOADS))('%s', (kind) => {
  const input = WORKLOADS[kind] as string;

  it('gets the sidecar as a native sidecar, with a configuration the sidecar accepts', () => {
    const out = parse(injectYaml(input, kind, options).text) as Json;
    const pod = podTemplate(out);
    const [sidecar, ...others] = pod.spec.initContainers as Json[];
    expect(others).toEqual([]);
    expect(sidecar).toMatchObject({ name: 'mtls-sidecar', image: 'example/sidecar:1', restartPolicy: 'Always', args: ['run'] });
    expect(sidecar?.startupProbe).toMatchObject({ httpGet: { path: '/readyz', port: 15000 } });
    expect((pod.spec.containers as Json[]).map((c) => c.name)).toEqual(['app']);
    expect(pod.spec.volumes).toEqual([
      {
        name: 'vault-mtls-sidecar-token',
        projected: { sources: [{ serviceAccountToken: { path: 'token', audience: 'vault', expirationSeconds: 3600 } }] },
      },
    ]);
    expect((pod.metadata.labels as Json)['vault-mtls-sidecar/injected']).toBe('true');

    const env = Object.fromEntries(((sidecar?.env ?? []) as { name: string; value: string }[]).map((e) => [e.name, e.value]));
    expect(env.VAULT_ADDR).toBe('https://vault.vault.svc:8200');
    const config = buildConfig(parse(env[CONFIG_ENV] as string), { VAULT_ADDR: env.VAULT_ADDR });
    expect(config.identity).toMatchObject({
      commonName: 'orders.shop.svc',
      dnsNames: ['orders', 'orders.shop', 'orders.shop.svc', 'orders.shop.svc.cluster.local'],
      uriSans: ['spiffe://cluster.local/ns/shop/sa/orders'],
    });
    // The intermediate `vault setup` issues from, with the roles it makes for the service in its namespace.
    expect(config.vault?.pki).toMatchObject({ mount: 'pki_int', role: 'orders.shop' });
    expect(config.vault?.auth).toMatchObject({
      method: 'kubernetes',
      mount: 'kubernetes',
      role: 'orders.shop',
      tokenFile: '/var/run/secrets/vault/token',
    });
    expect(config.inbound.map((l) => [l.listen, l.target, l.mode])).toEqual([
      [{ host: '0.0.0.0', port: 8443 }, { host: '127.0.0.1', port: 8080 }, 'http'],
    ]);
    expect(config.outbound.map((l) => [l.listen.port, `${l.target.host}:${l.target.port}`, l.serverName, l.mode])).toEqual([
      [9001, 'payments.shop.svc:8443', 'payments.shop.svc', 'http'],
      [5432, 'db.shop.svc:5432', 'db.shop.svc', 'tcp'],
    ]);
  });

  it('changes nothing on a second run, and --uninject gives the input back', () => {
    const once = injectYaml(input, kind, options).text;
    expect(injectYaml(once, kind, options).text).toBe(once);
    const back = injectYaml(once, kind, { ...options, uninject: true }).text;
    expect(parse(back)).toEqual(parse(input));
    expect(back).toContain('# the app itself'); // comments survive
  });
});

describe('annotations', () => {
  const deployment = WORKLOADS.Deployment as string;

  it('updates the sidecar when an annotation changes, and removes it when inject turns "false"', () => {
    const once = injectYaml(deployment, 'x', options).text;
    const changed = injectYaml(once.replace('vault-mtls-sidecar/role: orders', 'vault-mtls-sidecar/role: billing'), 'x', options).text;
    const sidecars = (podTemplate(parse(changed)).spec.initContainers as Json[]).filter((c) => c.name === 'mtls-sidecar');
    expect(sidecars).toHaveLength(1);
    expect(JSON.stringify(sidecars[0])).toContain('role: billing');
    const off = injectYaml(changed.replace('vault-mtls-sidecar/inject: "true"', 'vault-mtls-sidecar/inject: "false"'), 'x', options).text;
    const pod = podTemplate(parse(off));
    expect(pod.spec.initContainers).toBeUndefined();
    expect(pod.spec.volumes).toBeUndefined();
    expect(pod.metadata.labels).toEqual({ app: 'orders' });
  });

  it('leaves an object without the annotation alone', () => {
    const plain = deployment
      .replace('vault-mtls-sidecar/inject: "true"', 'other/annotation: "x"')
      .replace(/\n\s+vault-mtls-sidecar\/.*/g, '');
    expect(parse(injectYaml(plain, 'x', options).text)).toEqual(parse(plain));
  });

  it('moves a classic sidecar container it added itself (the status annotation says so) to a native one', () => {
    const classic = deployment
      .replace('      containers:\n', '      containers:\n        - name: mtls-sidecar\n          image: old\n')
      .replace('vault-mtls-sidecar/inject: "true"', 'vault-mtls-sidecar/inject: "true"\n        vault-mtls-sidecar/status: injected');
    const pod = podTemplate(parse(injectYaml(classic, 'x', options).text));
    expect((pod.spec.containers as Json[]).map((c) => c.name)).toEqual(['app']);
    expect((pod.spec.initContainers as Json[]).map((c) => c.name)).toEqual(['mtls-sidecar']);
  });

  it('handles a List and several documents', () => {
    const list = stringify({ apiVersion: 'v1', kind: 'List', items: [parse(WORKLOADS.Pod as string)] });
    const text = `${list}---\n${WORKLOADS.Job}`;
    const [list2, job] = parseAllDocuments(injectYaml(text, 'x', options).text).map((d) => d.toJS() as Json);
    const [pod] = (list2?.items ?? []) as Json[];
    expect(podTemplate(pod as Json).spec.initContainers).toHaveLength(1);
    expect(podTemplate(job as Json).spec.initContainers).toHaveLength(1);
  });

  const good = ['vault-mtls-sidecar/inject: "true"', 'vault-mtls-sidecar/role: orders', 'vault-mtls-sidecar/inbound: "8443:8080"'];
  it.each([
    [
      [...good, 'vault-mtls-sidecar/rol: orders'],
      /^Deployment shop\/orders: unknown annotation vault-mtls-sidecar\/rol; known: inject, role/,
    ],
    [
      ['vault-mtls-sidecar/inject: "yes"', ...good.slice(1)],
      /^Deployment shop\/orders: annotation vault-mtls-sidecar\/inject is "yes"; use "true" or "false"$/,
    ],
    [
      [...good.slice(0, 2), 'vault-mtls-sidecar/inbound: "8443"'],
      /^Deployment shop\/orders: annotation vault-mtls-sidecar\/inbound: "8443" is not PORT:APP_PORT, e.g. 8443:8080$/,
    ],
    [
      [...good.slice(0, 2), 'vault-mtls-sidecar/inbound: "8443:8080/udp"'],
      /annotation vault-mtls-sidecar\/inbound: "8443:8080\/udp" has mode "udp"; use http, h2 or tcp$/,
    ],
    [
      [...good, 'vault-mtls-sidecar/outbound: "payments:8443"'],
      /annotation vault-mtls-sidecar\/outbound: "payments:8443" is not LOCAL_PORT=HOST:PORT/,
    ],
    [[...good, 'vault-mtls-sidecar/ttl: 1'], /annotation vault-mtls-sidecar\/ttl must be a string \(quote it in YAML: "1"\)$/],
    // A name every object has (Object.prototype's) is no more known than any other.
    [[...good, 'vault-mtls-sidecar/constructor: x'], /unknown annotation vault-mtls-sidecar\/constructor; known: inject/],
  ])('refuses %j, naming the annotation and the object', (annotations, message) => {
    const err = errorOf(() => injectYaml(deploymentWith(annotations), 'x', options));
    expect(err.code).toBe(ErrorCodes.INJECT_INVALID);
    expect(err.message).toMatch(message);
  });

  it('refuses YAML it cannot read, naming the file', () => {
    const err = errorOf(() => injectYaml(deploymentWith([...good, 'vault-mtls-sidecar/role: twice']), 'orders.yaml', options));
    expect(err.message).toMatch(/^orders\.yaml: not valid YAML: Map keys must be unique/);
  });

  it('says what is missing: the role, a Vault address, any port — all at once', () => {
    const bare =
      'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    vault-mtls-sidecar/inject: "true"\nspec:\n  containers: [{ name: app, image: x }]\n';
    const err = errorOf(() => injectYaml(bare, 'x', { image: 'x' }));
    expect(err.message.split('\n')).toEqual([
      "Pod p: annotation vault-mtls-sidecar/role is missing: name the service's Vault role",
      'Pod p: no Vault address: set annotation vault-mtls-sidecar/vault-addr or pass inject --vault-addr',
      'Pod p: annotations vault-mtls-sidecar/inbound and vault-mtls-sidecar/outbound are both empty: give at least one port',
    ]);
  });
});
