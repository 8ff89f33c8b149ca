/**
 * A guard mutant: the smallest edit that removes one safety guard, and the tests that must fail
 * without it. `npm run test:guards` (test/guards/run.ts) applies each one alone to a scratch copy of
 * the tree and runs its tests; test/unit/guards.test.ts checks that every `find` text is still in
 * its file. Each list lives beside the code it mutates: a new guard gets a new mutant there.
 */
export interface GuardMutant {
  /** Unique, short: names the guard that the edit removes. */
  name: string;
  /** Path from the repository root. */
  file: string;
  /** Text that occurs exactly once in `file`. */
  find: string;
  replace: string;
  /** Test files (from the repository root) of which at least one must fail. */
  tests: string[];
}
