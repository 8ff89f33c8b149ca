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
import { cancelOrder, ordersOfUser } from '../../lib/tickets/orders';
import { setDayTotal } from '../../lib/tickets/stock';
import { isolatedEnv, uniqueNamespace } from '../helpers/app';

/**
 * The admission stock set from the database while orders commit, each race made deterministic.
 * A rebuild: after a Sentinel failover the promoted replica's cache is rebuilt while workers commit
 * messages whose reservations the rebuild dropped (admitted there before the move was noticed).
 * A cancel: a ticket comes back while another buyer's order commits and settles. Each order must be
 * counted once in the admission stock, whatever moment its commit lands in.
 */

const DATE = '2025-03-01';
const CANCEL_DATE = '2025-03-02';
const TOTAL_DATE = '2025-03-03';
const STOCK = 10;

describe('the admission stock set while orders commit', () => {
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
    await setStock(db, CANCEL_DATE, STOCK);
    await setStock(db, TOTAL_DATE, STOCK);
    redis = createRedis(config, namespace);
  });

  afterAll(async () => {
    await deleteNamespace(redis, namespace);
    redis.disconnect();
    await db.close();
    await writerDb.close();
    await dropDatabase(config.databaseUrl);
  });

  /** The database's remaining tickets of a day. */
  async function remaining(date: string): Promise<number> {
    const [day] = await db.query<{ remaining: number }>('SELECT remaining FROM ticket_days WHERE date = $1', {
      bind: [date],
      type: QueryTypes.SELECT,
    });
    return day.remaining;
  }

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

    expect(await remaining(DATE)).toBe(STOCK - 1);
    expect(await redis.get(keys.stock(DATE))).toBe(String(STOCK - 1));
    expect(await redis.hget(keys.claims(DATE), '1')).toBe('m-1');
    expect(await redis.hlen(keys.pending(DATE))).toBe(0);
  });

  /** Admits `userId` on `date` and answers the placing of its order (commit and settle), to run later. */
  async function admitted(date: string, userId: number, messageId: string) {
    const admission = await reserve(redis, config, { userId, date }, messageId, {
      resultTtlSeconds: 60,
      admitter: 'test',
    });
    expect(admission.outcome).toBe('OK');
    const writer = new OrderWriter(orderWriterPorts(writerDb, redis), {
      batchSize: 10,
      batchMs: 1,
      lockTimeoutMs: 5000,
    });
    return () => writer.submit({ messageId, userId, date });
  }

  /**
   * The Redis client with its admission-stock writes (RESTOCK, SHIFT_STOCK) made to wait until
   * `place` has committed and settled another buyer's order: that order lands after whatever the
   * caller read from the database, before the stock is written.
   */
  function racing(place: () => Promise<OrderOutcome>) {
    const race: { outcome?: OrderOutcome } = {};
    const stockWrites = new Set<PropertyKey>(['restock', 'shiftStock']);
    const client = new Proxy(redis, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop);
        if (typeof value !== 'function') return value;
        const method = (value as (...args: unknown[]) => unknown).bind(target);
        if (!stockWrites.has(prop)) return method;
        return async (...args: unknown[]) => {
          race.outcome ??= await place();
          return method(...args);
        };
      },
    });
    return { client, race };
  }

  it("gives a cancelled ticket back once while another buyer's order commits and settles", async () => {
    await rebuildCache({ db, redis }, config, [CANCEL_DATE]);
    expect(await (await admitted(CANCEL_DATE, 3, 'c-3'))()).toMatchObject({ kind: 'success' });
    const { client, race } = racing(await admitted(CANCEL_DATE, 4, 'c-4'));
    const [order] = await ordersOfUser(db, 3);
    await cancelOrder({ db, redis: client }, 3, order.orderNo);
    expect(race.outcome).toMatchObject({ kind: 'success' });

    expect(await remaining(CANCEL_DATE)).toBe(STOCK - 1);
    expect(await redis.hlen(keys.pending(CANCEL_DATE))).toBe(0);
    expect(await redis.get(keys.stock(CANCEL_DATE))).toBe(String(STOCK - 1));
  });

  it("counts an admin's new total once while another buyer's order commits and settles", async () => {
    await rebuildCache({ db, redis }, config, [TOTAL_DATE]);
    const { client, race } = racing(await admitted(TOTAL_DATE, 5, 't-5'));
    const { shift } = await setDayTotal({ db, redis: client }, TOTAL_DATE, STOCK + 5);
    expect(shift).toBe(5);
    expect(race.outcome).toMatchObject({ kind: 'success' });

    expect(await remaining(TOTAL_DATE)).toBe(STOCK + 5 - 1);
    expect(await redis.hlen(keys.pending(TOTAL_DATE))).toBe(0);
    expect(await redis.get(keys.stock(TOTAL_DATE))).toBe(String(STOCK + 5 - 1));
  });
});
