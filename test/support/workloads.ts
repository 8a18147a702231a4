/**
 * Annotated workloads of every kind `inject` handles, as YAML a user would write: for the unit
 * tests and for the real API server's strict validation (test/integration/kubernetes.test.ts).
 */
export const ANNOTATIONS = `
        vault-mtls-sidecar/inject: "true"
        vault-mtls-sidecar/role: orders
        vault-mtls-sidecar/inbound: "8443:8080"
        vault-mtls-sidecar/outbound: "9001=payments.shop.svc:8443,5432=db.shop.svc:5432/tcp"`;

const podSpec = (indent: string) =>
  `${indent}serviceAccountName: orders
${indent}containers:
${indent}  - name: app # the app itself
${indent}    image: example/orders:1.0
${indent}    securityContext:
${indent}      allowPrivilegeEscalation: false
${indent}      runAsNonRoot: true
${indent}      capabilities:
${indent}        drop: [ALL]
${indent}      seccompProfile:
${indent}        type: RuntimeDefault`;

const template = (indent: string, annotations = ANNOTATIONS) => `${indent}template:
${indent}  metadata:
${indent}    labels:
${indent}      app: orders
${indent}    annotations:${annotations.replace(/\n {8}/g, `\n${indent}      `)}
${indent}  spec:
${podSpec(`${indent}    `)}`;

const selector = `  selector:
    matchLabels:
      app: orders
`;

/** An apps/v1 workload of `kind` with the annotated pod template (`extra`: spec lines before the selector). */
function appsWorkload(kind: string, extra = '', annotations = ANNOTATIONS): string {
  return `apiVersion: apps/v1
kind: ${kind}
metadata:
  name: orders
  namespace: shop
spec:
${extra}${selector}${template('  ', annotations)}
`;
}

/** A Deployment with these annotation lines (`key: value`, one per entry) on its pod template. */
export function deploymentWith(annotations: string[]): string {
  return appsWorkload('Deployment', '', annotations.map((a) => `\n        ${a}`).join(''));
}

export const WORKLOADS: Record<string, string> = {
  Pod: `apiVersion: v1
kind: Pod
metadata:
  name: orders
  namespace: shop
  annotations:${ANNOTATIONS.replace(/\n {8}/g, '\n    ')}
spec:
${podSpec('  ')}
`,
  Deployment: appsWorkload('Deployment'),
  StatefulSet: appsWorkload('StatefulSet', '  serviceName: orders\n'),
  DaemonSet: appsWorkload('DaemonSet'),
  ReplicaSet: appsWorkload('ReplicaSet'),
  Job: `apiVersion: batch/v1
kind: Job
metadata:
  name: orders-migrate
  namespace: shop
spec:
${template('  ').replace('  spec:\n', '  spec:\n      restartPolicy: Never\n')}
`,
  CronJob: `apiVersion: batch/v1
kind: CronJob
metadata:
  name: orders-report
  namespace: shop
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
${template('      ').replace('      spec:\n', '      spec:\n          restartPolicy: OnFailure\n')}
`,
};
