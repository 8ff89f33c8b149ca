import pg from 'pg';
import { QueryTypes } from 'sequelize';
import { loadConfig } from '../../config';
import { keys } from '../../lib/store/keys';
import { cleanupNamespace, isolatedEnv, startApp, uniqueNamespace, type TestApp } from '../helpers/app';

/** Start-up against an empty database, and a restart on the same database that changes nothing. */

const SEED_USERS = 1234;

async function databaseExists(url: string): Promise<boolean> {
  const name = new URL(url).pathname.slice(1);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    return (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
  } finally {
    await client.end();
  }
}

describe('start-up', () => {
  const namespace = uniqueNamespace('st');
  const env = isolatedEnv(namespace, { SEED_USERS: String(SEED_USERS) });
  let first: TestApp | undefined;
  let second: TestApp | undefined;

  const rows = <T extends object>(app: TestApp, sql: string) =>
    app.rt.db.query<T>(sql, { type: QueryTypes.SELECT });

  /** Everything start-up writes to the database. */
  async function snapshot(app: TestApp) {
    return {
      days: await rows(
        app,
        `SELECT id, date, name, total, remaining, sold, version, status, created_at, updated_at
         FROM ticket_days ORDER BY date`,
      ),
      users: (
        await rows<{ n: number; min: number; max: number; newest: Date }>(
          app,
          'SELECT count(*)::int AS n, min(id) AS min, max(id) AS max, max(created_at) AS newest FROM users',
        )
      )[0],
      migrations: await rows(app, 'SELECT * FROM schema_migrations ORDER BY name'),
      orders: await rows(app, 'SELECT order_no, user_id, date, ticket_code, status FROM orders ORDER BY id'),
    };
  }

  afterAll(async () => {
    // Whatever happened, leave no database, keys or streams behind.
    await first?.stop(false).catch(() => undefined);
    await second?.stop(false).catch(() => undefined);
    await cleanupNamespace(loadConfig(env));
  });

  it('creates the database, migrates, creates the sale days and seeds the users', async () => {
    expect(await databaseExists(env.DATABASE_URL)).toBe(false);
    first = await startApp(env);
    expect(first.namespace).toBe(namespace);
    expect(await databaseExists(env.DATABASE_URL)).toBe(true);

    const state = await snapshot(first);
    expect(state.migrations.length).toBeGreaterThanOrEqual(1);
    expect(state.migrations[0]).toMatchObject({ name: '001-initial-schema' });
    expect(
      state.days.map((d) => {
        const { date, total, remaining, sold, status } = d as Record<string, unknown>;
        return { date, total, remaining, sold, status };
      }),
    ).toEqual(
      first.dates.map((date, i) => ({
        date,
        total: [100, 150, 200][i],
        remaining: [100, 150, 200][i],
        sold: 0,
        status: 'on_sale',
      })),
    );
    expect(state.users).toMatchObject({ n: SEED_USERS, min: 1, max: SEED_USERS });
    expect(state.orders).toEqual([]);

    // The cache was warmed before the first admission.
    expect(await first.rt.redis.exists(keys.ready)).toBe(1);
    for (const [i, date] of first.dates.entries()) {
      expect(await first.rt.redis.get(keys.stock(date))).toBe(String([100, 150, 200][i]));
    }
    // And the queue exists.
    const queue = await first.rt.queue();
    expect((await queue.jsm.streams.info(queue.names.stream)).config.name).toBe(`${namespace}_PURCHASES`);

    // The last seeded user can buy; the next one is unknown.
    const date = first.dates[0];
    expect(
      (
        await first.post('/api/tickets/v1/purchase', {
          userId: SEED_USERS,
          date,
          verifyHash: first.hash(SEED_USERS, date),
        })
      ).body.code,
    ).toBe(200);
    expect(
      (await first.get(`/api/tickets/verify-hash?userId=${SEED_USERS + 1}&date=${date}`)).body.code,
    ).toBe(6006);
  });

  it('changes nothing when a second broker starts on the same namespace and database', async () => {
    if (!first) throw new Error('the first start failed');
    const before = await snapshot(first);
    const oldHash = first.hash(7, first.dates[1]);
    await first.stop(false);
    const stopped = first;
    first = undefined;

    second = await startApp({ ...env, NAMESPACE: namespace, HASH_SECRET: stopped.env.HASH_SECRET });
    expect(second.config.databaseUrl).toBe(stopped.config.databaseUrl);
    expect(await snapshot(second)).toEqual(before);

    // The cache warm-up restored the buyer's claim: no second ticket for the same day.
    const date = second.dates[0];
    const again = await second.post('/api/tickets/v1/purchase', {
      userId: SEED_USERS,
      date,
      verifyHash: second.hash(SEED_USERS, date),
    });
    expect(again.body.code).toBe(6005);
    expect(await second.rt.redis.get(keys.stock(date))).toBe('99');
    // A hash issued before the restart is still good (same HASH_SECRET).
    const bought = await second.post('/api/tickets/v1/purchase', {
      userId: 7,
      date: second.dates[1],
      verifyHash: oldHash,
    });
    expect(bought.body.code).toBe(200);
  });

  it('leaves a live cache as it is when a node joins mid-sale, and gives a day without stock its keys', async () => {
    if (!second) throw new Error('the second start failed');
    const [live, bare] = [second.dates[2], second.dates[1]];
    const redis = second.rt.redis;
    // A worker between its commit and its settle: the ticket is reserved in Redis (stock down one,
    // reservation pending) and its order already committed. Both sides agree on what is left.
    await redis.multi().decr(keys.stock(live)).hset(keys.pending(live), 'in-flight', '42').exec();
    await second.rt.db.query(
      `INSERT INTO orders (message_id, user_id, date, ticket_code)
       VALUES ('in-flight', 42, $1::date, make_ticket_code($1::date))`,
      { bind: [live] },
    );
    await second.rt.db.query(
      'UPDATE ticket_days SET remaining = remaining - 1, sold = sold + 1 WHERE date = $1',
      { bind: [live] },
    );
    const stockBefore = await redis.get(keys.stock(live));
    await redis.del(keys.stock(bare));

    const joining = await startApp({ ...second.env });
    try {
      // Rewriting the stock now would count the in-flight order twice (remaining - pending).
      expect(await redis.get(keys.stock(live))).toBe(stockBefore);
      const [day] = await rows<{ remaining: number }>(
        joining,
        `SELECT remaining FROM ticket_days WHERE date = '${bare}'`,
      );
      expect(await redis.get(keys.stock(bare))).toBe(String(day.remaining));
    } finally {
      await joining.stop(false);
    }
    // The admin calls that do set the stock from the database do not count that order twice either.
    const reconciled = await second.post<{ days: { date: string; stock: { expected: number } }[] }>(
      '/api/admin/reconcile',
      {},
      second.admin,
    );
    const day = reconciled.body.data.days.find((d) => d.date === live);
    expect(String(day?.stock.expected)).toBe(stockBefore);
    expect(await redis.get(keys.stock(live))).toBe(stockBefore);
    // Five more tickets: the admission stock grows by five, the in-flight order still counted once.
    const [{ sold }] = await rows<{ sold: number }>(
      second,
      `SELECT sold FROM ticket_days WHERE date = '${live}'`,
    );
    const total = sold + Number(stockBefore) + 5;
    expect((await second.put(`/api/admin/tickets/${live}`, { total }, second.admin)).status).toBe(200);
    expect(await redis.get(keys.stock(live))).toBe(String(Number(stockBefore) + 5));
  });
});
