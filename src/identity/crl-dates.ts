/** Reads CRL validity dates; its own module so only sources that fetch CRLs load the X.509 parser. */
import './x509-setup.js';
import { X509Crl } from '@peculiar/x509';

/** The earliest nextUpdate among the CRLs; past it, OpenSSL refuses every handshake the CRL covers. */
export function earliestNextUpdate(crlPems: readonly string[]): Date | undefined {
  let earliest: Date | undefined;
  for (const pem of crlPems) {
    const next = new X509Crl(pem).nextUpdate;
    if (next && (!earliest || next < earliest)) earliest = next;
  }
  return earliest;
}
