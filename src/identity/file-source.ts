/**
 * The `files` source: PEM certificate, key and CA files (or a PKCS#12 bundle with a password),
 * for teams that run their own CA with openssl today. Every "issue" reads the files again, and a
 * change on disk triggers one, so a rotated certificate goes through the same verify-before-publish
 * as a Vault one: half-written or mismatched files are refused and the old certificate stays.
 */
import { createHash } from 'node:crypto';
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

/** Events of one update (a Secret's symlink swap is several) are taken together after this quiet time. */
const WATCH_DEBOUNCE_MS = 200;

export class FileCertificateSource implements CertificateSource {
  readonly kind = 'files';
  #watchers: FSWatcher[] = [];
  #debounce: NodeJS.Timeout | undefined;
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
    let last = this.#fingerprint();
    // Only a change of the configured files' contents counts: a log file written next to them, or
    // the several events of one Secret update (..data symlink swap), are one check each, debounced,
    // and a check that finds the same bytes does nothing.
    const check = () => {
      const now = this.#fingerprint();
      if (now === last) return;
      last = now;
      onChange();
    };
    for (const directory of directories) {
      try {
        this.#watchers.push(
          watch(directory, () => {
            clearTimeout(this.#debounce);
            this.#debounce = setTimeout(check, WATCH_DEBOUNCE_MS);
            this.#debounce.unref();
          }),
        );
      } catch {
        // No change events here; the poll below still notices.
      }
    }
    this.#poll = setInterval(check, this.files.pollInterval * 1000);
    this.#poll.unref();
  }

  /** A digest of the configured files' contents (not kept: the key is among them). */
  #fingerprint(): string {
    const files = this.files;
    const paths = 'pkcs12' in files ? [files.pkcs12, files.ca] : [files.cert, files.key, files.ca];
    const hash = createHash('sha256');
    for (const p of paths) hash.update(p ? safeRead(p) : '').update('\0');
    return hash.digest('hex');
  }

  async close(): Promise<string[]> {
    for (const watcher of this.#watchers) watcher.close();
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
    return [];
  }
}

function safeRead(file: string): Buffer | string {
  try {
    return readFileSync(file);
  } catch {
    return '';
  }
}
