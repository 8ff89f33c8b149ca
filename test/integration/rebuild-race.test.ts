import type Redis from 'ioredis';
import { QueryTypes, type Sequelize } from 'sequelize';
import { loadConfig, type Config } from '../../config';
import type { OrderOutcome } from '../../machines/purchase.machine';
import { createSequelize, dropDatabase, ensureDatabase, migrate, seedUsers } from '../../lib/db';
import { distrustMovedCache, rebuildCache } from '../../lib/purchase/cache';
import { OrderWriter, orderWriterPorts } from '../../lib/purchase/order-writer';
import { reserve } from '../../lib/purchase/reservations';
import { keys } from '../../lib/store/keys';
import { createRedis, deleteNamespace } from '../../lib/store/redis';
import { setStock } from '../../lib/tickets/days';
import { isolatedEnv, uniqueNamespace } from '../helpers/app';

/**
 * A rebuild racing an order's commit, made deterministic: after a Sentinel failover the promoted
 * replica's cache is rebuilt while workers commit messages whose reservations the rebuild dropped
 * (admitted there before the move was noticed). Each such order must be counted once in the
 * admission stock, whatever moment of the rebuild its commit lands in.
 */

const DATE = '2025-03-01';
const STOCK = 10;

describe('the cache rebuilt while an order commits', () => {
  const namespace = uniqueNamespace('rb');
  let config: Config;
  let db: Sequelize;
  let writerDb: Sequelize;
  let redis: Redis;

  beforeAll(async () => {
    config = loadConfig(isolatedEnv(namespace));
    await ensureDatabase(config.databaseUrl);
    db = createSequelize({ url: config.databaseUrl, poolMax: 4 });
    // The worker's own pool, as in its process.
    writerDb = createSequelize({ url: config.databaseUrl, poolMax: 2 });
    await migrate(db, config.databaseUrl);
    await seedUsers(db, 10);
    await setStock(db, DATE, STOCK);
    redis = createRedis(config, namespace);
  });

  afterAll(async () => {
    await deleteNamespace(redis, namespace);
    redis.disconnect();
    await db.close();
    await writerDb.close();
    await dropDatabase(config.databaseUrl);
  });

  it('counts once an order committed after the rebuild read the orders, settled after the stock was set', async () => {
    const stores = { db, redis };
    await rebuildCache(stores, config, [DATE]);
    // Admitted on the promoted replica before the move was noticed; its reservation goes with the
    // distrusted cache. The marker the replica holds names the old primary.
    const admission = await reserve(redis, config, { userId: 1, date: DATE }, 'm-1', {
      resultTtlSeconds: 60,
      admitter: 'test',
    });
    expect(admission.outcome).toBe('OK');
    await redis.set(keys.generation, 'the-old-primary');
    expect(await distrustMovedCache(redis)).toBe(true);

    // The worker's order writer: its commit is awaited below, its settle held until the rebuild ends.
    const ports = orderWriterPorts(writerDb, redis);
    let committed!: () => void;
    const commitDone = new Promise<void>((resolve) => (committed = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const writer = new OrderWriter(
      {
        ...ports,
        placeOrders: async (...args) => {
          const rows = await ports.placeOrders(...args);
          committed();
          return rows;
        },
        settleMany: async (...args) => {
          await released;
          return ports.settleMany(...args);
        },
      },
      { batchSize: 10, batchMs: 1, lockTimeoutMs: 5000 },
    );

    // The commit lands after the rebuild read the day's orders, before restockDay reads the
    // database (its first query takes the moment "since").
    let outcome: Promise<OrderOutcome> | undefined;
    const query = db.query.bind(db) as (sql: unknown, options?: unknown) => Promise<unknown>;
    const spy = jest.spyOn(db, 'query').mockImplementation((async (sql: unknown, options?: unknown) => {
      if (!outcome && typeof sql === 'string' && sql.includes('AS since')) {
        outcome = writer.submit({ messageId: 'm-1', userId: 1, date: DATE });
        await commitDone;
      }
      return query(sql, options);
    }) as never);
    try {
      await rebuildCache(stores, config, [DATE]);
    } finally {
      spy.mockRestore();
    }
    release();
    expect(await outcome).toMatchObject({ kind: 'success' });

    const [day] = await db.query<{ remaining: number }>('SELECT remaining FROM ticket_days WHERE date = $1', {
      bind: [DATE],
      type: QueryTypes.SELECT,
    });
    expect(day.remaining).toBe(STOCK - 1);
    expect(await redis.get(keys.stock(DATE))).toBe(String(STOCK - 1));
    expect(await redis.hget(keys.claims(DATE), '1')).toBe('m-1');
    expect(await redis.hlen(keys.pending(DATE))).toBe(0);
  });
});
