import type { ServiceBroker } from 'moleculer';
import { loadConfig } from '../../config';
import { createBroker } from '../../app/broker';
import type { OrderView } from '../../lib/tickets/orders';
import type { RepairReport } from '../../lib/purchase/cache';
import { keys } from '../../lib/store/keys';
import { startApp, type HttpAnswer, type TestApp } from '../helpers/app';
import {
  dayStock,
  expectConsistent,
  rowsOf,
  submit,
  terminal,
  validOrders,
  type PolledResult,
} from '../helpers/purchase';

/**
 * "Redis only admits; PostgreSQL decides": the cache is made wrong behind the service's back (stock
 * above the database's, claims lost, a result record deleted, an order committed but not settled)
 * and the database's guards alone must hold. These are the tests that fail when a guard of
 * lib/db/migrations.ts or the V1 conditional decrement is removed (see lib/db/guards.ts and
 * lib/purchase/guards.ts, run by `npm run test:guards`).
 */

const SLOW = 120_000;

interface PlacedRow {
  n: number;
  outcome: string;
  orderNo: string | null;
  ticketCode: string | null;
}

const placeOrders = (app: TestApp, date: string, messageIds: string[], userIds: number[]) =>
  rowsOf<PlacedRow>(
    app,
    'SELECT n, outcome, order_no AS "orderNo", ticket_code AS "ticketCode" FROM place_orders($1, $2, $3, $4)',
    [date, messageIds, userIds, 5000],
  );

const v1Purchase = (app: TestApp, userId: number, date: string) =>
  app.post<OrderView>('/api/tickets/v1/purchase', { userId, date, verifyHash: app.hash(userId, date) });

const users = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

async function setTotal(app: TestApp, date: string, total: number): Promise<void> {
  expect((await app.put(`/api/admin/tickets/${date}`, { total }, app.admin)).body.code).toBe(200);
}

/** The cache's admission stock, set behind the service's back. */
const setCachedStock = (app: TestApp, date: string, stock: number) =>
  app.rt.redis.set(keys.stock(date), stock);

async function reconcile(app: TestApp, date: string) {
  const res = await app.post<RepairReport>('/api/admin/reconcile', {}, app.admin);
  expect(res.body.code).toBe(200);
  return res.body.data.days.find((d) => d.date === date)!;
}

/** Every answer accepted (the wrong cache admits them all), then each message's terminal result. */
async function acceptedResults(app: TestApp, answers: HttpAnswer<{ messageId: string }>[]) {
  for (const a of answers) expect(a.body.code).toBe(200);
  return Promise.all(answers.map((a) => terminal(app, a.body.data.messageId)));
}

/** The name of the constraint PostgreSQL refused a statement with (undefined when it ran). */
async function refusedBy(statement: Promise<unknown>): Promise<string | undefined> {
  try {
    await statement;
    return undefined;
  } catch (err) {
    return (err as { parent?: { constraint?: string } }).parent?.constraint;
  }
}

const byStatus = (results: PolledResult[], status: string) => results.filter((r) => r.status === status);

