import type Redis from 'ioredis';
import { QueryTypes, type Sequelize } from 'sequelize';
import { claimOf, keys } from '../store/keys';
import { setStock, type DayRow } from './days';

/**
 * Sets a day's admission stock in Redis from the database (RESTOCK): the remaining tickets less the
 * reservations in flight, not counting twice a reservation whose order is already committed but
 * not yet settled. Such orders are the pending messages read first, and any order placed since a
 * moment taken before that read (a message admitted after the read may be committed by the time
 * the database answers). Returns the stock set; null when the day does not exist.
 * `claimed` (a reconcile: the claims it has just written, by user id) also claims, from this same
 * read, the orders committed since the reconcile read the day's orders.
 */
export async function restockDay(
  { db, redis }: { db: Sequelize; redis: Redis },
  date: string,
  claimed?: ReadonlyMap<string, string>,
): Promise<number | null> {
  const [{ since }] = await db.query<{ since: Date }>('SELECT now() AS since', {
    type: QueryTypes.SELECT,
  });
  const pending = await redis.hkeys(keys.pending(date));
  type Sold = { userId: number; messageId: string | null; orderNo: string };
  const [day] = await db.query<{ remaining: number; committed: string[]; sold: Sold[] | null }>(
    `SELECT d.remaining,
            ARRAY(SELECT o.message_id FROM orders o
                  WHERE o.date = d.date AND o.status = 'valid' AND o.message_id IS NOT NULL
                    AND (o.message_id = ANY($2) OR o.created_at >= $3)) AS committed,
            CASE WHEN $4 THEN
              (SELECT coalesce(json_agg(json_build_object('userId', o.user_id, 'messageId', o.message_id,
                                                          'orderNo', o.order_no)), '[]')
               FROM orders o WHERE o.date = d.date AND o.status = 'valid')
            END AS sold
     FROM ticket_days d WHERE d.date = $1`,
    { bind: [date, pending, since, claimed !== undefined], type: QueryTypes.SELECT },
  );
  if (!day) return null;
  // Such an order is in this remaining: claimed before the stock is set, or its worker, finding no
  // reservation (the rebuild dropped it) and no claim naming it, would take its ticket off again (ADOPT).
  const unclaimed = (day.sold ?? []).filter((o) => claimed?.get(String(o.userId)) !== claimOf(o));
  if (unclaimed.length)
    await redis.hset(
      keys.claims(date),
      Object.fromEntries(unclaimed.map((o) => [String(o.userId), claimOf(o)])),
    );
  return redis.restock(keys.stock(date), keys.pending(date), day.remaining, ...day.committed);
}

/** SHIFT_STOCK's answer for a day whose stock key is not there. */
const NO_STOCK_KEY = -2;

/**
 * Moves a live day's admission stock by what the database just gave back (a cancelled ticket) or
 * changed (an admin's new total), atomically beside the admissions and settlements under way: a
 * stock recomputed from a read of the database would overwrite an order committed and settled
 * since that read, a ticket too many. A day without a stock key yet is set from the database; while
 * the cache is being rebuilt, the rebuild reads the database itself.
 */
export async function shiftStock(
  stores: { db: Sequelize; redis: Redis },
  date: string,
  delta: number,
): Promise<void> {
  const shifted = await stores.redis.shiftStock(keys.ready, keys.stock(date), delta);
  if (shifted === NO_STOCK_KEY) await restockDay(stores, date);
}

/**
 * An admin's new total for a day (created if new), in the database and then in the live stock;
 * answers the day and how far its remaining moved.
 */
export async function setDayTotal(
  stores: { db: Sequelize; redis: Redis },
  date: string,
  total: number,
  name?: string,
): Promise<{ day: DayRow; shift: number }> {
  const change = await setStock(stores.db, date, total, name);
  await shiftStock(stores, date, change.shift);
  return change;
}
