/**
 * `vault-mtls-sidecar cert inspect`: what a certificate file holds (PEM or PKCS#12), or what a
 * live endpoint presents (`--connect host:port`), readable at a glance or as JSON for scripts.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { Argv } from 'yargs';
import { parseHostPort } from '../config/parse.js';
import { ErrorCodes, SidecarError } from '../errors.js';
import { splitPemCertificates } from '../identity/bundle.js';

export interface CertInspectArgs {
  file?: string;
  connect?: string;
  'server-name'?: string;
  'password-file'?: string;
  output?: string;
}

export function certInspectOptions(yargs: Argv): Argv<CertInspectArgs> {
  return yargs
    .positional('file', { type: 'string', describe: 'a PEM file (certificate and chain) or a PKCS#12 file (.p12/.pfx)' })
    .option('connect', { type: 'string', describe: 'host:port of a TLS endpoint: show the chain it presents' })
    .option('server-name', { type: 'string', describe: 'with --connect: the SNI name to send (default: the host)' })
    .option('password-file', { type: 'string', describe: "a PKCS#12 file's password, in a file" })
    .option('output', { alias: 'o', choices: ['text', 'json'], default: 'text', describe: 'output format' });
}

function usage(message: string): never {
  throw new SidecarError(ErrorCodes.USAGE, message);
}

async function fromFile(file: string, passwordFile: string | undefined): Promise<string[]> {
  let content: Buffer;
  try {
    content = readFileSync(file);
  } catch (err) {
    usage(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)}); check the path`);
  }
  const pems = splitPemCertificates(content.toString('latin1'));
  if (pems.length > 0) return pems;
  // Not PEM: a PKCS#12 bundle (DER), opened like the files source opens it.
  const { fromPkcs12 } = await import('../identity/pkcs12.js');
  const password = passwordFile ? readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '') : '';
  return fromPkcs12(content, password, file).certs;
}

/** The certificates a TLS peer has presented so far, leaf first, as PEM. */
function presentedChain(socket: tls.TLSSocket): string[] {
  const pems: string[] = [];
  let cert: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  while (cert?.raw && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    // node's own PEM encoding: hand-wrapping the base64 left an empty line whenever its length
    // was a multiple of 64, which OpenSSL then misread ("wrong tag"), for some certificates only.
    pems.push(new X509Certificate(cert.raw).toString());
    cert = cert.issuerCertificate;
  }
  return pems;
}

/** The chain a TLS server presents, leaf first; verification is off: we look, we do not trust. */
function fromEndpoint(address: string, serverName: string | undefined): Promise<string[]> {
  const target = parseHostPort(address) ?? usage(`--connect: "${address}" is not host:port; use e.g. orders.svc:8443`);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: target.host,
      port: target.port,
      servername: serverName ?? (/^[\d.:]+$/.test(target.host) ? undefined : target.host),
      rejectUnauthorized: false,
      timeout: 10_000,
    });
    socket.once('secureConnect', () => {
      const pems = presentedChain(socket);
      socket.destroy();
      resolve(pems);
    });
    socket.once('timeout', () => socket.destroy(new Error('no TLS handshake within 10s')));
    socket.once('error', (err) => {
      // A server that closes right after its side of the handshake (TLS 1.3: before our Finished
      // reaches it) still showed its certificate: report that, not the reset.
      const pems = presentedChain(socket);
      if (pems.length > 0) resolve(pems);
      else reject(new SidecarError(ErrorCodes.USAGE, `--connect ${address}: ${err.message}; check the address and that it speaks TLS`));
    });
  });
}

export async function certInspectCommand(args: CertInspectArgs, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  if (!args.file === !args.connect) usage('cert inspect: give a file or --connect host:port (one of them)');
  const pems = args.connect
    ? await fromEndpoint(args.connect, args['server-name'])
    : await fromFile(args.file ?? '', args['password-file']);
  if (pems.length === 0) usage(`cert inspect: no certificate found in ${args.file ?? args.connect}`);
  // Loaded on use (the X.509 parser is large): `run` must not pay for it in its memory.
  const { formatReports, reportCertificate } = await import('../inspect/certificate-report.js');
  const reports = pems.map((pem) => reportCertificate(pem));
  out.write(args.output === 'json' ? `${JSON.stringify(reports, null, 2)}\n` : `${formatReports(reports)}\n`);
  return 0;
}
