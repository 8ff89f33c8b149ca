import type Redis from 'ioredis';
import { QueryTypes, type InferAttributes, type Sequelize } from 'sequelize';
import { modelsOf, type Order } from '../db/models';
import { appError } from '../errors';
import { claimOf, keys } from '../store/keys';
import { shiftStock } from './stock';

const ORDER_ATTRIBUTES = [
  'orderNo',
  'messageId',
  'userId',
  'date',
  'ticketCode',
  'status',
  'createdAt',
  'cancelledAt',
] as const;

/** An order as the API shows it. */
export type OrderView = Pick<InferAttributes<Order>, (typeof ORDER_ATTRIBUTES)[number]>;

/** The same columns for raw SQL: `order_no AS "orderNo"`, … */
export const ORDER_COLUMNS = ORDER_ATTRIBUTES.map(
  (name) => `${name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)} AS "${name}"`,
).join(', ');

/** A user's orders, newest first (the listing of SPEC §3; at most 500). */
export async function ordersOfUser(db: Sequelize, userId: number): Promise<OrderView[]> {
  const rows = await modelsOf(db).orders.findAll({
    attributes: [...ORDER_ATTRIBUTES],
    where: { userId },
    order: [
      ['createdAt', 'DESC'],
      ['id', 'DESC'],
    ],
    limit: 500,
    raw: true,
  });
  return rows as unknown as OrderView[]; // raw rows: exactly the attributes asked for
}

export async function orderByMessageId(db: Sequelize, messageId: string): Promise<OrderView | undefined> {
  const [row] = await db.query<OrderView>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE message_id = $1`, {
    bind: [messageId],
    type: QueryTypes.SELECT,
  });
  return row;
}

export async function validOrdersOfDay(db: Sequelize, date: string): Promise<OrderView[]> {
  const rows = await modelsOf(db).orders.findAll({
    attributes: [...ORDER_ATTRIBUTES],
    where: { date, status: 'valid' },
    raw: true,
  });
  return rows as unknown as OrderView[];
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
export async function cancelOrder(
  stores: { db: Sequelize; redis: Redis },
  userId: number,
  orderNo: string,
): Promise<OrderView> {
  const { db, redis } = stores;
  const order = await db.transaction(async (transaction) => {
    const [cancelled] = await db.query<OrderView>(
      `UPDATE orders SET status = 'cancelled', cancelled_at = now(), updated_at = now()
       WHERE order_no = $1 AND user_id = $2 AND status = 'valid' RETURNING ${ORDER_COLUMNS}`,
      { bind: [orderNo, userId], type: QueryTypes.SELECT, transaction },
    );
    if (!cancelled) throw appError('NOT_FOUND', 'No valid order with this number for this user');
    await db.query(
      `UPDATE ticket_days SET remaining = remaining + 1, sold = sold - 1, version = version + 1,
         updated_at = now() WHERE date = $1`,
      { bind: [cancelled.date], transaction },
    );
    return cancelled;
  });
  const claim = claimOf(order);
  const claims = keys.claims(order.date);
  const pipeline = redis.multi();
  if ((await redis.hget(claims, String(userId))) === claim) pipeline.hdel(claims, String(userId));
  if (order.messageId) pipeline.hset(keys.result(order.messageId), 'cancelledAt', new Date().toISOString());
  await pipeline.exec();
  await shiftStock(stores, order.date, 1);
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
