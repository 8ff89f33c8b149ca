import pg from 'pg';
import { createSequelize } from '../../lib/db';
import { isTransientError } from '../../lib/errors';
import {
  acceptedIds,
  assertInvariants,
  buyers,
  cleanUpAfterSuite,
  countBy,
  Deployment,
  describeRun,
  expectAcceptedOrSoldOut,
  sleep,
  startLoad,
  waitAccepted,
  waitFor,
  type Gateway,
} from '../helpers/processes';
import { TcpProxy } from '../helpers/tcp-proxy';

/**
 * SPEC §4 / §7: the database unreachable for a while (through a proxy the test owns — the shared
 * server is never touched). Messages go RETRYING (backoff inside the worker) and DELAYED
 * (negative acknowledgement with delay), and finish once the database is back.
 */

const USERS = 300;
const STOCK = 200;

jest.setTimeout(180_000);

let proxy: TcpProxy | undefined;

cleanUpAfterSuite(() => proxy?.close());

describe('PostgreSQL unreachable for a while', () => {
  let dep: Deployment;
  let gateway: Gateway;

  beforeAll(async () => {
    proxy = await TcpProxy.start(5432);
    dep = Deployment.create({
      SEED_USERS: String(USERS + 10),
      // Enough deliveries to outlive the outage: 200, 400, 800, 1600 … ms between them.
      QUEUE_MAX_DELIVER: '12',
      // A worker query waits on the test's row lock until the connection is cut under it.
      DB_LOCK_TIMEOUT_MS: '15000',
    });
    const throughProxy = {
      DATABASE_URL: `postgres://postgres@127.0.0.1:${proxy.port}/miaosha_${dep.namespace}`,
    };
    gateway = await dep.startSale({
      stock: STOCK,
      gateway: { env: throughProxy },
      workers: [{ env: throughProxy }],
    });
  });

  afterAll(async () => {
    await dep?.destroy();
  });

  it('retries and delays messages during the outage, and finishes every one once it is back', async () => {
    const date = dep.dates[0];
    const load = startLoad(dep, [gateway], { requests: buyers(date, USERS), concurrency: 6, pauseMs: 20 });
    await waitAccepted(load, 50);

    // Make sure the cut lands in the middle of a query: hold the day's row lock (real port) until
    // the worker's batch transaction waits on it, then cut. Its connection breaks mid-query.
    const locker = new pg.Client({ connectionString: dep.config.databaseUrl });
    await locker.connect();
    let blocked: number;
    try {
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM ticket_days WHERE date = $1 FOR UPDATE', [date]);
      blocked = await waitFor(
        async () => {
          const { rows } = await locker.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
          );
          return rows[0].n > 0 ? rows[0].n : undefined;
        },
        20_000,
        () => `no worker query waiting on the lock\n${dep.output()}`,
        20,
      );
      proxy!.cut();
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
    }
    const cutAt = load.accepted();
    // The outage is visible: health says the database is down, and messages wait for it.
    const health = await waitFor(
      async () => {
        const h = await gateway.get<{ dependencies: { postgres: { up: boolean } } }>('/health');
        return h.status === 503 ? h : undefined;
      },
      20_000,
      () => 'health never reported the database down',
    );
    expect(health.body.data.dependencies.postgres.up).toBe(false);
    // A request that needs the database gets 5030, and an expected 5030 writes no error log.
    const orders = await gateway.get<unknown>('/api/tickets/orders?userId=1');
    expect([orders.status, orders.body.code]).toEqual([503, 5030]);
    expect(gateway.process.matching(/Request error/)).toEqual([]);
    const waiting = await waitFor(
      async () => {
        const results = (await dep.audit({ live: true })).totals.results;
        const n = (results.RETRYING ?? 0) + (results.DELAYED ?? 0);
        return n > 0 ? results : undefined;
      },
      20_000,
      () => `no message went RETRYING or DELAYED\n${dep.output()}`,
    );
    // Keep it down across a few delayed redeliveries, under load.
    await sleep(2500);
    const during = countBy(load.answers.map((a) => a.code));
    proxy!.restore();

    const answers = await load.done;
    const ids = acceptedIds(answers);
    // Submitting needs no database: the outage refuses nobody.
    expectAcceptedOrSoldOut(answers, ids, USERS);
    const f = await assertInvariants(dep, gateway, date, ids);
    expect(f.success).toBe(Math.min(STOCK, ids.length));
    // Some messages went through RETRYING or DELAYED: more than one try.
    const retried = f.records.filter((r) => r.attempts > 1);
    expect(retried.length).toBeGreaterThan(0);
    expect(f.records.filter((r) => r.status === 'FAILED' && r.errorCode === 5000)).toEqual([]);
    console.log(
      describeRun(
        'PostgreSQL unreachable (proxy cut)',
        { users: USERS, codes: countBy(answers.map((a) => a.code)) },
        `database connections of both nodes cut after ${cutAt} accepted, ${blocked} worker ` +
          `transaction(s) mid-query; down for ~3 s; ` +
          `while cut: results ${JSON.stringify(waiting)}, answers so far ${JSON.stringify(during)}; ` +
          `proxy refused ${proxy!.stats.refused} connections`,
        f,
      ),
    );
  });

  it('classifies a connection cut in the middle of a query as transient (retried, not dead-lettered)', async () => {
    const db = createSequelize({
      url: `postgres://postgres@127.0.0.1:${proxy!.port}/miaosha_${dep.namespace}`,
      poolMax: 1,
    });
    try {
      await db.query('SELECT 1');
      const query = db.transaction(async (transaction) => {
        await db.query('SELECT pg_sleep(5)', { transaction });
      });
      await waitFor(
        async () => {
          const [{ n }] = await dep.sql<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)' AND state = 'active'`,
          );
          return n > 0 ? true : undefined;
        },
        10_000,
        () => 'the query never started',
        20,
      );
      proxy!.cut();
      const error = await query.then(
        () => null,
        (err: unknown) => err,
      );
      proxy!.restore();
      expect(error).toBeTruthy();
      expect({ error: String(error), transient: isTransientError(error) }).toMatchObject({ transient: true });
    } finally {
      proxy!.restore();
      await db.close().catch(() => undefined);
    }
  });
});
