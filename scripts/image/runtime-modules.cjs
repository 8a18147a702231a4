// Prints the package directories the image needs at run time, one a line, relative to the
// current directory: the packages named on the command line (those scripts/build.mjs leaves out of
// the bundle: pino-pretty) and everything they depend on, found as Node's require() would find
// it. Run by the Dockerfile's build stage, so the image ships these and not the whole
// production node_modules (the bundle in dist/ carries every other dependency).
const fs = require('node:fs');
const path = require('node:path');

const seen = new Set();

/** Where require(dep) from a package in `dir` finds dep: its own node_modules, then its parents'. */
function resolvePackage(dir, dep) {
  for (let at = dir; ; at = path.dirname(at)) {
    const candidate = path.join(at, 'node_modules', dep);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (path.dirname(at) === at) return undefined;
  }
}

function visit(dir) {
  if (seen.has(dir)) return;
  seen.add(dir);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
    const found = resolvePackage(dir, dep);
    // An optional dependency for another platform is not installed; a missing required one is.
    if (found) visit(found);
    else if (!pkg.optionalDependencies?.[dep]) throw new Error(`${dep}, needed by ${dir}, is not installed`);
  }
}

for (const name of process.argv.slice(2)) {
  const dir = resolvePackage(process.cwd(), name);
  if (!dir) throw new Error(`${name} is not installed`);
  visit(dir);
}
for (const dir of seen) console.log(path.relative(process.cwd(), dir));
