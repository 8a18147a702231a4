import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/openbao-server.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Real servers, real ports: keep the 2-core machine from timing out under parallel load.
    maxWorkers: 2,
  },
});
