/** `vault-mtls-sidecar demo`: the embedded default, no Vault needed. Serves until Ctrl-C. */
import path from 'node:path';
import { pino } from 'pino';
import type { Argv } from 'yargs';
import { createLogger } from '../telemetry/logger.js';

export interface DemoArgs {
  dir: string;
  'inbound-port': number;
  'outbound-port': number;
  'admin-port': number;
  'log-level': string;
}

export function demoOptions(yargs: Argv): Argv<DemoArgs> {
  return yargs
    .option('dir', { type: 'string', default: 'demo-certs', describe: 'where to write the client certificate, key and CA' })
    .option('inbound-port', { type: 'number', default: 8443, describe: 'inbound mTLS port (in front of the echo app)' })
    .option('outbound-port', { type: 'number', default: 9001, describe: 'outbound plaintext port (dials the inbound port with mTLS)' })
    .option('admin-port', { type: 'number', default: 15000, describe: 'admin server port (/healthz, /readyz, /certs)' })
    .option('log-level', {
      type: 'string',
      default: 'warn',
      choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'],
      describe: 'log level; logs go to stderr so the instructions stay readable',
    });
}

export async function demoCommand(args: DemoArgs): Promise<number> {
  const logger = createLogger(args['log-level'], pino.destination(2), 'auto', process.stderr.isTTY === true);
  // Loaded here, not at start-up: the demo's dev CA brings an X.509 library `run` does not need.
  const { startDemo } = await import('../demo/demo.js');
  const demo = await startDemo({
    dir: path.resolve(args.dir),
    inboundPort: args['inbound-port'],
    outboundPort: args['outbound-port'],
    adminPort: args['admin-port'],
    logger,
  });
  const admin = demo.sidecar.admin.address();
  process.stdout.write(
    [
      'vault-mtls-sidecar demo is running (an in-memory dev CA, no Vault).',
      `  echo app      http://127.0.0.1:${(demo.app.address() as { port: number }).port} (plaintext, loopback only)`,
      `  inbound mTLS  https://localhost:${demo.sidecar.listenerAddress('echo').port} -> echo app`,
      `  outbound      http://127.0.0.1:${demo.sidecar.listenerAddress('to-echo').port} -> inbound, with mTLS`,
      `  admin         http://127.0.0.1:${admin?.port}/readyz and /certs`,
      `  client files  ${path.dirname(demo.files.cert)}/{client.crt,client.key,ca.crt}`,
      '',
      'Without a client certificate the handshake is refused:',
      `  ${demo.commands.noCert}`,
      'With the client certificate the echo app answers, naming you as the caller:',
      `  ${demo.commands.withCert}`,
      'Through the outbound listener, plaintext in and mTLS out:',
      `  ${demo.commands.outbound}`,
      '',
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await demo.stop();
  return 0;
}
