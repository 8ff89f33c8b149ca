// StrykerJS over the pure core: modules whose unit tests need no server and run in seconds.
// Run with `npm run test:mutation` (not in CI: it takes minutes; see the README).
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'jest',
  // Only the unit tests of these modules: the integration suites need servers and minutes per run.
  jest: {
    projectType: 'custom',
    config: {
      testMatch: [
        '<rootDir>/test/unit/{alerts,bench-options,calendar,purchase.machine,validation,verify-hash}.test.ts',
      ],
    },
  },
  mutate: [
    'machines/**/*.ts',
    'lib/validation.ts',
    'lib/sale/calendar.ts',
    'lib/sale/verify-hash.ts',
    'lib/monitor/alerts.ts',
    'loadtest/bench/options.ts',
  ],
  coverageAnalysis: 'perTest',
  // The machine is shared with servers and other test runs.
  concurrency: 2,
  timeoutMS: 10_000,
  tempDirName: 'test-artifacts/stryker-tmp',
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: 'test-artifacts/mutation.json' },
  thresholds: { high: 90, low: 85, break: 85 },
};
