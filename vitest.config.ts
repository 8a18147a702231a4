import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/openbao-server.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Most of the suite waits on real servers, processes and timers, not on the CPU: on a 2-core
    // machine 2 workers took 425 s, 4 took 253 s and 6 took 218 s, all green (docs/testing.md).
    maxWorkers: 6,
  },
});
