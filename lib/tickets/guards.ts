import type { GuardMutant } from '../guard-mutant';

/** The admission stock's guards against orders committing meanwhile (stock.ts). */
export const ticketGuards: GuardMutant[] = [
  {
    name: 'Rebuild: an order committed while the cache is rebuilt is claimed, so its ticket is counted once',
    file: 'lib/tickets/stock.ts',
    find: 'if (unclaimed.length)',
    replace: 'if (unclaimed.length < 0)',
    tests: ['test/integration/stock-races.test.ts'],
  },
  {
    name: 'Cancel and new total: the live admission stock is shifted, not recomputed over orders committing meanwhile',
    file: 'lib/tickets/stock.ts',
    find: 'const shifted = await stores.redis.shiftStock(keys.ready, keys.stock(date), delta);',
    replace: 'const shifted = NO_STOCK_KEY;',
    tests: ['test/integration/stock-races.test.ts'],
  },
];
