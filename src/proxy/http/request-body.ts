/**
 * The request body a forwarded request sends upstream. Handed the client's request stream itself,
 * undici destroys it when the upstream answers before the body is all sent (undici then resets its
 * own connection) — and a destroyed request stops Node's parser on the client's connection: the
 * rest of the body is never read, and the next request on that keep-alive connection hangs until
 * a timeout. An app refusing an upload (401, 413) without reading it does exactly this.
 *
 * Iterated without destroy-on-return, the request outlives undici's early stop; the rest of its
 * body is then read and dropped — what Node's server does with a body no handler read, and what the
 * app itself did — so the connection carries the next request. The listener's body limits
 * (bodyIdleTimeout, requestTimeout) still bound how long that takes.
 */
import type http from 'node:http';

/** `relayed`: told of each chunk's size (ListenerDeps.bodyRelayed). */
export async function* upstreamBody(req: http.IncomingMessage, relayed: (bytes: number) => void): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of req.iterator({ destroyOnReturn: false })) {
      relayed((chunk as Buffer).length);
      yield chunk as Buffer;
    }
  } finally {
    // Stopped early (not ended, not failed): read and drop the rest, so the parser reaches the
    // next request ('data' listener: the stream flows; the dropped buffers are garbage too).
    if (!req.complete && !req.destroyed) req.on('data', (chunk: Buffer) => relayed(chunk.length));
  }
}
