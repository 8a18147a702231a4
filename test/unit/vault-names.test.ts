/**
 * The Vault names `vault setup` makes for a service, and what inject and the webhook configure a
 * sidecar with: per service *and* namespace, the same on both sides.
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { SidecarRequest } from '../../src/kubernetes/annotations.js';
import { sidecarConfig } from '../../src/kubernetes/sidecar-spec.js';
import { serviceNameProblems, unqualifiedNames, vaultNames } from '../../src/vault/names.js';
import { policyName } from '../../src/vault/setup.js';
import { oldNamesMessage } from '../../src/vault/setup-old-names.js';

const spec = {
  name: 'orders',
  namespace: 'shop',
  serviceAccount: 'orders',
  ttl: 3600,
  maxTtl: 86400,
  keyType: 'ec' as const,
  issue: false,
};

describe('vault names', () => {
  it('gives the same service in two namespaces two sets of names', () => {
    expect(vaultNames('orders', 'shop')).toEqual({ pkiRole: 'orders.shop', policy: 'orders.shop-sidecar', authRole: 'orders.shop' });
    expect(vaultNames('orders', 'dev')).toEqual({ pkiRole: 'orders.dev', policy: 'orders.dev-sidecar', authRole: 'orders.dev' });
    expect(policyName(spec)).toBe('orders.shop-sidecar');
  });

  it('keeps names apart that a dash would join (a-b in c, a in b-c)', () => {
    expect(vaultNames('a-b', 'c').pkiRole).not.toBe(vaultNames('a', 'b-c').pkiRole);
  });

  it('knows the unqualified names an earlier vault setup made', () => {
    expect(unqualifiedNames('orders')).toEqual({ pkiRole: 'orders', policy: 'orders-sidecar', authRole: 'orders' });
  });

  it('refuses a service or namespace that is not a DNS label, and a bad service account, naming each', () => {
    expect(serviceNameProblems({ name: 'orders', namespace: 'shop', serviceAccount: 'orders-api.v2' })).toEqual([]);
    expect(serviceNameProblems({ name: 'orders.shop', namespace: 'Shop', serviceAccount: 'a_b' })).toEqual([
      'service "orders.shop" is not a DNS label (lowercase letters, digits and -, at most 63), as Kubernetes names are',
      'namespace "Shop" is not a DNS label (lowercase letters, digits and -, at most 63), as Kubernetes names are',
      'service account "a_b" is not a Kubernetes service account name (a DNS subdomain)',
    ]);
    expect(serviceNameProblems({ name: 'x'.repeat(64), namespace: 'shop', serviceAccount: 'x' })).toHaveLength(1);
  });

  it('configures an injected sidecar with the roles vault setup made for its namespace', () => {
    const request = {
      role: 'orders',
      pkiMount: 'pki_int',
      authMount: 'kubernetes',
      inbound: [],
      outbound: [],
      ttl: undefined,
    } as unknown as SidecarRequest;
    for (const namespace of ['shop', 'dev']) {
      const config = parse(JSON.stringify(sidecarConfig(request, { namespace, serviceAccount: 'orders' }))) as {
        vault: { pki: { role: string }; auth: { role: string } };
      };
      expect(config.vault.pki.role).toBe(vaultNames('orders', namespace).pkiRole);
      expect(config.vault.auth.role).toBe(vaultNames('orders', namespace).authRole);
    }
  });

  it('tells the operator what was found, that it was left alone, and how to retire it, in one line', () => {
    const message = oldNamesMessage(spec, [
      {
        path: 'pki_int/roles/orders',
        serves: 'names orders in namespace shop',
        remove: 'vault delete pki_int/roles/orders',
        namespaces: ['shop'],
      },
      {
        path: 'auth/kubernetes/role/orders',
        serves: 'bound to namespace shop',
        remove: 'vault delete auth/kubernetes/role/orders',
        namespaces: ['shop'],
      },
    ]);
    expect(message).not.toContain('\n');
    expect(message).toContain(
      'pki_int/roles/orders (names orders in namespace shop), auth/kubernetes/role/orders (bound to namespace shop)',
    );
    expect(message).toContain('left unchanged');
    expect(message).toContain('vault.pki.role and vault.auth.role "orders.shop" for namespace shop (re-run inject');
    expect(message).toMatch(/delete them: vault delete pki_int\/roles\/orders; vault delete auth\/kubernetes\/role\/orders$/);
  });

  it("sends the sidecars of another namespace the old names serve to that namespace's names, never to this run's (review finding)", () => {
    // vault setup for orders in shop, while the old names serve orders in dev and staging.
    const message = oldNamesMessage(spec, [
      {
        path: 'auth/kubernetes/role/orders',
        serves: 'bound to namespace dev, staging',
        remove: 'vault delete auth/kubernetes/role/orders',
        namespaces: ['dev', 'staging'],
      },
    ]);
    expect(message).toContain('"orders.dev" for namespace dev, "orders.staging" for namespace staging');
    expect(message).toContain('run vault setup for orders in dev, staging first: this run made only "orders.shop"');
    expect(message).not.toContain('"orders.shop" for namespace');
    expect(message).toContain('once no sidecar uses the old names, delete them');
  });
});
