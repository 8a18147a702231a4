import { describe, expect, it } from 'vitest';
import { buildConfig, CONFIG_ENV, loadConfig } from '../../src/config/load.js';
import { parseDurationSeconds, parseHostPort } from '../../src/config/parse.js';
import { ErrorCodes } from '../../src/errors.js';
import { errorOf } from '../support/errors.js';

const minimal = {
  vault: { address: 'https://vault.example:8200', pki: { role: 'web' } },
  identity: { commonName: 'web.test' },
};

describe('parseDurationSeconds', () => {
  it.each([
    ['90s', 90],
    ['15m', 900],
    ['1h30m', 5400],
    ['250ms', 0.25],
    ['42', 42],
    [7, 7],
  ])('%s → %s seconds', (input, seconds) => {
    expect(parseDurationSeconds(input)).toBe(seconds);
  });

  it.each(['', 'soon', '1x', '5m later', '-3s'])('rejects %j', (input) => {
    expect(parseDurationSeconds(input)).toBeUndefined();
  });
});

describe('parseHostPort', () => {
  it('reads IPv4, IPv6 and names', () => {
    expect(parseHostPort('127.0.0.1:8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(parseHostPort('[::1]:8443')).toEqual({ host: '::1', port: 8443 });
    expect(parseHostPort('orders.default.svc:8443')).toEqual({ host: 'orders.default.svc', port: 8443 });
    expect(parseHostPort('*:8443')).toEqual({ host: '0.0.0.0', port: 8443 });
  });

  it.each(['8443', 'host:', ':80', 'host:70000', 'a b:1'])('rejects %j', (input) => {
    expect(parseHostPort(input)).toBeUndefined();
  });
});

describe('buildConfig', () => {
  it('applies defaults and returns an immutable config', () => {
    const config = buildConfig(minimal, { VAULT_TOKEN: 's.token' });
    expect(config.vault?.pki.mount).toBe('pki');
    expect(config.vault?.auth).toEqual({ method: 'token' });
    expect(config.vault?.token).toBe('s.token');
    expect(config.identity.ttl).toBe(3600);
    expect(config.admin.listen).toEqual({ host: '127.0.0.1', port: 15000 });
    expect(Object.isFrozen(config.identity.dnsNames)).toBe(true);
    expect(() => {
      (config.identity as { commonName: string }).commonName = 'x';
    }).toThrow();
  });

  it('takes flags over the environment over the file', () => {
    const env = { VAULT_ADDR: 'https://from-env:8200', VAULT_TOKEN: 't', VAULT_NAMESPACE: 'team-a' };
    expect(buildConfig(minimal, env).vault?.address).toBe('https://from-env:8200');
    expect(buildConfig(minimal, env).vault?.namespace).toBe('team-a');
    expect(buildConfig(minimal, env, { vaultAddr: 'https://from-flag:8200' }).vault?.address).toBe('https://from-flag:8200');
    expect(buildConfig(minimal, env, { logLevel: 'debug' }).log.level).toBe('debug');
    expect(buildConfig(minimal, env).shutdownDelay).toBe(0);
    expect(buildConfig({ ...minimal, shutdownDelay: '2s' }, env, { shutdownDelay: '5s' }).shutdownDelay).toBe(5);
  });

  it(`reads the whole configuration from ${CONFIG_ENV} when no --config is given`, () => {
    const inline = 'vault: { address: "https://vault.example:8200", pki: { role: web } }\nidentity: { commonName: web.test }\n';
    expect(loadConfig(undefined, { [CONFIG_ENV]: inline, VAULT_TOKEN: 't' }).identity).toMatchObject({ commonName: 'web.test' });
    const broken = errorOf(() => loadConfig(undefined, { [CONFIG_ENV]: 'vault: [', VAULT_TOKEN: 't' }));
    expect(broken.message).toMatch(new RegExp(`^config: ${CONFIG_ENV} is not valid YAML at line 1`));
    const none = errorOf(() => loadConfig(undefined, {}));
    expect(none.message).toBe(`config: no configuration; pass --config <file.yaml> or set ${CONFIG_ENV}`);
  });

  it('names shutdownDelay when --shutdown-delay is not a duration', () => {
    const err = errorOf(() => buildConfig(minimal, { VAULT_ADDR: 'https://v:8200', VAULT_TOKEN: 't' }, { shutdownDelay: 'soon' }));
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message).toMatch(/shutdownDelay/);
  });

  it('names the field when the Vault address is missing', () => {
    const err = errorOf(() => buildConfig({ vault: { pki: { role: 'web' } }, identity: { commonName: 'a' } }, { VAULT_TOKEN: 't' }));
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message).toMatch(/^config: vault\.address: .*VAULT_ADDR/);
  });

  it('names an unknown field and where it is', () => {
    const err = errorOf(() =>
      buildConfig({ ...minimal, inbound: [{ name: 'a', listen: '127.0.0.1:1', target: '127.0.0.1:2', tls: 1 }] }, { VAULT_TOKEN: 't' }),
    );
    expect(err.message).toMatch(/^config: inbound\[0\]: unknown field "tls"; valid fields here: name, listen, target/);
  });

  it.each([
    [{ identity: { commonName: 'a', dnsNames: 'orders.svc' } }, 'identity.dnsNames: expected a list, found the string "orders.svc"'],
    [{ vault: { ...minimal.vault, skipVerify: 'false' } }, 'vault.skipVerify: expected true or false, found the string "false"'],
    [{ inbound: { web: {} } }, 'inbound: expected a list, found a map of fields'],
    [{ identity: { commonName: 'a', sourse: 'files' } }, 'identity: unknown field "sourse"; did you mean "source"?'],
    [{ vault: { ...minimal.vault, adress: 'https://v:8200' } }, 'vault: unknown field "adress"; did you mean "address"?'],
    [{ vault: { ...minimal.vault, address: 'vault.svc:8200' } }, 'vault.address: expected an http:// or https:// URL'],
  ])('says what was expected and what was found: %j', (change, message) => {
    const err = errorOf(() => buildConfig({ ...minimal, ...change }, { VAULT_TOKEN: 't' }));
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message.split('\n')).toContainEqual(expect.stringContaining(`config: ${message}`));
  });

  it('refuses a Vault address without a scheme from the environment too', () => {
    const err = errorOf(() => buildConfig({ ...minimal, vault: { pki: { role: 'web' } } }, { VAULT_TOKEN: 't', VAULT_ADDR: 'vault:8200' }));
    expect(err.message).toContain('found "vault:8200" (from vault.address, VAULT_ADDR or --vault-addr)');
  });

  it('reports cross-field problems all together', () => {
    const err = errorOf(() =>
      buildConfig(
        {
          ...minimal,
          identity: { commonName: 'a', ttl: 5, renewal: { minBackoff: 60, maxBackoff: 10 } },
          inbound: [
            { name: 'a', listen: '0.0.0.0:8443', target: '127.0.0.1:1' },
            { name: 'a', listen: '0.0.0.0:8443', target: '127.0.0.1:1' },
          ],
        },
        { VAULT_TOKEN: 't' },
      ),
    );
    expect(err.message.split('\n')).toEqual([
      'config: inbound[1].name: "a" is used by another listener; names must be unique',
      'config: inbound[1].listen: 0.0.0.0:8443 is already used by another listener or admin.listen',
      'config: identity.renewal.minBackoff: must not exceed identity.renewal.maxBackoff',
      'config: identity.ttl: must be at least 10s so renewal has time to happen',
    ]);
  });

  it('names a malformed listener address', () => {
    const err = errorOf(() =>
      buildConfig({ ...minimal, outbound: [{ name: 'a', listen: 'localhost', target: 'x:1' }] }, { VAULT_TOKEN: 't' }),
    );
    expect(err.message).toMatch(/^config: outbound\[0\]\.listen: "localhost" is not host:port/);
  });

  it('names a malformed duration', () => {
    const err = errorOf(() => buildConfig({ ...minimal, identity: { commonName: 'a', ttl: 'an hour' } }, { VAULT_TOKEN: 't' }));
    expect(err.message).toMatch(/^config: identity\.ttl: "an hour" is not a duration/);
  });

  it('requires a token for token auth', () => {
    expect(errorOf(() => buildConfig(minimal, {})).message).toMatch(/VAULT_TOKEN/);
  });

  it('refuses two listeners on one address', () => {
    const err = errorOf(() =>
      buildConfig(
        {
          ...minimal,
          inbound: [{ name: 'a', listen: '0.0.0.0:8443', target: '127.0.0.1:8080' }],
          outbound: [{ name: 'b', listen: '0.0.0.0:8443', target: 'x:1' }],
        },
        { VAULT_TOKEN: 't' },
      ),
    );
    expect(err.message).toMatch(/^config: outbound\[0\]\.listen: 0\.0\.0\.0:8443 is already used/);
  });

  it('needs no vault section for the dev source', () => {
    const config = buildConfig({ identity: { source: 'dev', commonName: 'dev.local' } }, {});
    expect(config.vault).toBeUndefined();
  });
});

