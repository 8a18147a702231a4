/**
 * A small stand-in for the Kubernetes API's TokenReview endpoint, over TLS, for Vault's kubernetes
 * auth method: it authenticates the service-account tokens the test has marked valid.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { DevCertificateAuthority } from '../../src/identity/dev-ca.js';

export interface ServiceAccount {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

export interface TokenReviewServer {
  readonly url: string;
  readonly caPem: string;
  readonly reviewerToken: string;
  /** Tokens the API server would accept, and whose they are. */
  readonly valid: Map<string, ServiceAccount>;
  reviews: number;
  close(): Promise<void>;
}

export async function startTokenReviewServer(): Promise<TokenReviewServer> {
  const ca = await DevCertificateAuthority.create('test kubernetes API CA');
  const serving = await ca.issue({ commonName: 'kubernetes', dnsNames: ['localhost'], ipSans: ['127.0.0.1'], ttlSeconds: 3600 });
  const state = { reviews: 0 };
  const valid = new Map<string, ServiceAccount>();
  const reviewerToken = 'reviewer-token';
  const server = https.createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      if (req.url !== '/apis/authentication.k8s.io/v1/tokenreviews' || req.headers.authorization !== `Bearer ${reviewerToken}`) {
        res.statusCode = 401;
        res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Unauthorized', code: 401 }));
        return;
      }
      state.reviews++;
      const review = JSON.parse(body) as { spec: { token: string; audiences?: string[] } };
      const account = valid.get(review.spec.token);
      res.end(
        JSON.stringify({
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          status: account
            ? {
                authenticated: true,
                user: { username: `system:serviceaccount:${account.namespace}:${account.name}`, uid: account.uid },
                audiences: review.spec.audiences ?? [],
              }
            : { authenticated: false, error: 'token is not valid' },
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    caPem: ca.certPem,
    reviewerToken,
    valid,
    get reviews() {
      return state.reviews;
    },
    set reviews(n: number) {
      state.reviews = n;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
