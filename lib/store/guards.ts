import type { GuardMutant } from '../guard-mutant';

const file = 'lib/store/scripts.ts';
const tests = ['test/unit/lua-scripts.test.ts'];

/** The admission's and the result store's guards (the Lua scripts in scripts.ts). */
export const storeGuards: GuardMutant[] = [
  {
    name: 'ADMIT: a user with a claim is not admitted again',
    file,
    find: "if claim then return 'EXISTS', claim end",
    replace: '',
    tests,
  },
  {
    name: 'ADMIT: no admission without stock',
    file,
    find: "if tonumber(stock) <= 0 then return 'SOLD_OUT', '' end",
    replace: '',
    tests,
  },
  {
    name: 'ADMIT: every admission enters the outbox (no buyer stranded by a crash before the PubAck)',
    file,
    find: "redis.call('ZADD', outbox, nowMs, entry)",
    replace: '',
    tests,
  },
  {
    name: 'PUBLISHED: a stream sequence never goes into a finished or a lost result record',
    file,
    find: "if status and status ~= 'SUCCESS' and status ~= 'FAILED' then",
    replace: 'if true then',
    tests,
  },
  {
    name: 'SETTLE: a reservation settles once (no stock given back twice)',
    file,
    find: "if redis.call('HDEL', KEYS[3], id) == 0 then",
    replace: "if redis.call('HDEL', KEYS[3], id) < 0 then",
    tests,
  },
  {
    name: 'RECORD: nothing but a SUCCESS replaces a SUCCESS',
    file,
    find: "and not (current == 'SUCCESS' and status ~= 'SUCCESS')",
    replace: 'and true',
    tests,
  },
  {
    name: 'RECORD: a FAILED never steps back to a running status',
    file,
    find: "and not (current == 'FAILED' and status ~= 'SUCCESS' and status ~= 'FAILED')",
    replace: 'and true',
    tests,
  },
  {
    name: "TAKE_OVER: a live holder keeps the outbox recovery's pass lock",
    file,
    find: "and redis.call('EXISTS', KEYS[2]) == 0 then",
    replace: 'then',
    tests,
  },
  {
    name: 'SHIFT_STOCK: no shift while the cache is being rebuilt (its rebuild reads the database)',
    file,
    find: "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end",
    replace: '',
    tests,
  },
];
