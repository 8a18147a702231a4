/**
 * Issue 24's property for `inject`: any YAML — workloads of every kind with the wrong type at every
 * level, YAML syntax noise, deep nesting, alias bombs — is either injected or refused with
 * SIDECAR_INJECT_INVALID, by the function and by the built CLI (exit 0 or 1, one ✖ line per
 * problem, never a stack trace). Whatever inject writes, a second run leaves as it is.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ErrorCodes, SidecarError } from '../../src/errors.js';
import { injectYaml } from '../../src/kubernetes/inject.js';
import { spawnCli } from '../support/cli.js';
import { workload } from './admission-shapes.js';

const options = { vaultAddr: 'https://vault.vault.svc:8200', image: 'example/sidecar:1' };

/** YAML text: workloads as a user would write them, and text that is barely YAML at all. */
const yamlText = fc.oneof(
  { weight: 4, arbitrary: fc.array(workload, { minLength: 1, maxLength: 3 }).map((docs) => docs.map((d) => stringify(d)).join('---\n')) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...'{}[]:-&*!|>\'" \n\t#%@`,?abk0'.split('')), maxLength: 80 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 80 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      `${'['.repeat(20_000)}${']'.repeat(20_000)}`,
      `kind: Pod\nspec: ${'{a: '.repeat(5_000)}1${'}'.repeat(5_000)}\n`,
      `kind: Pod\nspec:\n  containers: ${'- '.repeat(5_000)}x\n`,
      Array.from({ length: 600 }, (_, i) => `${' '.repeat(i)}a:\n`).join(''),
      'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n',
      'kind: Pod\nmetadata: &m\n  annotations: {vault-mtls-sidecar/inject: "true", vault-mtls-sidecar/role: orders, vault-mtls-sidecar/inbound: "8443:8080"}\nspec:\n  containers: [{name: app}]\n---\nkind: Pod\nmetadata: *m\nspec: {containers: [{name: app}]}\n',
    ),
  },
);

/** The function: an answer or a SidecarError with the inject code, nothing else. */
function run(text: string): { text: string } | SidecarError {
  try {
    return injectYaml(text, 'input.yaml', options);
  } catch (err) {
    expect(err, String(err)).toBeInstanceOf(SidecarError);
    expect((err as SidecarError).code).toBe(ErrorCodes.INJECT_INVALID);
    return err as SidecarError;
  }
}

it('injects or refuses any YAML with SIDECAR_INJECT_INVALID, and a second run changes nothing', () => {
  let injected = 0;
  fc.assert(
    fc.property(yamlText, (text) => {
      const first = run(text);
      if (first instanceof SidecarError) return;
      if (first.text.includes('vault-mtls-sidecar/status')) injected++;
      const second = run(first.text);
      expect(second).not.toBeInstanceOf(SidecarError);
      expect((second as { text: string }).text).toBe(first.text);
    }),
    { numRuns: 500 },
  );
  expect(injected).toBeGreaterThan(0);
});

it('the CLI exits 0 with YAML or 1 with one ✖ line per problem, for any YAML', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'inject-property-'));
  let n = 0;
  await fc.assert(
    fc.asyncProperty(yamlText, async (text) => {
      const file = path.join(dir, `in-${n++}.yaml`);
      writeFileSync(file, text);
      const cli = spawnCli(['inject', file, '--vault-addr', 'https://vault.vault.svc:8200']);
      const code = await cli.exited;
      expect([0, 1], cli.stderr()).toContain(code);
      if (code === 1) {
        expect(cli.stdout()).toBe('');
        for (const line of cli.stderr().trim().split('\n')) expect(line).toMatch(/^✖ .* \[SIDECAR_INJECT_INVALID\]$/);
      }
    }),
    { numRuns: 25 },
  );
}, 120_000);
