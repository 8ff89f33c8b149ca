import type { GuardMutant } from '../guard-mutant';

/** The stock rebuild's guard (stock.ts). */
export const ticketGuards: GuardMutant[] = [
  {
    name: 'Rebuild: an order committed while the cache is rebuilt is claimed, so its ticket is counted once',
    file: 'lib/tickets/stock.ts',
    find: 'if (unclaimed.length)',
    replace: 'if (unclaimed.length < 0)',
    tests: ['test/integration/rebuild-race.test.ts'],
  },
];