describe('hardening settings', () => {
  const withInbound = (extra: Record<string, unknown>) => ({
    ...minimal,
    inbound: [{ name: 'web', listen: '127.0.0.1:0', target: '127.0.0.1:1', ...extra }],
  });

  it('defaults to safe limits, the intermediate TLS profile and path normalization', () => {
    const config = buildConfig(withInbound({}), { VAULT_TOKEN: 't' });
    expect(config.inbound[0]?.limits).toMatchObject({
      handshakeTimeout: 10,
      maxPendingHandshakes: 512,
      maxConcurrentStreams: 128,
      bodyIdleTimeout: 30,
    });
    expect(config.inbound[0]?.requestPath).toEqual({ mergeSlashes: true, escapedSlashes: 'reject', semicolons: 'reject' });
    expect(config.inbound[0]?.forwardedHeaders).toBe('replace');
    expect(config.tls).toEqual({ profile: 'intermediate' });
    expect(config.admin.rotateMinInterval).toBe(10);
  });

  it('refuses a header timeout longer than the request timeout, naming both fields', () => {
    const err = errorOf(() => buildConfig(withInbound({ limits: { headersTimeout: '20s', requestTimeout: '10s' } }), { VAULT_TOKEN: 't' }));
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message).toContain('inbound[0].limits.headersTimeout');
    expect(err.message).toContain('requestTimeout');
  });

  it('refuses a cipher list OpenSSL does not know', () => {
    const err = errorOf(() => buildConfig({ ...minimal, tls: { ciphers: 'NOT-A-CIPHER' } }, { VAULT_TOKEN: 't' }));
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message).toContain('tls.ciphers');
  });

  describe('authorization rules', () => {
    const withRules = (mode: string, allow: Record<string, unknown>[]) =>
      buildConfig(
        { ...minimal, inbound: [{ name: 'db', mode, listen: '127.0.0.1:0', target: '127.0.0.1:1', authorization: { allow } }] },
        { VAULT_TOKEN: 't' },
      );

    it.each([
      [{ paths: ['/public'] }, 'allow[1]: name the peer with spiffe, uri, dns, cn or ou'],
      [{ methods: ['GET'] }, 'allow[1]: name the peer with spiffe, uri, dns, cn or ou'],
      [{ spiffe: 'spiffe://test/ns/*/sa/api', paths: ['/public'] }, 'allow[1].paths: tcp mode has no requests'],
      [{ cn: 'api', methods: ['GET'] }, 'allow[1].methods: tcp mode has no requests'],
    ])('refuses a tcp-mode rule %j, which tcp mode cannot narrow (it has no requests)', (rule, message) => {
      const err = errorOf(() => withRules('tcp', [{ cn: 'ok' }, rule]));
      expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
      expect(err.message).toContain(`inbound[0].authorization.${message}`);
    });

    it.each(['http', 'h2', 'tcp'])('refuses a %s rule that names no identity field, which would admit every peer', (mode) => {
      const err = errorOf(() => withRules(mode, [{ methods: ['GET'], paths: ['/public'] }]));
      expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
      expect(err.message).toContain('inbound[0].authorization.allow[0]: name the peer with spiffe, uri, dns, cn or ou');
    });

    it.each(['methods', 'paths'])('refuses an empty %s list, which reads as "any" to some and "none" to others', (field) => {
      const err = errorOf(() => withRules('http', [{ cn: 'ok' }, { spiffe: 'spiffe://test/ns/*/sa/*', [field]: [] }]));
      expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
      expect(err.message).toContain(`inbound[0].authorization.allow[1].${field}: must not be empty`);
    });

    it('accepts identity rules in tcp mode and narrowed rules in http mode', () => {
      expect(withRules('tcp', [{ spiffe: 'spiffe://test/ns/*/sa/api' }]).inbound[0]?.authorization?.allow).toHaveLength(1);
      expect(withRules('http', [{ dns: '*.svc', paths: ['/public'], methods: ['GET'] }]).inbound[0]?.mode).toBe('http');
    });
  });
});
