import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Integration tests spawn redis-server processes; two cores, so keep parallelism modest.
    maxWorkers: 2,
    fileParallelism: true,
    // A focused test (it.only, describe.only) would silently skip the rest of the suite: refuse
    // it everywhere, not only when the CI env var is set (vitest's default).
    allowOnly: false,
  },
});
