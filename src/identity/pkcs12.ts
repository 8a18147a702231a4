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
  // node-forge decodes RSA keys and certificates into objects and leaves the others (EC) as raw,
  // decrypted ASN.1; either way we hand the DER to Node's crypto, which reads every key type.
  // (Reading only the raw ASN.1 made every RSA bundle fail: openssl's and keytool's alike.)
  const toDer = (asn1: forge.asn1.Asn1) => Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
  const keyDer = (bag: forge.pkcs12.Bag) =>
    bag.key ? toDer(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key))) : toDer(bag.asn1);
  const certDer = (bag: forge.pkcs12.Bag) => (bag.cert ? toDer(forge.pki.certificateToAsn1(bag.cert)) : toDer(bag.asn1));
  const keyBag = bags(oids.pkcs8ShroudedKeyBag ?? '')[0] ?? bags(oids.keyBag ?? '')[0];
  if (!keyBag) throw new SidecarError(ErrorCodes.FILES_UNREADABLE, `identity.files.pkcs12: ${file} holds no private key`);
  const keyPem = createPrivateKey({ key: keyDer(keyBag), format: 'der', type: 'pkcs8' })
    .export({ format: 'pem', type: 'pkcs8' })
    .toString();
  const certs = bags(oids.certBag ?? '').map((bag) => new X509Certificate(certDer(bag)).toString());
  return { certs, keyPem };
}
