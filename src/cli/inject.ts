/**
 * `vault-mtls-sidecar inject [files…]`: reads Kubernetes YAML (files, or stdin) and writes it to
 * stdout with the sidecar added where the pod annotations ask for it (see src/kubernetes/), like
 * `linkerd inject`: `vault-mtls-sidecar inject deploy.yaml | kubectl apply -f -`.
 */
import { readFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { ErrorCodes, SidecarError } from '../errors.js';

export interface InjectArgs {
  files?: string[];
  uninject?: boolean;
  'vault-addr'?: string;
  image: string;
  'pin-image': boolean;
  namespace?: string;
}

export const DEFAULT_IMAGE = 'ghcr.io/example/vault-mtls-sidecar:0.1.0';

export function injectOptions(yargs: Argv): Argv<InjectArgs> {
  return yargs
    .positional('files', { type: 'string', array: true, describe: 'YAML files (none or -: stdin)' })
    .option('uninject', { type: 'boolean', default: false, describe: 'remove the sidecar instead' })
    .option('vault-addr', { type: 'string', describe: 'Vault address for pods without the vault-mtls-sidecar/vault-addr annotation' })
    .option('image', {
      type: 'string',
      default: DEFAULT_IMAGE,
      describe: 'sidecar image for pods without the vault-mtls-sidecar/image annotation',
    })
    .option('pin-image', {
      type: 'boolean',
      default: false,
      describe: 'every pod gets --image; a vault-mtls-sidecar/image annotation is an error',
    })
    .option('namespace', { type: 'string', describe: 'namespace for objects that name none (default: default)' }) as Argv<InjectArgs>;
}

export async function injectCommand(
  args: InjectArgs,
  io: { stdin: NodeJS.ReadableStream; stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process,
): Promise<number> {
  const { injectYaml } = await import('../kubernetes/inject.js');
  const files = args.files?.length ? args.files : ['-'];
  const outputs: string[] = [];
  for (const file of files) {
    const text = file === '-' ? await readAll(io.stdin) : readFile(file);
    const result = injectYaml(text, file === '-' ? 'stdin' : file, {
      uninject: args.uninject,
      vaultAddr: args['vault-addr'],
      image: args.image,
      pinImage: args['pin-image'],
      namespace: args.namespace,
    });
    outputs.push(result.text);
    for (const line of result.report) io.stderr.write(`${line}\n`);
  }
  io.stdout.write(outputs.map((t) => (t.endsWith('\n') ? t : `${t}\n`)).join('---\n'));
  return 0;
}

function readFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new SidecarError(ErrorCodes.USAGE, `inject: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
