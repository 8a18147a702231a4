/**
 * /metrics rendered at most once a second. Rendering walks every metric and series; 64 connections
 * with 300 pipelined GET /metrics each kept the event loop rendering, and the kubelet's probes on
 * the same port timed out for 15 s. Prometheus scrapes every 15 s or more, so an answer up to a
 * second old costs it nothing; callers that arrive while a render runs share that render.
 */
export type Rendered = { contentType: string; text: string };

export const METRICS_MAX_AGE_MS = 1000;

export function cachedRender(render: () => Promise<Rendered>, maxAgeMs = METRICS_MAX_AGE_MS, now = Date.now): () => Promise<Rendered> {
  let current: Promise<Rendered> | undefined;
  /** When `current` settled; undefined while it runs. */
  let settledAt: number | undefined;
  return () => {
    if (current && (settledAt === undefined || now() - settledAt < maxAgeMs)) return current;
    const started = render();
    current = started;
    settledAt = undefined;
    started.then(
      () => {
        if (current === started) settledAt = now();
      },
      () => {
        // A failed render is not kept: the next caller tries again.
        if (current === started) current = undefined;
      },
    );
    return started;
  };
}
