/**
 * The mutating admission webhook: AdmissionReview v1 in, AdmissionReview v1 out. A Pod whose
 * annotations ask for the sidecar gets it through a JSON patch (the same transform as `inject`);
 * one with bad annotations is refused with the message `inject` would print, so `kubectl apply`
 * shows which annotation of which object is wrong; anything else is allowed unchanged.
 */
import type http from 'node:http';
import type { Logger } from 'pino';
import type { InjectDefaults } from './annotations.js';
import { injectPod } from './inject.js';

/** AdmissionReview bodies are small; a Pod near this size is not one a sidecar can help. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;

interface AdmissionRequest {
  uid?: string;
  kind?: { kind?: string };
  namespace?: string;
  operation?: string;
  object?: Record<string, unknown>;
}

export function webhookHandler(defaults: InjectDefaults, logger: Logger): http.RequestListener {
  return (req, res) => {
    if (req.method !== 'POST' || req.url?.split('?')[0] !== '/mutate') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('POST AdmissionReview v1 to /mutate\n');
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      let request: AdmissionRequest | undefined;
      try {
        const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { apiVersion?: string; request?: AdmissionRequest };
        if (review.apiVersion !== 'admission.k8s.io/v1' || typeof review.request?.uid !== 'string')
          throw new Error('not an AdmissionReview v1');
        request = review.request;
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`expected an AdmissionReview v1 (${(err as Error).message})\n`);
        return;
      }
      const response = admit(request, defaults, logger);
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: request.uid, ...response } }));
    });
  };
}

function admit(request: AdmissionRequest, defaults: InjectDefaults, logger: Logger): Record<string, unknown> {
  if (request.kind?.kind !== 'Pod' || request.operation !== 'CREATE' || !request.object) return { allowed: true };
  const result = injectPod(request.object, request.namespace ?? 'default', defaults);
  if (result.problems.length > 0) {
    logger.warn({ event: 'inject_refused', namespace: request.namespace, problems: result.problems }, 'refused a pod with bad annotations');
    return { allowed: false, status: { code: 400, message: result.problems.join('; ') } };
  }
  if (!result.pod) return { allowed: true };
  const labels = (result.pod.metadata as Record<string, unknown>).labels;
  const patch = [
    { op: 'replace', path: '/spec', value: result.pod.spec },
    { op: 'add', path: '/metadata/labels', value: labels },
  ];
  logger.info({ event: 'injected', namespace: request.namespace }, 'added the sidecar to a pod');
  return { allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') };
}
