/** A steady stream of requests through a sidecar, each on a new connection (a fresh mTLS handshake behind it). */
import http from 'node:http';

export interface LoadResult {
  readonly ok: number;
  /** Each failed request: when it ended (ms since the epoch) and its status or error. */
  readonly failures: { at: number; status: string }[];
}

export function startLoad(port: number, workers = 4): { stop(): Promise<LoadResult> } {
  const agent = new http.Agent({ keepAlive: false });
  let ok = 0;
  const failures: LoadResult['failures'] = [];
  let running = true;
  const worker = async () => {
    while (running) {
      const status = await new Promise<number | string>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', (err) => resolve(err.message));
      });
      if (status === 200) ok++;
      else failures.push({ at: Date.now(), status: String(status) });
    }
  };
  const all = Array.from({ length: workers }, worker);
  return {
    async stop() {
      running = false;
      await Promise.all(all);
      return { ok, failures };
    },
  };
}

/** Runs `change` while load flows through `port`, and returns what the load saw. */
export async function underLoad(port: number, change: () => Promise<void>): Promise<LoadResult> {
  const load = startLoad(port);
  try {
    await change();
  } catch (err) {
    await load.stop();
    throw err;
  }
  return load.stop();
}
