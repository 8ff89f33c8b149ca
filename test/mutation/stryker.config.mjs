// StrykerJS over the pure core: modules whose unit tests need no server and run in seconds.
// Run with `npm run test:mutation` (not in CI: it takes minutes; see docs/guarantees.md).
//
// Survivors judged equivalent (no test can tell them apart from the original):
// - purchase.machine.ts describeError: the early String() for undefined/function/symbol and the
//   JSON fallback cover each other; `in` on a primitive throws into the String() fallback. The
//   defaults for a missing outcome, lastError or result are unreachable (every path sets them).
// - verify-hash.ts: `dot <= 0 || length > 128` is a cheap early exit; the canonical-expiry regex and
//   the signature comparison refuse the same strings.
// - calendar.ts: the year/month/day comparisons overlap (an overflowing date changes two of them);
//   `y > 9999` cannot hold for four digits; the formatter and sale-date caches only save work.
// - alerts.ts: `active && firing` vs `||` in the branch where both agree; a bogus first entry in
//   AlertBook.changes has no sequence number, so no reader sees it.
// - options.ts: `workerNice !== null` before `> 19`; package.json always has config.nodeOptions.
// - validation.ts: Stryker leaves `as const` objects unmutated, so only 4 mutants are made there.
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
