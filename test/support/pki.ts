/**
 * Certificates as people make them with openssl: a CA, leaves for servers and clients, and the
 * wrong ones an attacker or a broken setup brings (another CA, a CA certificate used as a leaf,
 * not yet valid, client auth not allowed by its EKU). Made at test time in a temporary folder.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Pem {
  readonly cert: string;
  readonly key: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface LeafOptions {
  readonly cn: string;
  readonly dns?: readonly string[];
  readonly uris?: readonly string[];
  readonly ips?: readonly string[];
  /** Extended key usage; both by default. */
  readonly eku?: 'serverAuth' | 'clientAuth' | 'serverAuth,clientAuth';
  /** A CA certificate (CA:TRUE, no keyUsage) presented as a leaf. */
  readonly caTrue?: boolean;
  readonly days?: number;
  /** An RSA 2048 key instead of EC P-256 (static-RSA suites need one to be offered at all). */
  readonly rsa?: boolean | undefined;
  /** The key type, when neither EC P-256 nor `rsa`. */
  readonly keyType?: 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096' | 'ed25519';
  /** Signed by this CA (an intermediate()) instead of the root. */
  readonly signer?: Pem;
}

function keyAlgorithm(opts: LeafOptions): string[] {
  const type = opts.keyType ?? (opts.rsa ? 'rsa-2048' : 'ec-p256');
  if (type === 'ed25519') return ['-algorithm', 'ED25519'];
  if (type.startsWith('rsa-')) return ['-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${type.slice(4)}`];
  return ['-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${type === 'ec-p384' ? 'P-384' : 'P-256'}`];
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export class TestPki {
  readonly ca: Pem;

  private constructor(
    readonly dir: string,
    private readonly name: string,
  ) {
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}-ca.key`], dir);
    openssl(
      [
        'req',
        '-x509',
        '-new',
        '-key',
        `${name}-ca.key`,
        '-subj',
        `/CN=${name} test CA`,
        '-days',
        '2',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
        '-out',
        `${name}-ca.crt`,
      ],
      dir,
    );
    this.ca = this.#read(`${name}-ca`);
  }

  static create(name = 'adversary'): TestPki {
    return new TestPki(mkdtempSync(path.join(tmpdir(), `sidecar-pki-${name}-`)), name);
  }

  /** A leaf signed by this CA. */
  leaf(file: string, opts: LeafOptions): Pem {
    const sans = [
      ...(opts.dns ?? []).map((d) => `DNS:${d}`),
      ...(opts.uris ?? []).map((u) => `URI:${u}`),
      ...(opts.ips ?? []).map((ip) => `IP:${ip}`),
    ];
    const rsa = opts.rsa || opts.keyType?.startsWith('rsa');
    const ext = opts.caTrue
      ? ['basicConstraints=critical,CA:TRUE']
      : [
          'basicConstraints=critical,CA:FALSE',
          `keyUsage=critical,digitalSignature${rsa ? ',keyEncipherment' : ''}`,
          `extendedKeyUsage=${opts.eku ?? 'serverAuth,clientAuth'}`,
        ];
    if (sans.length > 0) ext.push(`subjectAltName=${sans.join(',')}`);
    return this.#make(file, `/CN=${opts.cn}`, keyAlgorithm(opts), ext, opts.days ?? 1, opts.signer);
  }

  /**
   * `pem` with the CA as a PKCS#12 bundle (password `changeit`), written as people do: openssl 3's
   * default (PBES2/AES), openssl `-legacy` (RC2/3DES), or a keystore keytool (Java 17) rewrote
   * with its own encryption and MAC.
   */
  pkcs12(pem: Pem, writer: 'openssl' | 'openssl-legacy' | 'keytool'): string {
    const file = `${pem.certFile}.p12`;
    const exportArgs = ['pkcs12', '-export', '-in', pem.certFile, '-inkey', pem.keyFile, '-certfile', this.ca.certFile];
    const out = writer === 'keytool' ? `${file}.src` : file;
    openssl(
      [...exportArgs, '-passout', 'pass:changeit', '-name', 'identity', ...(writer === 'openssl-legacy' ? ['-legacy'] : []), '-out', out],
      this.dir,
    );
    if (writer === 'keytool') {
      execFileSync(
        'keytool',
        [
          ...['-importkeystore', '-noprompt', '-srckeystore', out, '-srcstoretype', 'PKCS12', '-srcstorepass', 'changeit'],
          ...['-destkeystore', file, '-deststoretype', 'PKCS12', '-deststorepass', 'changeit'],
        ],
        { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] },
      );
    }
    return file;
  }

  /** An intermediate CA signed by the root, to sign leaves with (`signer`); peers trust the root only. */
  intermediate(file: string): Pem {
    const ext = ['basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign,cRLSign'];
    return this.#make(file, `/CN=${this.name} intermediate ${file}`, keyAlgorithm({ cn: '' }), ext, 2);
  }

  /** A key, a CSR, and the certificate openssl signs for it with `signer` (the root by default). */
  #make(file: string, subject: string, keyArgs: string[], ext: string[], days: number, signer?: Pem): Pem {
    const base = `${this.name}-${file}`;
    openssl(['genpkey', ...keyArgs, '-out', `${base}.key`], this.dir);
    openssl(['req', '-new', '-key', `${base}.key`, '-subj', subject, '-out', `${base}.csr`], this.dir);
    writeFileSync(path.join(this.dir, `${base}.ext`), `${ext.join('\n')}\n`);
    const ca = signer ?? { certFile: `${this.name}-ca.crt`, keyFile: `${this.name}-ca.key` };
    openssl(
      ['x509', '-req', '-in', `${base}.csr`, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial'].concat([
        '-days',
        String(days),
        '-extfile',
        `${base}.ext`,
        '-out',
        `${base}.crt`,
      ]),
      this.dir,
    );
    return this.#read(base);
  }

  /** A leaf valid for `seconds` from now (openssl 3.0's x509 counts in days only). */
  async shortLived(file: string, cn: string, dns: string[], seconds: number): Promise<Pem> {
    return this.#fromLibrary(file, cn, dns, new Date(Date.now() - 5_000), new Date(Date.now() + seconds * 1000));
  }

  /** A client leaf whose validity starts tomorrow (openssl 3.0's x509 cannot backdate or postdate). */
  async notYetValid(file: string, cn: string): Promise<Pem> {
    const tomorrow = Date.now() + 86_400_000;
    return this.#fromLibrary(file, cn, [], new Date(tomorrow), new Date(tomorrow + 86_400_000));
  }

  async #fromLibrary(file: string, cn: string, dns: string[], notBefore: Date, notAfter: Date): Promise<Pem> {
    await import('../../src/identity/x509-setup.js');
    const x509 = await import('@peculiar/x509');
    const { webcrypto } = await import('node:crypto');
    const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
    const caKeyDer = Buffer.from(this.ca.key.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const caKey = await webcrypto.subtle.importKey('pkcs8', caKeyDer, alg, false, ['sign']);
    const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8)))
        .toString('hex')
        .replace(/^./, '1'),
      subject: `CN=${cn}`,
      issuer: new x509.X509Certificate(this.ca.cert).subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: caKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        ...(dns.length > 0 ? [new x509.SubjectAlternativeNameExtension(dns.map((value) => ({ type: 'dns' as const, value })))] : []),
      ],
    });
    const base = `${this.name}-${file}`;
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
    writeFileSync(path.join(this.dir, `${base}.crt`), cert.toString('pem'));
    writeFileSync(path.join(this.dir, `${base}.key`), `-----BEGIN PRIVATE KEY-----\n${pkcs8}\n-----END PRIVATE KEY-----\n`);
    return this.#read(base);
  }

  #read(base: string): Pem {
    const certFile = path.join(this.dir, `${base}.crt`);
    const keyFile = path.join(this.dir, `${base}.key`);
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile, keyFile };
  }
}
