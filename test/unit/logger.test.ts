import { Writable } from 'node:stream';
import { expect, it } from 'vitest';
import { createLogger } from '../../src/telemetry/logger.js';

it('redacts tokens, secret ids and private keys wherever a caller puts them', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger('info', sink);
  logger.info(
    { token: 's.abc', auth: { client_token: 's.def' }, secretId: 'sid', bundle: { keyPem: '-----BEGIN PRIVATE KEY-----' } },
    'login',
  );
  logger.info({ response: { data: { private_key: '-----BEGIN EC PRIVATE KEY-----' } } }, 'issue');
  logger.info({ req: { headers: { 'x-vault-token': 's.ghi' } } }, 'request');
  const text = lines.join('');
  for (const secret of ['s.abc', 's.def', 'sid"', 'PRIVATE KEY', 's.ghi']) expect(text).not.toContain(secret);
  expect(text.match(/\[REDACTED\]/g)).toHaveLength(6);
});
