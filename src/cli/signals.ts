/**
 * Process signals for long-running commands: SIGTERM/SIGINT drain gracefully and resolve 0; a
 * second one gives up on the drain and resolves 1 at once; SIGHUP renews the certificate now.
 */
import type { Logger } from 'pino';
import type { Sidecar } from '../sidecar.js';

export function serveUntilSignal(sidecar: Sidecar, logger: Logger): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const onStop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting without finishing the drain');
        cleanup();
        resolve(1);
        return;
      }
      stopping = true;
      logger.info({ signal }, 'shutting down');
      sidecar.stop().then(
        () => {
          cleanup();
          resolve(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'error while draining');
          cleanup();
          resolve(1);
        },
      );
    };
    const onHangup = () => {
      logger.info({ signal: 'SIGHUP' }, 'renewing the certificate now');
      sidecar.renewNow();
    };
    const cleanup = () => {
      process.off('SIGTERM', onStop);
      process.off('SIGINT', onStop);
      process.off('SIGHUP', onHangup);
    };
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
    process.on('SIGHUP', onHangup);
  });
}
