import type Redis from 'ioredis';
import type { Sequelize } from 'sequelize';
import type { Config } from '../../config';
import { claimOf, keys } from '../store/keys';
import { deleteNamespace } from '../store/redis';
import { findDays, salePausedAt } from '../tickets/days';
import { validOrdersOfDay } from '../tickets/orders';
import { restockDay } from '../tickets/stock';
import { fromOrder, toFields } from './results';

export interface DayRepair {
  date: string;
  stock: { cached: number | null; expected: number };
  claimsAdded: number;
  claimsRemoved: number;
  resultsRestored: number;
  pending: number;
}

/** The stores the cache is rebuilt between: the database (the truth) and Redis. */
export interface CacheStores {
  db: Sequelize;
  redis: Redis;
}

export interface RepairReport {
  rebuilt: boolean;
  days: DayRepair[];
  differences: number;
}

/**
 * Makes Redis agree with the database for the given days: each valid order's claim, the results of
 * successful orders, and the stock (database remaining less the reservations still in flight).
 * Used at start (warm-up), after Redis lost its data, and by the admin reconcile call.
 */
export async function reconcileCache(
  stores: CacheStores,
  settings: Pick<Config, 'resultTtlSeconds'>,
  dates: readonly string[],
): Promise<RepairReport> {
  const { db, redis } = stores;
  const wasReady = (await redis.exists(keys.ready)) === 1;
  const days = await findDays(db, dates);
  const report: RepairReport = { rebuilt: !wasReady, days: [], differences: 0 };
  for (const day of days) {
    const orders = await validOrdersOfDay(db, day.date);
    const [cachedClaims, pending, cachedStock] = await Promise.all([
      redis.hgetall(keys.claims(day.date)),
      redis.hgetall(keys.pending(day.date)),
      redis.get(keys.stock(day.date)),
    ]);
    const expected = new Map<string, string>();
    for (const [messageId, userId] of Object.entries(pending)) expected.set(userId, messageId);
    for (const o of orders) expected.set(String(o.userId), claimOf(o));

    const toAdd: Record<string, string> = {};
    for (const [userId, claim] of expected) if (cachedClaims[userId] !== claim) toAdd[userId] = claim;
    const toRemove = Object.keys(cachedClaims).filter((userId) => !expected.has(userId));

    const withMessage = orders.filter((o) => o.messageId);
    const statuses = withMessage.length
      ? await redis.pipeline(withMessage.map((o) => ['hget', keys.result(o.messageId!), 'status'])).exec()
      : [];
    const missingResults = withMessage.filter((_, i) => statuses?.[i]?.[1] !== 'SUCCESS');

    const tx = redis.multi();
    if (Object.keys(toAdd).length) tx.hset(keys.claims(day.date), toAdd);
    if (toRemove.length) tx.hdel(keys.claims(day.date), ...toRemove);
    for (const o of missingResults) {
      const key = keys.result(o.messageId!);
      tx.hset(key, toFields(fromOrder(o))).expire(key, settings.resultTtlSeconds);
    }
    await tx.exec();
    // Stock last: admission treats a missing stock key as "not ready", so claims come first. The
    // claims written here name the orders read above; those committed since are claimed by the
    // restock, from the read its stock comes from.
    const stock = (await restockDay(stores, day.date, expected)) ?? 0;

    const repair: DayRepair = {
      date: day.date,
      stock: { cached: cachedStock === null ? null : Number(cachedStock), expected: stock },
      claimsAdded: Object.keys(toAdd).length,
      claimsRemoved: toRemove.length,
      resultsRestored: missingResults.length,
      pending: Object.keys(pending).length,
    };
    report.days.push(repair);
    report.differences +=
      repair.claimsAdded +
      repair.claimsRemoved +
      repair.resultsRestored +
      (repair.stock.cached === stock ? 0 : 1);
  }
  // The pause is the database's: a cache that lost it must not reopen a paused sale.
  const pausedAt = await salePausedAt(db);
  if (pausedAt) await redis.set(keys.paused, pausedAt.toISOString());
  else await redis.del(keys.paused);
  await redis.set(keys.ready, new Date().toISOString());
  return report;
}

/** The run id of the Redis server this client is connected to: new on every restart or promotion. */
export async function serverRunId(redis: Redis): Promise<string> {
  const info = await redis.info('server');
  const runId = /^run_id:(\w+)/m.exec(info)?.[1];
  if (!runId) throw new Error('Redis INFO did not report a run_id');
  return runId;
}

// KEYS: ready, generation; ARGV: the current server's run id. Compare and delete in one step, so a
// rebuild finished by another node in the meantime is not undone.
const DISTRUST = `
if redis.call('GET', KEYS[1]) and redis.call('GET', KEYS[2]) ~= ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * A cache built on another Redis server is not trusted: after a Sentinel failover the promoted
 * replica holds the old primary's data minus the writes it had not received yet (stock, claims,
 * reservations, results), and a restart may load an old snapshot. Replication copies the
 * generation marker too, so it still names the server the cache was built on; when that is not the
 * server answering now, `ready` goes at once (admissions answer 5030, not ready) and the rebuild
 * (`rebuildCache`) starts. Returns whether the cache was distrusted now.
 */
export async function distrustMovedCache(redis: Redis): Promise<boolean> {
  const runId = await serverRunId(redis);
  return (await redis.eval(DISTRUST, 2, keys.ready, keys.generation, runId)) === 1;
}

/**
 * What a rebuild leaves of a cache built on another server: the pause (an operator's decision) and
 * the lock of the rebuild itself. Everything else may be stale in ways the database cannot tell
 * (a reservation whose release was lost holds a ticket forever), so it goes as in a flush.
 */
const KEPT_WHEN_MOVED = [keys.paused, keys.rebuildLock];

/**
 * The rebuild of a cache that is not ready (at start, after a loss, after a move; under the rebuild
 * lock): a cache built on another server is dropped first, as in a flush; then the marker names this
 * server and every sale day is rebuilt from the database. Only this marks a cache as built here: a
 * repair of some days (the admin reconcile, a new day) leaves the marker as it was. The marker goes
 * before the rebuild, which sets `ready` last: a cache made ready here is never distrusted for the
 * moment between the two, and one whose server changes during the rebuild names the old one.
 */
export async function rebuildCache(
  stores: CacheStores,
  settings: Pick<Config, 'resultTtlSeconds' | 'namespace'>,
  dates: readonly string[],
): Promise<RepairReport> {
  const { redis } = stores;
  const runId = await serverRunId(redis);
  if ((await redis.get(keys.generation)) !== runId) {
    await deleteNamespace(redis, settings.namespace, KEPT_WHEN_MOVED);
  }
  await redis.set(keys.generation, runId);
  return reconcileCache(stores, settings, dates);
}
