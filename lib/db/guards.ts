import type { GuardMutant } from '../guard-mutant';

const file = 'lib/db/migrations.ts';
const tests = ['test/integration/wrong-cache.test.ts'];

/** The database's guards (migrations.ts): the last line of defence when the cache is wrong. */
export const dbGuards: GuardMutant[] = [
  {
    name: 'place_orders grants no more than the remaining stock',
    file,
    find: 'SELECT c.m, c.n FROM one_per_user c ORDER BY c.n LIMIT greatest(left_over, 0)',
    replace: 'SELECT c.m, c.n FROM one_per_user c ORDER BY c.n',
    tests,
  },
  {
    name: 'place_orders finds the order of a redelivered message',
    file,
    find: 'FROM orders x WHERE x.message_id = f.m LIMIT 1',
    replace: 'FROM orders x WHERE false LIMIT 1',
    tests,
  },
  {
    name: 'place_orders refuses a user who already holds a ticket',
    file,
    find: 'WHERE l.done_no IS NULL AND l.known AND NOT l.holds ORDER BY l.u, l.n',
    replace: 'WHERE l.done_no IS NULL AND l.known ORDER BY l.u, l.n',
    tests,
  },
  {
    name: 'CHECK on ticket_days: remaining and sold never negative',
    file,
    find: 'CHECK (remaining >= 0 AND sold >= 0 AND sold + remaining = total)',
    replace: 'CHECK (sold + remaining = total)',
    tests,
  },
  {
    name: 'CHECK on ticket_days: sold + remaining = total',
    file,
    find: 'CHECK (remaining >= 0 AND sold >= 0 AND sold + remaining = total)',
    replace: 'CHECK (remaining >= 0 AND sold >= 0)',
    tests,
  },
  {
    name: 'unique index: one valid order per user and day',
    file,
    find: 'CREATE UNIQUE INDEX orders_one_valid_per_user_day',
    replace: 'CREATE INDEX orders_one_valid_per_user_day',
    tests,
  },
  {
    name: 'place_orders never scans the orders table, whatever its statistics',
    file,
    find: "SET enable_seqscan = off;')",
    replace: "SET enable_seqscan = on;')",
    tests: ['test/integration/order-lookups.test.ts'],
  },
  {
    name: 'orders.message_id UNIQUE',
    file,
    find: 'message_id    VARCHAR(64) UNIQUE,',
    replace: 'message_id    VARCHAR(64),',
    tests,
  },
];
