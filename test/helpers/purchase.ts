import { QueryTypes } from 'sequelize';
import type { SubmitAnswer } from '../../lib/purchase/gateway';
import type { ResultRecord } from '../../lib/purchase/results';
import { keys } from '../../lib/store/keys';
import { eventually, type TestApp } from './app';

/**
 * Purchase and database helpers shared by the integration suites that drive one in-process app
 * (test/helpers/app.ts): V2 submit, result polling, queue progress, and the rows the tests compare.
 */

/** A result as the result endpoint answers it: the record plus the server's polling hint. */
export type PolledResult = ResultRecord & { pollIntervalMs?: number };

/** Submits a V2 purchase with a valid verify hash. */
export const submit = (app: TestApp, userId: number, date: string) =>
  app.post<SubmitAnswer>('/api/tickets/v2/purchase', { userId, date, verifyHash: app.hash(userId, date) });

/** One result read; with `waitMs`, a long poll. */
export const resultOf = (app: TestApp, messageId: string, waitMs?: number) =>
  app.get<PolledResult>(
    `/api/tickets/v2/purchase/result?messageId=${encodeURIComponent(messageId)}` +
      (waitMs === undefined ? '' : `&waitMs=${waitMs}`),
  );

type MetricValue = { labels: Record<string, string>; value: number };

/** How many times this app's broker has run `action` (Moleculer's request counter). */
export function actionCalls(app: TestApp, action: string): number {
  const values = (app.broker.metrics.getMetric('moleculer.request.total')?.snapshot() ?? []) as MetricValue[];
  return values.filter((v) => v.labels.action === action).reduce((sum, v) => sum + v.value, 0);
}

/** Polls the result until it is SUCCESS or FAILED (30 s at most). */
export async function terminal(app: TestApp, messageId: string): Promise<PolledResult> {
  return eventually(async () => {
    const r = await resultOf(app, messageId);
    return r.body.code === 200 && ['SUCCESS', 'FAILED'].includes(r.body.data.status)
      ? r.body.data
      : undefined;
  }, 30_000);
}

/** Waits until the worker has settled (acked, termed) every stream message up to `seq`. */
export async function processedUpTo(app: TestApp, seq: number): Promise<void> {
  const queue = await app.rt.queue();
  await eventually(async () => {
    const info = await queue.consumerInfo();
    return info.ack_floor.stream_seq >= seq && info.num_ack_pending === 0 && info.num_pending === 0
      ? true
      : undefined;
  }, 30_000);
}

/** Rows of a SELECT on the app's database. */
export const rowsOf = <T extends object>(app: TestApp, sql: string, bind: unknown[] = []) =>
  app.rt.db.query<T>(sql, { bind, type: QueryTypes.SELECT });

/** The stock figures of one sale day. */
export const dayStock = async (app: TestApp, date: string) =>
  (
    await rowsOf<{ total: number; remaining: number; sold: number }>(
      app,
      'SELECT total, remaining, sold FROM ticket_days WHERE date = $1',
      [date],
    )
  )[0];

export interface DayRow {
  date: string;
  total: number;
  remaining: number;
  sold: number;
  status: string;
}

/** One sale day's row: stock figures and status. */
export const dayRow = async (app: TestApp, date: string): Promise<DayRow> =>
  (
    await rowsOf<DayRow>(
      app,
      'SELECT date, total, remaining, sold, status FROM ticket_days WHERE date = $1',
      [date],
    )
  )[0];

/** Everything a refused request must leave alone: days, orders, and the admission state in Redis. */
export async function saleState(app: TestApp) {
  const days = await rowsOf(
    app,
    'SELECT date, total, remaining, sold, version, status FROM ticket_days ORDER BY date',
  );
  const orders = await rowsOf(app, 'SELECT order_no, user_id, date, status FROM orders ORDER BY id');
  const redis = await Promise.all(
    app.dates.map(async (d) => ({
      stock: await app.rt.redis.get(keys.stock(d)),
      claims: await app.rt.redis.hgetall(keys.claims(d)),
      pending: await app.rt.redis.hlen(keys.pending(d)),
    })),
  );
  return { days, orders, redis };
}

/** A day's valid orders, by user. */
export const validOrders = (app: TestApp, date: string) =>
  rowsOf<{ userId: number; messageId: string | null; ticketCode: string }>(
    app,
    `SELECT user_id AS "userId", message_id AS "messageId", ticket_code AS "ticketCode"
     FROM orders WHERE date = $1 AND status = 'valid' ORDER BY user_id`,
    [date],
  );

/**
 * SPEC §5 for one day once the service is idle: balanced stock, one valid order per user, and the
 * cache agreeing with the database (stock, each buyer's claim, nothing pending).
 */
export async function expectConsistent(app: TestApp, date: string): Promise<void> {
  const day = await dayStock(app, date);
  const orders = await validOrders(app, date);
  expect(day.sold + day.remaining).toBe(day.total);
  expect(orders).toHaveLength(day.sold);
  expect(new Set(orders.map((o) => o.userId)).size).toBe(orders.length);
  await eventually(async () => ((await app.rt.redis.hlen(keys.pending(date))) === 0 ? true : undefined));
  expect(Number(await app.rt.redis.get(keys.stock(date)))).toBe(day.remaining);
  const claims = await app.rt.redis.hgetall(keys.claims(date));
  for (const o of orders)
    expect(claims[String(o.userId)]).toEqual(o.messageId ?? expect.stringMatching(/^v1:/));
  expect(Object.keys(claims)).toHaveLength(orders.length);
}