describe('the database decides when the cache is wrong', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startApp();
  });
  afterAll(async () => {
    await app?.stop();
  });

  it(
    'V2: admission stock far above the database sells exactly the stock and fails the excess with 6002',
    async () => {
      const date = app.dates[0];
      const STOCK = 10;
      await setTotal(app, date, STOCK);
      await setCachedStock(app, date, 500);
      const buyers = users(1001, 30);

      const results = await acceptedResults(app, await Promise.all(buyers.map((u) => submit(app, u, date))));

      const sold = byStatus(results, 'SUCCESS');
      const failed = byStatus(results, 'FAILED');
      expect(sold).toHaveLength(STOCK);
      expect(failed).toHaveLength(buyers.length - STOCK);
      for (const r of failed) expect(r.errorCode).toBe(6002);
      expect(await dayStock(app, date)).toEqual({ total: STOCK, remaining: 0, sold: STOCK });
      expect(await validOrders(app, date)).toEqual(
        sold
          .map((r) => ({ userId: r.userId, messageId: r.messageId, ticketCode: r.ticketCode }))
          .sort((a, b) => a.userId - b.userId),
      );

      // The cache converges: reconcile finds the wrong stock and sets it from the database.
      const repair = await reconcile(app, date);
      expect(repair.stock).toEqual({ cached: 500 - buyers.length, expected: 0 });
      await expectConsistent(app, date);
      expect((await submit(app, 1100, date)).body.code).toBe(6002);
    },
    SLOW,
  );

  it(
    'V1: admission stock far above the database sells exactly the stock and refuses the excess with 6002',
    async () => {
      const date = app.dates[1];
      const STOCK = 5;
      await setTotal(app, date, STOCK);
      await setCachedStock(app, date, 500);
      const buyers = users(1201, 15);

      const answers = await Promise.all(buyers.map((u) => v1Purchase(app, u, date)));

      const sold = answers.filter((a) => a.body.code === 200);
      expect(answers.map((a) => a.body.code).sort()).toEqual([
        ...Array<number>(STOCK).fill(200),
        ...Array<number>(buyers.length - STOCK).fill(6002),
      ]);
      expect(await dayStock(app, date)).toEqual({ total: STOCK, remaining: 0, sold: STOCK });
      expect((await validOrders(app, date)).map((o) => o.ticketCode).sort()).toEqual(
        sold.map((a) => a.body.data.ticketCode).sort(),
      );

      const repair = await reconcile(app, date);
      expect(repair.stock.expected).toBe(0);
      await expectConsistent(app, date);
      expect((await v1Purchase(app, 1300, date)).body.code).toBe(6002);
    },
    SLOW,
  );

  it(
    'V2 and V1: users whose claims the cache lost get no second ticket (6005), new buyers still get theirs',
    async () => {
      const date = app.dates[2];
      await setTotal(app, date, 20);
      const holders = users(1401, 5);
      const first = await acceptedResults(app, await Promise.all(holders.map((u) => submit(app, u, date))));
      expect(byStatus(first, 'SUCCESS')).toHaveLength(holders.length);

      await app.rt.redis.del(keys.claims(date));
      const newcomers = users(1451, 3);
      const again = await acceptedResults(
        app,
        await Promise.all([...holders, ...newcomers].map((u) => submit(app, u, date))),
      );
      for (const [i, r] of again.entries()) {
        if (i < holders.length) {
          // A new message (the cache had forgotten the claim), failed by the database.
          expect(r.messageId).not.toBe(first[i].messageId);
          expect(r).toMatchObject({ status: 'FAILED', errorCode: 6005 });
        } else {
          expect(r.status).toBe('SUCCESS');
        }
      }
      // V1 has no claim to go by either: only the unique index stops the second order.
      await app.rt.redis.del(keys.claims(date));
      for (const u of holders) expect((await v1Purchase(app, u, date)).body.code).toBe(6005);

      const orders = await validOrders(app, date);
      expect(orders.filter((o) => holders.includes(o.userId))).toEqual(
        first.map((r) => ({ userId: r.userId, messageId: r.messageId, ticketCode: r.ticketCode })),
      );
      expect(await dayStock(app, date)).toEqual({
        total: 20,
        remaining: 20 - holders.length - newcomers.length,
        sold: holders.length + newcomers.length,
      });

      // Reconcile gives the holders their claims back: a new submit answers their first message.
      const repair = await reconcile(app, date);
      expect(repair.claimsAdded).toBe(holders.length + newcomers.length);
      await expectConsistent(app, date);
      expect((await submit(app, holders[0], date)).body.data.messageId).toBe(first[0].messageId);
      expect((await v1Purchase(app, holders[1], date)).body.code).toBe(6005);
    },
    SLOW,
  );

  describe('the guards themselves, called directly', () => {
    it('place_orders: a holder in the batch takes no ticket from a new buyer, and the stock is a hard limit', async () => {
      const date = app.dates[2];
      const [holder] = await validOrders(app, date);
      const { sold } = await dayStock(app, date);
      await setTotal(app, date, sold + 1);

      const rows = await placeOrders(app, date, ['po-holder', 'po-new'], [holder.userId, 1501]);
      expect(rows.map((r) => r.outcome)).toEqual(['already_purchased', 'inserted']);
      expect(await dayStock(app, date)).toEqual({ total: sold + 1, remaining: 0, sold: sold + 1 });

      const late = await placeOrders(app, date, ['po-late-1', 'po-late-2'], [1502, 1503]);
      expect(late.map((r) => r.outcome)).toEqual(['sold_out', 'sold_out']);
      expect(await dayStock(app, date)).toEqual({ total: sold + 1, remaining: 0, sold: sold + 1 });
    });

    it('ticket_days refuses a negative or unbalanced stock', async () => {
      const date = app.dates[2];
      expect(
        await refusedBy(
          rowsOf(app, 'UPDATE ticket_days SET remaining = -1, sold = total + 1 WHERE date = $1', [date]),
        ),
      ).toBe('ticket_days_stock_balanced');
      expect(
        await refusedBy(rowsOf(app, 'UPDATE ticket_days SET sold = sold + 1 WHERE date = $1', [date])),
      ).toBe('ticket_days_stock_balanced');
    });

    it('orders refuses a second valid order for a user and day, and a message id used twice', async () => {
      const date = app.dates[2];
      const [holder, other] = await validOrders(app, date);
      expect(
        await refusedBy(
          rowsOf(
            app,
            'INSERT INTO orders (user_id, date, ticket_code) VALUES ($1, $2, make_ticket_code($2))',
            [holder.userId, date],
          ),
        ),
      ).toBe('orders_one_valid_per_user_day');
      expect(
        await refusedBy(
          rowsOf(
            app,
            `INSERT INTO orders (message_id, user_id, date, ticket_code)
             VALUES ($1, $2, $3, make_ticket_code($3))`,
            [holder.messageId, 1601, app.dates[0]],
          ),
        ),
      ).toBe('orders_message_id_key');
      // A cancelled order leaves room for a new valid one: the index is partial.
      await rowsOf(app, `UPDATE orders SET status = 'cancelled' WHERE user_id = $1 AND date = $2`, [
        other.userId,
        date,
      ]);
      await rowsOf(
        app,
        'INSERT INTO orders (user_id, date, ticket_code) VALUES ($1, $2, make_ticket_code($2))',
        [other.userId, date],
      );
      expect((await validOrders(app, date)).filter((o) => o.userId === other.userId)).toHaveLength(1);
    });
  });
});

