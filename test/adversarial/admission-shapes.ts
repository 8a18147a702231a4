/**
 * fast-check arbitraries shaped like what the webhook and `inject` read: AdmissionReviews, Pods and
 * workloads, where every field may instead hold any JSON value (the wrong type at every level),
 * and annotation keys and values are drawn from ours as often as from noise.
 */
import fc from 'fast-check';

const anyJson = fc.jsonValue({ maxDepth: 3 });

/** Mostly the right shape; else any JSON at all in its place, or nothing (JSON.stringify drops the key). */
export function maybe<T>(arb: fc.Arbitrary<T>, right = 8): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: right, arbitrary: arb }, { weight: 1, arbitrary: anyJson }, { weight: 1, arbitrary: fc.constant(undefined) });
}

/** For the envelope: wrong less often, so more runs reach the Pod inside. */
const rarely = <T>(arb: fc.Arbitrary<T>) => maybe(arb, 24);

const ourKeys = [
  'inject',
  'role',
  'vault-addr',
  'auth-mount',
  'pki-mount',
  'inbound',
  'outbound',
  'ttl',
  'image',
  'cpu-request',
  'memory-request',
  'memory-limit',
  'status',
  'rol',
].map((k) => `vault-mtls-sidecar/${k}`);

const ourValues = [
  'true',
  'false',
  'orders',
  '8443:8080',
  '8443:8080/h2',
  '9001=payments.shop.svc:8443',
  '15000=x:1',
  '8443:8080,8443:9000',
  '1h',
  '1s',
  '50m',
  '1Mi',
  '256Mi',
  'https://vault:8200',
  'example/sidecar:1',
  '',
];

const annotations = fc.dictionary(
  fc.oneof(fc.constantFrom(...ourKeys), fc.string({ maxLength: 12 })),
  fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...ourValues) },
    { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
    { weight: 1, arbitrary: anyJson },
  ),
  { maxKeys: 8 },
);

/** Annotations that ask for the sidecar, so injection itself (not only parsing) runs often. */
const injectingAnnotations = fc
  .record({
    extra: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 2 }), annotations),
    ports: fc.constantFrom('8443:8080', '8443:8080/tcp', '9443:9000/h2'),
  })
  .map(({ extra, ports }) => ({
    ...extra,
    'vault-mtls-sidecar/inject': 'true',
    'vault-mtls-sidecar/role': 'orders',
    'vault-mtls-sidecar/inbound': ports,
  }));

const container = fc.record({
  name: maybe(fc.constantFrom('app', 'app', 'other', 'mtls-sidecar')),
  image: maybe(fc.constant('example/app:1')),
});
const volume = fc.record({ name: maybe(fc.constantFrom('data', 'data', 'vault-mtls-sidecar-token')), emptyDir: fc.constant({}) });

const podSpec = fc.record({
  containers: maybe(fc.array(maybe(container, 30), { maxLength: 3 })),
  initContainers: maybe(fc.array(maybe(container, 30), { maxLength: 2 })),
  volumes: maybe(fc.array(maybe(volume, 30), { maxLength: 2 })),
  hostNetwork: maybe(fc.constantFrom(false, false, false, true)),
  serviceAccountName: maybe(fc.constantFrom('orders', '')),
});

const podMetadata = fc.record({
  name: maybe(fc.constantFrom('orders', 'x')),
  generateName: maybe(fc.constant('orders-')),
  namespace: maybe(fc.constantFrom('mesh', 'shop')),
  labels: maybe(fc.dictionary(fc.string({ maxLength: 8 }), maybe(fc.string({ maxLength: 8 }), 40), { maxKeys: 3 })),
  annotations: maybe(fc.oneof(annotations, injectingAnnotations, injectingAnnotations)),
});

export const pod = fc.record({
  apiVersion: maybe(fc.constant('v1')),
  kind: maybe(fc.constant('Pod')),
  metadata: maybe(podMetadata),
  spec: maybe(podSpec),
});

const request = fc.record({
  uid: rarely(fc.uuid()),
  kind: maybe(
    fc.record(
      { group: maybe(fc.constant('')), version: maybe(fc.constant('v1')), kind: maybe(fc.constantFrom('Pod', 'Pod', 'Pod', 'Service')) },
      { requiredKeys: [] },
    ),
  ),
  operation: maybe(fc.constantFrom('CREATE', 'CREATE', 'CREATE', 'UPDATE')),
  namespace: maybe(fc.constantFrom('mesh', 'default')),
  object: rarely(pod),
  oldObject: maybe(fc.constant(null)),
});

const anyReview = fc.record({
  apiVersion: rarely(fc.constant('admission.k8s.io/v1')),
  kind: maybe(fc.constant('AdmissionReview')),
  request: rarely(request),
});

/** A Pod CREATE as the API server sends it, of a pod that asks for the sidecar (its spec still any). */
const injectingReview = fc
  .record({ uid: fc.uuid(), annotations: injectingAnnotations, spec: podSpec, name: fc.constantFrom('orders', 'x') })
  .map(({ uid, annotations, spec, name }) => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      operation: 'CREATE',
      namespace: 'mesh',
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name, annotations }, spec },
    },
  }));

export const admissionReview = fc.oneof({ weight: 3, arbitrary: anyReview }, { weight: 1, arbitrary: injectingReview });

/** A workload of any kind `inject` knows, its pod template where that kind keeps it (or not). */
export const workload = fc
  .record({
    kind: maybe(fc.constantFrom('Pod', 'Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'List', 'Service')),
    metadata: maybe(podMetadata),
    template: fc.record({ metadata: maybe(podMetadata), spec: maybe(podSpec) }),
    spec: maybe(podSpec),
  })
  .map(({ kind, metadata, template, spec }) => {
    if (kind === 'Pod') return { apiVersion: 'v1', kind, metadata, spec };
    if (kind === 'CronJob') return { apiVersion: 'batch/v1', kind, metadata, spec: { jobTemplate: { spec: { template } } } };
    if (kind === 'List') return { apiVersion: 'v1', kind, items: [{ apiVersion: 'v1', kind: 'Pod', metadata, spec }] };
    return { apiVersion: 'apps/v1', kind, metadata, spec: { template } };
  });
