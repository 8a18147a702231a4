/**
 * `doctor` for certificates from files: what people check by hand with openssl — the files read,
 * the key matches the certificate, the chain verifies against the CA, the dates, the names.
 */
import { X509Certificate } from 'node:crypto';
import type { Config } from '../config/schema/index.js';
import { errorMessage } from '../errors.js';
import type { CertificateBundle } from '../identity/bundle.js';
import { describeCertificate } from '../identity/bundle.js';
import { FileCertificateSource } from '../identity/file-source.js';
import type { TrustMaterial } from '../identity/trust.js';
import { chainProblem, keyProblem } from '../identity/verify.js';
import { type CheckResult, fail, pass, roughDuration, skip, warn } from './report.js';

/** Less than this share of its lifetime left: files are not renewed by the sidecar, so say so early. */
const LOW_VALIDITY_SHARE = 0.2;

export async function fileChecks(config: Config): Promise<{ checks: CheckResult[]; bundle?: CertificateBundle; trust?: TrustMaterial }> {
  const files = config.identity.files;
  if (!files) return { checks: [] };
  const source = new FileCertificateSource(files);
  let bundle: CertificateBundle;
  try {
    bundle = await source.issue();
  } catch (err) {
    return {
      checks: [
        fail('files.read', errorMessage(err), 'check the identity.files paths, that the Secret is mounted there, and the PKCS#12 password'),
        ...['cert.key', 'cert.validity', 'cert.chain', 'cert.names'].map((id) => skip(id, 'needs files.read')),
      ],
    };
  }
  const checks: CheckResult[] = [
    pass(
      'files.read',
      `${'pkcs12' in files ? files.pkcs12 : `${files.cert}, ${files.key}`}; ${bundle.chainPem.length} intermediate(s), ${bundle.trustPem.length} CA certificate(s)`,
    ),
  ];
  const leaf = new X509Certificate(bundle.certPem);
  const info = describeCertificate(leaf);

  const wrongKey = keyProblem(leaf, bundle.keyPem);
  if (wrongKey === 'unparsable') {
    checks.push(
      fail('cert.key', 'the private key cannot be parsed', 'the key file must be an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1)'),
    );
  } else if (wrongKey === 'mismatch') {
    checks.push(
      fail(
        'cert.key',
        'the private key does not belong to the certificate',
        'the cert and key files come from different issues: mount the pair from one Secret (tls.crt with tls.key)',
      ),
    );
  } else checks.push(pass('cert.key', `the private key matches the certificate (${leaf.publicKey.asymmetricKeyType})`));

  const now = Date.now();
  const left = (info.notAfter.getTime() - now) / 1000;
  const lifetime = (info.notAfter.getTime() - info.notBefore.getTime()) / 1000;
  if (info.notBefore.getTime() > now) {
    checks.push(fail('cert.validity', `not valid before ${info.notBefore.toISOString()}`, "check this host's clock and the issuer's"));
  } else if (left <= 0) {
    checks.push(
      fail(
        'cert.validity',
        `expired at ${info.notAfter.toISOString()}`,
        'renew the certificate (cert-manager, your CA) and update the files; the sidecar reloads them',
      ),
    );
  } else if (left < lifetime * LOW_VALIDITY_SHARE) {
    checks.push(
      warn(
        'cert.validity',
        `${roughDuration(left)} left of ${roughDuration(lifetime)} (until ${info.notAfter.toISOString()})`,
        'whatever renews these files has not yet: check it (cert-manager Certificate status)',
      ),
    );
  } else
    checks.push(pass('cert.validity', `${roughDuration(left)} left of ${roughDuration(lifetime)} (until ${info.notAfter.toISOString()})`));

  const unchained = chainProblem(leaf, bundle);
  checks.push(
    unchained
      ? fail(
          'cert.chain',
          unchained,
          'identity.files.ca must hold the CA that issued the certificate (and the cert file its intermediates, leaf first)',
        )
      : pass('cert.chain', `chains to the CA (${info.issuer})`),
  );

  const names = [...info.uris, ...info.dnsNames, ...info.ipAddresses];
  if (names.length === 0) {
    checks.push(
      warn(
        'cert.names',
        `no subjectAltName (subject ${info.subject})`,
        'Go, Python, curl and Java clients ignore the CN when they check a server name: reissue with the service name as a DNS SAN',
      ),
    );
  } else checks.push(pass('cert.names', names.join(', ')));
  return { checks, bundle, trust: await source.fetchTrust() };
}
