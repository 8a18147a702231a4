/**
 * `vault-mtls-sidecar wait-ready`: blocks until the sidecar's /readyz answers 200. A classic
 * (non-native) sidecar container runs it as its postStart hook: the kubelet starts the next
 * container (the app) only once the hook returns, so the app's first outbound call finds the
 * sidecar ready — what a native sidecar's startupProbe does (deploy/deployment-classic.yaml).
 */
import type { Argv } from 'yargs';
import { ErrorCodes, errorMessage, SidecarError } from '../errors.js';

export interface WaitReadyArgs {
  admin: string;
  timeout: number;
}

export function waitReadyOptions(yargs: Argv): Argv<WaitReadyArgs> {
  return yargs
    .option('admin', { type: 'string', default: '127.0.0.1:15000', describe: "the sidecar's admin server, host:port" })
    .option('timeout', { type: 'number', default: 120, describe: 'seconds to wait before failing' });
}

export async function waitReadyCommand(args: WaitReadyArgs): Promise<number> {
  const url = `http://${args.admin}/readyz`;
  const deadline = Date.now() + args.timeout * 1000;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return 0;
      const body = (await res.json().catch(() => ({}))) as { reasons?: string[] };
      last = `/readyz answered ${res.status}${body.reasons?.length ? ` (${body.reasons.join('; ')})` : ''}`;
    } catch (err) {
      // fetch says only "fetch failed"; the reason (ECONNREFUSED, …) is its cause's code.
      last = `cannot reach ${url} (${(err as { cause?: { code?: string } }).cause?.code ?? errorMessage(err)})`;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new SidecarError(
    ErrorCodes.STARTUP_TIMEOUT,
    `wait-ready: the sidecar was not ready within ${args.timeout}s; last: ${last}; read its log (kubectl logs <pod> -c mtls-sidecar) or run doctor`,
  );
}
