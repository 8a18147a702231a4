/**
 * /metrics rendered at most 20 times a second. Rendering walks every metric and series; 64
 * connections with 300 pipelined GET /metrics each kept the event loop rendering, and the
 * kubelet's probes on the same port timed out for 15 s. Below the budget every caller gets a
 * fresh render — an operator or a test reading a counter right after an event sees it; past it
 * (only a flood gets there: Prometheus scrapes every 15 s or more), callers share the newest render
 * until the window lets another one through.
 */
export type Rendered = { contentType: string; text: string };

export const METRICS_RENDERS_PER_SECOND = 20;

export function cachedRender(
  render: () => Promise<Rendered>,
  perSecond = METRICS_RENDERS_PER_SECOND,
  now = () => performance.now(),
): () => Promise<Rendered> {
  let current: Promise<Rendered> | undefined;
  /** When the renders of the last second started, oldest first (a monotonic clock: a wall clock stepped back would keep a full window for as long as the step). */
  const started: number[] = [];
  return () => {
    const at = now();
    while (started.length > 0 && at - (started[0] ?? 0) >= 1000) started.shift();
    if (current && started.length >= perSecond) return current;
    started.push(at);
    const rendering = render();
    current = rendering;
    // A failed render is shared past the budget like a good one: a registry that throws on every
    // render must not turn a flood into a render per request. Below the budget callers retry.
    rendering.catch(() => undefined);
    return rendering;
  };
}
