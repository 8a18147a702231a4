/**
 * The mutating admission webhook: AdmissionReview v1 in, AdmissionReview v1 out. A Pod whose
 * annotations ask for the sidecar gets it through a JSON patch (the same plan as `inject`); one
 * with bad annotations is refused with the message `inject` would print, so `kubectl apply` shows
 * which annotation of which object is wrong; anything else is allowed unchanged.
 *
 * Anyone who can reach the port can send anything, so every request has an answer and none can
 * end the process, with the listeners' discipline:
 * - a body that is not an AdmissionReview v1 (not JSON, not UTF-8, no request.uid) gets a 400;
 * - a review whose fields have the wrong type at any level, or that nests deeper than any Pod,
 *   is denied by an AdmissionReview that names the field;
 * - the body is capped (413) and its nesting bounded before anything recursive touches it, so a
 *   request costs at most a parse and a linear scan of MAX_BODY_BYTES;
 * - the bodies being received share one budget (503 past it), and an answer is a few KB at most
 *   plus the lists a patch rewrites (messages.ts bounds what a denial says);
 * - whatever still throws is a denial ("internal error"), logged, never an exit.
 * Refusals are logged through the rate-limited audit log, so a flood is a few lines.
 */
import type http from 'node:http';
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import { AuditLog } from '../telemetry/audit.js';
import type { InjectDefaults } from './annotations.js';
import { MAX_DEPTH, tooDeep } from './json-depth.js';
import { boundedProblems, objectLabel } from './messages.js';
import { podPatch } from './pod-patch.js';
import { isRecord, planPod } from './pod-plan.js';

/**
 * etcd stores objects up to 1.5 MiB, and a CREATE review carries the object once (oldObject is
 * null): a body past 2 MiB is not a Pod the API server could store.
 */
export const MAX_BODY_BYTES = 2 * 1024 * 1024;

/**
 * Bodies being received, across all connections: 256 connections each holding all but the last
 * byte of MAX_BODY_BYTES were ~512 MiB against the chart's 192Mi limit. Past this budget a request
 * is answered 503 and its connection closed; the API server retries (or failurePolicy applies),
 * and a held upload is cut by the listener's request timeout, so the budget frees within seconds.
 */
export const MAX_BODIES_IN_FLIGHT_BYTES = 32 * 1024 * 1024;

/** The API server's UIDs are 36 characters; the answer echoes this one back. */
const MAX_UID_LENGTH = 128;

type Answer = { allowed: true; patch?: unknown[] } | { allowed: false; message: string };

/** Why a body is not an AdmissionReview v1, or its uid and request. */
type Envelope = { error: string } | { uid: string; request: Record<string, unknown> };

export function webhookHandler(
  defaults: InjectDefaults,
  logger: Logger,
  audit = new AuditLog(logger),
  /**
   * Told of each body chunk read, kept or dropped: under a flood of held uploads those fresh
   * buffers are garbage within moments, and the webhook collects its young generation every few
   * MiB of them (memory/young-garbage.ts), or the dead ones pile up past the pod's memory limit.
   */
  bodyRead: (bytes: number) => void = () => undefined,
): http.RequestListener {
  // One budget per handler (one per webhook server), shared by every request it reads.
  let inFlight = 0;
  return (req, res) => {
    // A client that goes away mid-body must not become an unhandled 'error'.
    req.on('error', () => undefined);
    if (req.method !== 'POST' || req.url?.split('?')[0] !== '/mutate') {
      // Only the API server has business here, at /mutate. The body is read and dropped, each
      // chunk counted (a flood of them is garbage too), until it ends or the request timeout cuts
      // it; the connection is not closed under it, or a reset would lose the 404 on its way.
      req.on('data', (chunk: Buffer) => bodyRead(chunk.length));
      res.writeHead(404, { 'content-type': 'text/plain' }).end('POST AdmissionReview v1 to /mutate\n');
      return;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) return tooLarge(req, res, bodyRead);
    const chunks: Buffer[] = [];
    let size = 0;
    // What this request holds of the shared budget; given back once, whichever way it ends.
    let held = 0;
    const release = () => {
      inFlight -= held;
      held = 0;
      chunks.length = 0;
    };
    req.once('close', release);
    res.once('close', release);
    req.on('data', (chunk: Buffer) => {
      bodyRead(chunk.length);
      if (res.headersSent) return;
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        release();
        tooLarge(req, res, bodyRead);
        return;
      }
      if (inFlight + chunk.length > MAX_BODIES_IN_FLIGHT_BYTES) {
        release();
        busy(req, res, audit, bodyRead);
        return;
      }
      inFlight += chunk.length;
      held += chunk.length;
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      try {
        const body = Buffer.concat(chunks);
        release();
        answer(body, res, defaults, audit, req.socket.remoteAddress);
      } catch (err) {
        // A bug, not an input: say so, keep serving.
        logger.error({ event: 'webhook_error', err: errorMessage(err) }, 'the webhook failed on a request; it was answered 500');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
      }
    });
  };
}

