import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/openbao-server.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Most of the suite waits on real servers, processes and timers, not on the CPU: on a 2-core
    // machine 2 workers took 425 s, 4 took 253 s and 6 took 218 s (docs/testing.md). Not 6: with
    // that much connection churn, tests that take a server down and bring it back on its port
    // found the port in use as another connection's source port (EADDRINUSE) in 1 of 5 runs.
    maxWorkers: 4,
  },
});
