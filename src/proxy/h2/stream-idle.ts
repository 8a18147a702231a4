/**
 * The idle limit of one h2 stream: `onIdle` runs when no DATA moved on it, either way, for
 * idleTimeout. The relay says when data moves (streamActive); the timer is released when the
 * stream closes, however it closes.
 *
 * Not Node's `stream.setTimeout`: a stream destroyed before it closed (its session reset or
 * destroyed under it — a client killed mid-call) is marked destroyed before Node clears its timer,
 * and `setTimeout(0)` returns early for a destroyed stream. The armed timer then held the stream,
 * the upstream stream relayed from it and their buffers (~7.8 KB per call) for idleTimeout.
 */
import type http2 from 'node:http2';

const timers = new WeakMap<http2.Http2Stream, NodeJS.Timeout>();

/** Starts the idle timer of `stream`. */
export function watchIdleStream(stream: http2.Http2Stream, idleTimeoutMs: number, onIdle: () => void): void {
  const timer = setTimeout(onIdle, idleTimeoutMs).unref();
  timers.set(stream, timer);
  stream.once('close', () => {
    clearTimeout(timer);
    // A refresh() would arm a cleared timer again.
    timers.delete(stream);
  });
}

/** Data moved on `stream`: its idle time starts again. */
export function streamActive(stream: http2.Http2Stream): void {
  timers.get(stream)?.refresh();
}
