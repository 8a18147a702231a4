/** Reads PKCS#12 bundles for the `files` source. */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { ErrorCodes, SidecarError } from '../errors.js';

/** Leaf, chain and key from a PKCS#12 file (the password may be empty). */
export function fromPkcs12(content: Buffer, password: string, file: string): { certs: string[]; keyPem: string } {
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(content.toString('binary')), password);
  } catch (err) {
    throw new SidecarError(
      ErrorCodes.FILES_UNREADABLE,
      `identity.files.pkcs12: cannot open ${file} (${err instanceof Error ? err.message : String(err)}); check the file and identity.files.passwordFile`,
      { cause: err },
    );
  }
  const oids = forge.pki.oids as Record<string, string>;
  const bags = (type: string) => p12.getBags({ bagType: type })[type] ?? [];
  // node-forge decodes only RSA keys and certificates, so we take each bag's raw ASN.1 (already
  // decrypted) and let Node's crypto, which reads every key type, handle the DER.
  const derOf = (bag: forge.pkcs12.Bag) => Buffer.from(forge.asn1.toDer(bag.asn1).getBytes(), 'binary');
  const keyBag = bags(oids.pkcs8ShroudedKeyBag ?? '')[0] ?? bags(oids.keyBag ?? '')[0];
  if (!keyBag) throw new SidecarError(ErrorCodes.FILES_UNREADABLE, `identity.files.pkcs12: ${file} holds no private key`);
  const keyPem = createPrivateKey({ key: derOf(keyBag), format: 'der', type: 'pkcs8' })
    .export({ format: 'pem', type: 'pkcs8' })
    .toString();
  const certs = bags(oids.certBag ?? '').map((bag) => new X509Certificate(derOf(bag)).toString());
  return { certs, keyPem };
}
