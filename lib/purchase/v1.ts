import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { QueryTypes, UniqueConstraintError, ForeignKeyConstraintError, type Sequelize } from 'sequelize';
import type { Config } from '../../config';
import { appCodeOf, appError, ERRORS } from '../errors';
import type { SaleCalendar } from '../sale/calendar';
import { keys, outboxEntry, v1Claim } from '../store/keys';
import { findDay } from '../tickets/days';
import { ORDER_COLUMNS, type OrderView } from '../tickets/orders';
import { checkRequest, type PurchaseRequest } from './checks';
import { adoptOrder, refusal, reserve, settle } from './reservations';

/** What the V1 purchase works with: the stores, and this process's name on its admissions. */
export interface V1Deps {
  db: Sequelize;
  redis: Redis;
  admitter: string;
}

/** The configuration V1 reads: the verify hash's secret, the rate limits and the sale calendar. */
export type V1Settings = Pick<Config, 'hashSecret' | 'rateLimit'> & { calendar: SaleCalendar };

/**
 * The synchronous V1 purchase: the same Redis admission as V2, then one transaction with a
 * conditional decrement (never oversells) and the unique constraints as the last defence.
 */
export async function purchaseV1(
  { db, redis, admitter }: V1Deps,
  settings: V1Settings,
  req: PurchaseRequest,
): Promise<OrderView> {
  checkRequest(settings, settings.calendar, req);
  const reservation = `v1-${randomUUID()}`;
  const admission = await reserve(redis, settings, req, reservation, { resultTtlSeconds: 0, admitter });
  if (admission.outcome !== 'OK') throw refusal(admission);
  const done = () =>
    redis.zrem(keys.outbox, outboxEntry({ date: req.date, messageId: reservation, admitter }));
  let order: OrderView;
  try {
    order = await insertV1Order(db, req.userId, req.date);
  } catch (err) {
    // Sold out in the database: the reservation was a phantom, nothing to give back.
    await settle(redis, req, reservation, appCodeOf(err) !== ERRORS.SOLD_OUT.code, 'drop').catch(
      () => undefined,
    );
    await done().catch(() => undefined);
    throw err;
  }
  const claim = v1Claim(order.orderNo);
  // Not pending any more: the outbox recovery released it while this purchase was slow, so the
  // order is counted now (as the worker does for a message whose reservation is gone).
  if (!(await settle(redis, req, reservation, false, 'set', claim))) await adoptOrder(redis, req, claim);
  await done();
  return order;
}

async function insertV1Order(db: Sequelize, userId: number, date: string): Promise<OrderView> {
  let order: OrderView | undefined;
  try {
    order = await db.transaction(async (transaction) => {
      const taken = await db.query(
        `UPDATE ticket_days SET remaining = remaining - 1, sold = sold + 1, version = version + 1,
           updated_at = now()
         WHERE date = $1 AND remaining > 0 AND status = 'on_sale' RETURNING remaining`,
        { bind: [date], type: QueryTypes.SELECT, transaction },
      );
      if (taken.length === 0) return undefined;
      const [inserted] = await db.query<OrderView>(
        `INSERT INTO orders (user_id, date, ticket_code) VALUES ($1, $2, make_ticket_code($2))
         RETURNING ${ORDER_COLUMNS}`,
        { bind: [userId, date], type: QueryTypes.SELECT, transaction },
      );
      return inserted;
    });
  } catch (err) {
    if (err instanceof UniqueConstraintError) throw appError('ALREADY_PURCHASED');
    if (err instanceof ForeignKeyConstraintError) throw appError('UNKNOWN_USER');
    throw err;
  }
  // Asked once the transaction has given its connection back: asking inside it needs a second
  // connection, and many sold-out purchases waiting at once then starve the pool (5030 after 10 s).
  if (!order) throw (await findDay(db, date)) ? appError('SOLD_OUT') : appError('NO_SUCH_DAY');
  return order;
}
