import { randomUUID } from 'node:crypto';
import { QueryTypes, UniqueConstraintError, ForeignKeyConstraintError, type Sequelize } from 'sequelize';
import type { Runtime } from '../runtime';
import { appError } from '../errors';
import {
  adoptOrder,
  checkRequest,
  refusal,
  reserve,
  settle,
  v1Claim,
  type PurchaseRequest,
} from '../purchase/admission';
import { keys, outboxEntry } from '../store/keys';
import { findDay } from './days';
import { restockDay } from './stock';

export interface OrderView {
  orderNo: string;
  messageId: string | null;
  userId: number;
  date: string;
  ticketCode: string;
  status: 'valid' | 'cancelled';
  createdAt: string;
  cancelledAt: string | null;
}

const ORDER_COLUMNS = `order_no AS "orderNo", message_id AS "messageId", user_id AS "userId", date,
  ticket_code AS "ticketCode", status, created_at AS "createdAt", cancelled_at AS "cancelledAt"`;

/**
 * The synchronous V1 purchase: the same Redis admission as V2, then one transaction with a
 * conditional decrement (never oversells) and the unique constraints as the last defence.
 */
export async function purchaseV1(rt: Runtime, req: PurchaseRequest): Promise<OrderView> {
  checkRequest(rt.config, rt.calendar, req);
  const reservation = `v1-${randomUUID()}`;
  const { admitter, redis } = rt;
  const admission = await reserve(redis, rt.config, req, reservation, { resultTtlSeconds: 0, admitter });
  if (admission.outcome !== 'OK') throw refusal(admission);
  const done = () =>
    redis.zrem(keys.outbox, outboxEntry({ date: req.date, messageId: reservation, admitter }));
  let order: OrderView;
  try {
    order = await insertV1Order(rt.db, req.userId, req.date);
  } catch (err) {
    const code = (err as { data?: { appCode?: number } }).data?.appCode;
    // Sold out in the database: the reservation was a phantom, nothing to give back.
    await settle(redis, req, reservation, code !== 6002, 'drop').catch(() => undefined);
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

export async function ordersOfUser(db: Sequelize, userId: number): Promise<OrderView[]> {
  return db.query<OrderView>(
    `SELECT ${ORDER_COLUMNS} FROM orders WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 500`,
    { bind: [userId], type: QueryTypes.SELECT },
  );
}

export async function orderByMessageId(db: Sequelize, messageId: string): Promise<OrderView | undefined> {
  const [row] = await db.query<OrderView>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE message_id = $1`, {
    bind: [messageId],
    type: QueryTypes.SELECT,
  });
  return row;
}

export async function validOrdersOfDay(db: Sequelize, date: string): Promise<OrderView[]> {
  return db.query<OrderView>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE date = $1 AND status = 'valid'`, {
    bind: [date],
    type: QueryTypes.SELECT,
  });
}

export async function validOrderOf(
  db: Sequelize,
  userId: number,
  date: string,
): Promise<OrderView | undefined> {
  const [row] = await db.query<OrderView>(
    `SELECT ${ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND date = $2 AND status = 'valid'`,
    { bind: [userId, date], type: QueryTypes.SELECT },
  );
  return row;
}

/** Cancels a valid order and returns its ticket to stock, in the database and then in Redis. */
export async function cancelOrder(rt: Runtime, userId: number, orderNo: string): Promise<OrderView> {
  const order = await rt.db.transaction(async (transaction) => {
    const [cancelled] = await rt.db.query<OrderView>(
      `UPDATE orders SET status = 'cancelled', cancelled_at = now(), updated_at = now()
       WHERE order_no = $1 AND user_id = $2 AND status = 'valid' RETURNING ${ORDER_COLUMNS}`,
      { bind: [orderNo, userId], type: QueryTypes.SELECT, transaction },
    );
    if (!cancelled) throw appError('NOT_FOUND', 'No valid order with this number for this user');
    await rt.db.query(
      `UPDATE ticket_days SET remaining = remaining + 1, sold = sold - 1, version = version + 1,
         updated_at = now() WHERE date = $1`,
      { bind: [cancelled.date], transaction },
    );
    return cancelled;
  });
  const claim = order.messageId ?? v1Claim(order.orderNo);
  const claims = keys.claims(order.date);
  const pipeline = rt.redis.multi();
  if ((await rt.redis.hget(claims, String(userId))) === claim) pipeline.hdel(claims, String(userId));
  if (order.messageId) pipeline.hset(keys.result(order.messageId), 'cancelledAt', new Date().toISOString());
  await pipeline.exec();
  await restockDay(rt, order.date);
  return order;
}

export interface DayStats {
  date: string;
  status: string;
  total: number;
  remaining: number;
  sold: number;
  orders: number;
  cancelled: number;
}

export async function stats(
  db: Sequelize,
): Promise<{ days: DayStats[]; total: Omit<DayStats, 'date' | 'status'> }> {
  const days = await db.query<DayStats>(
    `SELECT d.date, d.status, d.total, d.remaining, d.sold,
       count(o.id) FILTER (WHERE o.status = 'valid')::int AS orders,
       count(o.id) FILTER (WHERE o.status = 'cancelled')::int AS cancelled
     FROM ticket_days d LEFT JOIN orders o ON o.date = d.date
     GROUP BY d.id ORDER BY d.date`,
    { type: QueryTypes.SELECT },
  );
  const total = { total: 0, remaining: 0, sold: 0, orders: 0, cancelled: 0 };
  for (const d of days) {
    total.total += d.total;
    total.remaining += d.remaining;
    total.sold += d.sold;
    total.orders += d.orders;
    total.cancelled += d.cancelled;
  }
  return { days, total };
}
