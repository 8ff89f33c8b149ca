import type Redis from 'ioredis';
import { QueryTypes, type Sequelize } from 'sequelize';
import { keys } from '../store/keys';

/**
 * Sets a day's admission stock in Redis from the database (RESTOCK): the remaining tickets less the
 * reservations in flight, not counting twice a reservation whose order is already committed but
 * not yet settled. Such orders are the pending messages read first, and any order placed since a
 * moment taken before that read (a message admitted after the read may be committed by the time
 * the database answers). Returns the stock set; null when the day does not exist.
 */
export async function restockDay(
  { db, redis }: { db: Sequelize; redis: Redis },
  date: string,
): Promise<number | null> {
  const [{ since }] = await db.query<{ since: Date }>('SELECT now() AS since', {
    type: QueryTypes.SELECT,
  });
  const pending = await redis.hkeys(keys.pending(date));
  const [day] = await db.query<{ remaining: number; committed: string[] }>(
    `SELECT d.remaining,
            ARRAY(SELECT o.message_id FROM orders o
                  WHERE o.date = d.date AND o.status = 'valid' AND o.message_id IS NOT NULL
                    AND (o.message_id = ANY($2) OR o.created_at >= $3)) AS committed
     FROM ticket_days d WHERE d.date = $1`,
    { bind: [date, pending, since], type: QueryTypes.SELECT },
  );
  if (!day) return null;
  return redis.restock(keys.stock(date), keys.pending(date), day.remaining, ...day.committed);
}
