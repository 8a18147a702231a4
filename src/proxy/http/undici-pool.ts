/**
 * The two parts of undici that http mode uses — Pool and buildConnector — imported from their own
 * files. Why not `from 'undici'`: its index evaluates every feature (fetch, WebSocket, caches,
 * mocks), and its cookie module reads `globalThis.Headers`, which makes Node load its own bundled
 * copy of undici as well: ~10 MB RSS per sidecar for code http mode never runs (docs/benchmark.md
 * "Footprint"). The types are undici's own; the version is pinned in package.json, and every
 * http-mode test runs through these imports, so a moved file fails the suite, not production.
 */
import type * as Undici from 'undici';
import buildConnectorModule from 'undici/lib/core/connect.js';
import PoolModule from 'undici/lib/dispatcher/pool.js';

export const Pool = PoolModule as typeof Undici.Pool;
export type Pool = Undici.Pool;
export const buildConnector = buildConnectorModule as typeof Undici.buildConnector;
