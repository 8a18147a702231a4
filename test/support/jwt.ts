/** ES256 JSON Web Tokens for auth tests: a key pair, and tokens signed with it. */
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

export interface JwtSigner {
  readonly publicKeyPem: string;
  token(claims: Record<string, unknown>): string;
}

export function createJwtSigner(): JwtSigner {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    token: (claims) => signJwt(privateKey, claims),
  };
}

function signJwt(key: KeyObject, claims: Record<string, unknown>): string {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid: 'test' }));
  const payload = b64url(JSON.stringify({ iat: now, nbf: now - 5, exp: now + 3600, ...claims }));
  const signature = sign('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' });
  return `${header}.${payload}.${b64url(signature)}`;
}
