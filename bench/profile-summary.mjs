/**
 * Prints the functions with the most self time in a V8 .cpuprofile, as shares of the busy (non-idle)
 * time: node bench/profile-summary.mjs file [top].
 */
import { readFileSync } from 'node:fs';

const [file, top = '25'] = process.argv.slice(2);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const self = new Map();
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const interval = (profile.endTime - profile.startTime) / profile.samples.length;
for (const id of profile.samples) {
  const node = byId.get(id);
  const { functionName, url, lineNumber } = node.callFrame;
  const key = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')}:${lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + interval);
}
self.delete('(idle) :0');
const total = [...self.values()].reduce((a, b) => a + b, 0);
for (const [key, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
  console.log(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${key}`);
}