function tooLarge(req: http.IncomingMessage, res: http.ServerResponse, bodyRead: (bytes: number) => void): void {
  res
    .writeHead(413, { 'content-type': 'text/plain', connection: 'close' })
    .end(`an AdmissionReview is at most ${MAX_BODY_BYTES} bytes\n`, () => req.socket.destroy());
  req.removeAllListeners('data');
  // Read and dropped until the answer is out and the socket closes.
  req.on('data', (chunk: Buffer) => bodyRead(chunk.length));
}

/** Too many bodies in flight: refuse this one and close its connection, so its bytes stop coming. */
function busy(req: http.IncomingMessage, res: http.ServerResponse, audit: AuditLog, bodyRead: (bytes: number) => void): void {
  audit.warn(
    { event: 'webhook_busy', listener: 'webhook', remoteAddress: req.socket.remoteAddress, reason: 'bodies_in_flight' },
    `refused a request: ${MAX_BODIES_IN_FLIGHT_BYTES} bytes of AdmissionReviews are already being received`,
  );
  res
    .writeHead(503, { 'content-type': 'text/plain', connection: 'close', 'retry-after': '1' })
    .end('too many AdmissionReviews in flight; retry\n', () => req.socket.destroy());
  req.removeAllListeners('data');
  // Read and dropped until the answer is out and the socket closes.
  req.on('data', (chunk: Buffer) => bodyRead(chunk.length));
}

function badRequest(res: http.ServerResponse, why: string): void {
  res.writeHead(400, { 'content-type': 'text/plain' }).end(`expected an AdmissionReview v1 (${why})\n`);
}

function answer(body: Buffer, res: http.ServerResponse, defaults: InjectDefaults, audit: AuditLog, remote: string | undefined): void {
  let text: string;
  let parsed: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    parsed = JSON.parse(text);
  } catch (err) {
    badRequest(res, err instanceof TypeError ? 'the body is not UTF-8' : 'the body is not JSON');
    return;
  }
  const envelope = readEnvelope(parsed);
  if ('error' in envelope) {
    audit.warn(
      { event: 'webhook_bad_request', listener: 'webhook', remoteAddress: remote, reason: envelope.error },
      'refused a body that is not an AdmissionReview v1',
    );
    badRequest(res, envelope.error);
    return;
  }
  const result = admit(envelope.request, defaults);
  if (!result.allowed) {
    audit.record(
      { event: 'inject_refused', listener: 'webhook', remoteAddress: remote, reason: 'denied', detail: result.message.slice(0, 1000) },
      'refused a pod',
    );
  }
  const response = result.allowed
    ? {
        uid: envelope.uid,
        allowed: true,
        ...(result.patch && result.patch.length > 0
          ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(result.patch)).toString('base64') }
          : {}),
      }
    : { uid: envelope.uid, allowed: false, status: { code: 400, message: result.message } };
  res
    .writeHead(200, { 'content-type': 'application/json' })
    .end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
}

function readEnvelope(review: unknown): Envelope {
  if (!isRecord(review)) return { error: 'the body is not a JSON object' };
  if (review.apiVersion !== 'admission.k8s.io/v1') return { error: 'apiVersion is not admission.k8s.io/v1' };
  if (review.kind !== undefined && review.kind !== 'AdmissionReview') return { error: 'kind is not AdmissionReview' };
  const request = review.request;
  if (!isRecord(request)) return { error: 'request is not an object' };
  if (typeof request.uid !== 'string' || request.uid.length === 0 || request.uid.length > MAX_UID_LENGTH)
    return { error: 'request.uid is not a UID' };
  return { uid: request.uid, request };
}

function admit(request: Record<string, unknown>, defaults: InjectDefaults): Answer {
  // Nothing below recurses into what the client sent before this bound holds.
  if (tooDeep(request)) return { allowed: false, message: `the AdmissionReview is nested deeper than ${MAX_DEPTH} levels; no Pod is` };
  const { kind, operation, namespace, object } = request;
  if (!isRecord(kind) || typeof kind.kind !== 'string')
    return { allowed: false, message: 'request.kind must be an object with a string kind (group, version, kind)' };
  if (typeof operation !== 'string') return { allowed: false, message: 'request.operation must be a string' };
  if (namespace !== undefined && typeof namespace !== 'string') return { allowed: false, message: 'request.namespace must be a string' };
  // Registered for Pod CREATE only; anything else passes as it came.
  if (kind.kind !== 'Pod' || operation !== 'CREATE') return { allowed: true };
  if (!isRecord(object)) return { allowed: false, message: 'request.object must be a Pod (an object)' };
  const metadata = isRecord(object.metadata) ? object.metadata : {};
  const ns = namespace ?? (typeof metadata.namespace === 'string' ? metadata.namespace : 'default');
  const name = objectLabel(
    'Pod',
    ns,
    typeof metadata.name === 'string' && metadata.name
      ? metadata.name
      : typeof metadata.generateName === 'string'
        ? `${metadata.generateName}…`
        : '(unnamed)',
  );
  const plan = planPod(
    { workloadAnnotations: undefined, metadata: object.metadata, spec: object.spec, field: '', namespace: ns },
    defaults,
  );
  // Bounded whatever the pod: the name is cut and the problems capped (messages.ts).
  if (plan.kind === 'refuse') return { allowed: false, message: boundedProblems(plan.problems, `${name}: `).join('; ') };
  return { allowed: true, patch: podPatch(object, plan) };
}
