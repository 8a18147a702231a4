/**
 * The serials a set of CRLs revokes, keyed so a peer certificate's serial can be looked up
 * whichever way it is spelled: what ConnectionDeadlines closes connections by.
 */
import '../identity/x509-setup.js';
import { X509Crl } from '@peculiar/x509';

/** A serial as hex without leading zeros, upper case (Node and @peculiar/x509 spell them differently). */
export function normalizeSerial(serial: string): string {
  return serial
    .replace(/[^0-9a-f]/gi, '')
    .replace(/^0+(?=.)/, '')
    .toUpperCase();
}

/** Revoked serials → the issuers (as @peculiar/x509 names them) whose CRL lists them. */
export function revokedSerials(crlPems: readonly string[]): Map<string, Set<string>> {
  const revoked = new Map<string, Set<string>>();
  for (const pem of crlPems) {
    let crl: X509Crl;
    try {
      crl = new X509Crl(pem);
    } catch {
      // A CRL we cannot read revokes nothing here; the TLS layer refuses handshakes it covers.
      continue;
    }
    for (const entry of crl.entries) {
      const serial = normalizeSerial(entry.serialNumber);
      const issuers = revoked.get(serial) ?? new Set<string>();
      issuers.add(crl.issuer);
      revoked.set(serial, issuers);
    }
  }
  return revoked;
}
