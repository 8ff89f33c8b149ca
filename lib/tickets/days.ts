import { QueryTypes, type InferAttributes, type Sequelize } from 'sequelize';
import { appError } from '../errors';
import { saleDates, weekdayOf, type SaleCalendar } from '../sale/calendar';
import { modelsOf, type TicketDay } from '../db/models';

export interface DayView extends DayRow {
  weekday: string;
  soldOut: boolean;
}

export const toView = (row: DayRow): DayView => ({
  ...row,
  weekday: weekdayOf(row.date),
  soldOut: row.remaining <= 0,
});

const DAY_ATTRIBUTES = ['date', 'name', 'total', 'remaining', 'sold', 'version', 'status'] as const;

export type DayRow = Pick<InferAttributes<TicketDay>, (typeof DAY_ATTRIBUTES)[number]>;
const COLUMNS = DAY_ATTRIBUTES.join(', ');

export async function findDays(db: Sequelize, dates: readonly string[]): Promise<DayRow[]> {
  const rows = await modelsOf(db).days.findAll({
    attributes: [...DAY_ATTRIBUTES],
    where: { date: [...dates] },
    order: [['date', 'ASC']],
    raw: true,
  });
  return rows as unknown as DayRow[]; // raw rows: exactly the attributes asked for
}

export async function findDay(db: Sequelize, date: string): Promise<DayRow | undefined> {
  const [row] = await findDays(db, [date]);
  return row;
}

/** The days currently on sale, in date order. */
export async function listSaleDays(db: Sequelize, cal: SaleCalendar, now = new Date()): Promise<DayView[]> {
  return (await findDays(db, saleDates(cal, now))).map(toView);
}

/**
 * The daily roll: creates the coming sale days with their default stock and stops past ones.
 * Idempotent; several nodes may run it at once.
 */
export async function rollDays(
  db: Sequelize,
  cal: SaleCalendar,
  defaultTotals: number[],
  now = new Date(),
): Promise<{ created: string[]; stopped: string[] }> {
  const dates = saleDates(cal, now);
  const totals = dates.map((_, i) => defaultTotals[Math.min(i, defaultTotals.length - 1)]);
  const created = await db.query<{ date: string }>(
    `INSERT INTO ticket_days (date, name, total, remaining)
     SELECT d, 'Sale day ' || to_char(d, 'YYYY-MM-DD'), t, t FROM unnest($1::date[], $2::int[]) AS x(d, t)
     ON CONFLICT (date) DO NOTHING RETURNING date`,
    { bind: [dates, totals], type: QueryTypes.SELECT },
  );
  const stopped = await db.query<{ date: string }>(
    `UPDATE ticket_days SET status = 'stopped', updated_at = now()
     WHERE date < $1::date AND status = 'on_sale' RETURNING date`,
    { bind: [dates[0]], type: QueryTypes.SELECT },
  );
  return { created: created.map((r) => r.date), stopped: stopped.map((r) => r.date) };
}

/**
 * Creates a day or sets its stock: `remaining` becomes `total - sold`; below `sold` is refused.
 * `shift` is how far `remaining` moved (0 for a new day), for the live admission stock.
 */
export async function setStock(
  db: Sequelize,
  date: string,
  total: number,
  name?: string,
): Promise<{ day: DayRow; shift: number }> {
  return db.transaction(async (transaction) => {
    const [row] = await db.query<DayRow>(
      `INSERT INTO ticket_days (date, name, total, remaining) VALUES ($1, $2, $3, $3)
       ON CONFLICT (date) DO UPDATE SET updated_at = now()
       RETURNING ${COLUMNS}`,
      { bind: [date, name ?? `Sale day ${date}`, total], type: QueryTypes.SELECT, transaction },
    );
    if (total < row.sold) {
      throw appError('INVALID_PARAM', `total ${total} is below the ${row.sold} tickets already sold`);
    }
    const [updated] = await db.query<DayRow>(
      `UPDATE ticket_days SET total = $2, remaining = $2 - sold, name = COALESCE($3, name),
         version = version + 1, updated_at = now()
       WHERE date = $1 RETURNING ${COLUMNS}`,
      { bind: [date, total, name ?? null], type: QueryTypes.SELECT, transaction },
    );
    // The row is locked since the upsert: the change of its remaining is exactly this update's.
    return { day: updated, shift: updated.remaining - row.remaining };
  });
}

/** Records the sale's pause in the database (the durable truth the cache is rebuilt from). */
export async function setSalePaused(db: Sequelize, paused: boolean): Promise<void> {
  await db.query(
    `UPDATE sale_state SET paused_at = CASE WHEN $1 THEN coalesce(paused_at, now()) END, updated_at = now()`,
    { bind: [paused] },
  );
}

export async function salePausedAt(db: Sequelize): Promise<Date | null> {
  const [row] = await db.query<{ pausedAt: Date | null }>('SELECT paused_at AS "pausedAt" FROM sale_state', {
    type: QueryTypes.SELECT,
  });
  return row?.pausedAt ?? null;
}