describe('messages in flight when the cache is wrong', () => {
  let app: TestApp;
  let worker: ServiceBroker | undefined;

  beforeAll(async () => {
    // No worker yet: the messages wait on the queue while the test puts the cache out of step.
    app = await startApp({ SERVICES: 'api,tickets,purchase' });
  });
  afterAll(async () => {
    await worker?.stop();
    await app?.stop();
  });

  it(
    'finishes a redelivery after the commit and a message whose result record was deleted, once each',
    async () => {
      const date = app.dates[0];
      const [committed, unrecorded, plain] = [2001, 2002, 2003];
      const ids = new Map<number, string>();
      for (const u of [committed, unrecorded, plain]) {
        const answer = await submit(app, u, date);
        expect(answer.body.code).toBe(200);
        ids.set(u, answer.body.data.messageId);
      }
      // A worker that committed this order and died before settling its reservation.
      const [placed] = await placeOrders(app, date, [ids.get(committed)!], [committed]);
      expect(placed.outcome).toBe('inserted');
      // And a result record lost while its message waits on the queue.
      await app.rt.redis.del(keys.result(ids.get(unrecorded)!));
      const before = await dayStock(app, date);

      worker = createBroker(
        loadConfig({ ...app.env, SERVICES: 'purchase-worker' }),
        `${app.namespace}-worker`,
      );
      await worker.start();

      expect(await terminal(app, ids.get(committed)!)).toMatchObject({
        status: 'SUCCESS',
        orderNo: placed.orderNo,
        ticketCode: placed.ticketCode,
      });
      for (const u of [unrecorded, plain]) {
        const r = await terminal(app, ids.get(u)!);
        const [order] = (await validOrders(app, date)).filter((o) => o.userId === u);
        expect(r).toMatchObject({ status: 'SUCCESS', userId: u, date, ticketCode: order.ticketCode });
        expect(order.messageId).toBe(ids.get(u));
      }
      // The committed order counted once: two new orders, not three.
      expect(await dayStock(app, date)).toEqual({
        total: before.total,
        remaining: before.remaining - 2,
        sold: before.sold + 2,
      });
      await expectConsistent(app, date);
    },
    SLOW,
  );
});
