/**
 * npm run build: bundles src/main.ts and everything it imports into dist/ with esbuild, so the
 * sidecar starts as a few files instead of ~700 modules. Why: every module's source stays in
 * V8's heap (for lazy compilation), and the heap is what a full collection walks; a bundle without
 * comments and whitespace, tree-shaken, keeps the idle heap and RSS down (docs/benchmark.md "Footprint").
 * Lazy `import()`s stay lazy (their own chunks). Identifiers are not minified, so stack traces stay
 * legible. keepNames stays on although its __name() calls cost about 1% of http mode's CPU per
 * request: without it, esbuild's renames of colliding names (`string2`, `visit2`, …) change
 * `.name`, and dependencies compare constructor names (asn1js's "Sequence" check, for one).
 * Type checking is `npm run typecheck` (tsc); esbuild only strips the types.
 */
import { chmodSync, readFileSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
// The #! line of src/main.ts carries the node flags the sidecar runs with; it must stay first.
const hashbang = readFileSync(path.join(root, 'src/main.ts'), 'utf8').split('\n')[0];
if (!hashbang.startsWith('#!')) throw new Error('src/main.ts must start with its #! line');

/**
 * Node's own modules are loaded with require(), never as ES modules. Why: importing a builtin as an
 * ES module builds its namespace from every export, which runs Node's lazy getters — on Node 24
 * `import 'node:http'` loads http2, zlib, worker_threads, perf_hooks and Node's internal undici
 * (81 modules, +14 MB RSS) where `require('node:http')` loads 15 (+2 MB). Each builtin that our code
 * or an ES-module dependency (yargs) imports, statically or with import(), becomes a tiny CommonJS
 * module that requires it; esbuild's interop gives the imports. require() calls stay as they are.
 */
const builtinsAsRequire = {
  name: 'builtins-as-require',
  setup(b) {
    const names = new Set(builtinModules);
    b.onResolve({ filter: /^(node:)?[a-z_/0-9]+$/ }, (args) => {
      const bare = args.path.replace(/^node:/, '');
      const esImport = args.kind === 'import-statement' || args.kind === 'dynamic-import';
      if (!esImport || !names.has(bare)) return undefined;
      return { path: `node:${bare}`, namespace: 'builtin-require' };
    });
    b.onLoad({ filter: /.*/, namespace: 'builtin-require' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

rmSync(dist, { recursive: true, force: true });
await build({
  entryPoints: [path.join(root, 'src/main.ts')],
  outdir: dist,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  legalComments: 'external',
  // Loaded only for `log.format: pretty`, from node_modules (it brings its own dependencies).
  external: ['pino-pretty'],
  // Bundled CommonJS dependencies call require() for node's own modules.
  banner: { js: `import { createRequire as __sidecarRequire } from 'node:module'; const require = __sidecarRequire(import.meta.url);` },
  plugins: [builtinsAsRequire],
  logLevel: 'warning',
});
const main = path.join(dist, 'main.js');
if (!readFileSync(main, 'utf8').startsWith(`${hashbang}\n`)) throw new Error('dist/main.js lost its #! line');
chmodSync(main, 0o755);
