/**
 * The `files` source: PEM certificate, key and CA files (or a PKCS#12 bundle with a password),
 * for teams that run their own CA with openssl today. Every "issue" reads the files again, and a
 * change on disk triggers one, so a rotated certificate goes through the same verify-before-publish
 * as a Vault one: half-written or mismatched files are refused and the old certificate stays.
 */
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, SidecarError } from '../errors.js';
import { type CertificateBundle, splitPemCertificates } from './bundle.js';
import type { CertificateSource } from './source.js';
import type { TrustMaterial } from './trust.js';

export type FileIdentityConfig =
  | { readonly cert: string; readonly key: string; readonly ca: string; readonly pollInterval: number }
  | {
      readonly pkcs12: string;
      readonly passwordFile?: string | undefined;
      readonly ca?: string | undefined;
      readonly pollInterval: number;
    };

function read(file: string, field: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new SidecarError(
      ErrorCodes.FILES_UNREADABLE,
      `identity.files.${field}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      { cause: err },
    );
  }
}

export class FileCertificateSource implements CertificateSource {
  readonly kind = 'files';
  #watchers: FSWatcher[] = [];
  #poll: NodeJS.Timeout | undefined;

  constructor(private readonly files: FileIdentityConfig) {}

  async issue(): Promise<CertificateBundle> {
    const files = this.files;
    let certs: string[];
    let keyPem: string;
    if ('pkcs12' in files) {
      const password = files.passwordFile ? read(files.passwordFile, 'passwordFile').toString('utf8').trim() : '';
      // node-forge is loaded only for PKCS#12 files.
      const { fromPkcs12 } = await import('./pkcs12.js');
      ({ certs, keyPem } = fromPkcs12(read(files.pkcs12, 'pkcs12'), password, files.pkcs12));
    } else {
      certs = splitPemCertificates(read(files.cert, 'cert').toString('utf8'));
      keyPem = read(files.key, 'key').toString('utf8');
    }
    const [leaf, ...chain] = certs;
    if (!leaf) throw new SidecarError(ErrorCodes.FILES_UNREADABLE, 'identity.files: no certificate found in the files');
    const trustPem = files.ca ? splitPemCertificates(read(files.ca, 'ca').toString('utf8')) : chain.slice(-1);
    return { certPem: leaf, keyPem, chainPem: chain, trustPem };
  }

  /** The CA file alone when there is one; a PKCS#12 bundle without it must be opened for its chain. */
  async fetchTrust(): Promise<TrustMaterial> {
    const caPems = this.files.ca ? splitPemCertificates(read(this.files.ca, 'ca').toString('utf8')) : (await this.issue()).trustPem;
    return { caPems, crlPems: [] };
  }

  /**
   * Calls `onChange` when any of the files changes: fs.watch on their directories (Kubernetes
   * swaps a Secret's files through a symlink, which a watch on the file itself would miss), and a
   * poll as a fallback for filesystems without change events.
   */
  watch(onChange: () => void): void {
    const files = this.files;
    const paths = 'pkcs12' in files ? [files.pkcs12, files.passwordFile, files.ca] : [files.cert, files.key, files.ca];
    const directories = new Set(paths.filter((p): p is string => p !== undefined).map((p) => path.dirname(p)));
    for (const directory of directories) {
      try {
        this.#watchers.push(watch(directory, () => onChange()));
      } catch {
        // No change events here; the poll below still notices.
      }
    }
    let last = this.#fingerprint();
    this.#poll = setInterval(() => {
      const now = this.#fingerprint();
      if (now !== last) {
        last = now;
        onChange();
      }
    }, this.files.pollInterval * 1000);
    this.#poll.unref();
  }

  #fingerprint(): string {
    const files = this.files;
    const paths = 'pkcs12' in files ? [files.pkcs12, files.ca] : [files.cert, files.key, files.ca];
    return paths.map((p) => (p ? safeRead(p) : '')).join('|');
  }

  async close(): Promise<string[]> {
    for (const watcher of this.#watchers) watcher.close();
    clearInterval(this.#poll);
    return [];
  }
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'base64');
  } catch {
    return '';
  }
}
