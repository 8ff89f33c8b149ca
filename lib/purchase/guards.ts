import type { GuardMutant } from '../guard-mutant';

/** The synchronous V1 purchase's guard (v1.ts). */
export const v1Guards: GuardMutant[] = [
  {
    name: 'V1 conditional decrement: only while remaining > 0',
    file: 'lib/purchase/v1.ts',
    find: "WHERE date = $1 AND remaining > 0 AND status = 'on_sale' RETURNING remaining",
    replace: "WHERE date = $1 AND status = 'on_sale' RETURNING remaining",
    tests: ['test/integration/wrong-cache.test.ts'],
  },
];

/** The outbox recovery's guard (outbox.ts). */
export const outboxGuards: GuardMutant[] = [
  {
    name: 'Outbox recovery: the pass lock of a process that died mid-pass is taken over',
    file: 'lib/purchase/outbox.ts',
    find: 'return (await redis.takeOver(keys.outboxLock, keys.admitter(holder), holder, admitter, LOCK_MS)) === 1;',
    replace: 'return false;',
    tests: ['test/integration/outbox.test.ts'],
  },
];
