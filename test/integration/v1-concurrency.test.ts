import { QueryTypes } from 'sequelize';
import { keys } from '../../lib/store/keys';
import { startApp, type TestApp } from '../helpers/app';

/** The synchronous V1 purchase under concurrency: never oversold, one ticket per user and day. */

interface Order {
  orderNo: string;
  userId: number;
  date: string;
  ticketCode: string;
}

describe('V1 purchase under concurrency', () => {
  let app: TestApp;

  const rows = <T extends object>(sql: string, bind: unknown[] = []) =>
    app.rt.db.query<T>(sql, { bind, type: QueryTypes.SELECT });
  const buy = (userId: number, date: string) =>
    app.post<Order>('/api/tickets/v1/purchase', { userId, date, verifyHash: app.hash(userId, date) });
  const countCodes = (codes: number[]) =>
    codes.reduce<Record<number, number>>((acc, c) => ({ ...acc, [c]: (acc[c] ?? 0) + 1 }), {});

  beforeAll(async () => {
    app = await startApp();
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('sells exactly 100 tickets to 300 concurrent buyers', async () => {
    const date = app.dates[1];
    const set = await app.put<{ total: number; remaining: number }>(
      `/api/admin/tickets/${date}`,
      { total: 100 },
      app.admin,
    );
    expect(set.body).toMatchObject({ code: 200, data: { total: 100, remaining: 100 } });
    expect(await app.rt.redis.get(keys.stock(date))).toBe('100');

    const users = Array.from({ length: 300 }, (_, i) => 1000 + i);
    const answers = await Promise.all(users.map((u) => buy(u, date)));

    const codes = answers.map((a) => a.body.code);
    expect(countCodes(codes)).toEqual({ 200: 100, 6002: 200 });
    for (const a of answers) expect(a.status).toBe(a.body.code === 200 ? 200 : 409);

    const orders = await rows<{ order_no: string; user_id: number; ticket_code: string }>(
      "SELECT order_no, user_id, ticket_code FROM orders WHERE date = $1 AND status = 'valid'",
      [date],
    );
    expect(orders).toHaveLength(100);
    expect(new Set(orders.map((o) => o.user_id)).size).toBe(100);
    expect(new Set(orders.map((o) => o.ticket_code)).size).toBe(100);
    // What the buyers were told is what the database holds.
    const told = answers
      .filter((a) => a.body.code === 200)
      .map((a) => `${a.body.data.userId}:${a.body.data.orderNo}:${a.body.data.ticketCode}`)
      .sort();
    expect(told).toEqual(orders.map((o) => `${o.user_id}:${o.order_no}:${o.ticket_code}`).sort());

    const [day] = await rows<{ total: number; remaining: number; sold: number }>(
      'SELECT total, remaining, sold FROM ticket_days WHERE date = $1',
      [date],
    );
    expect(day).toEqual({ total: 100, remaining: 0, sold: 100 });
    // The admission state agrees: nothing left, nothing in flight, one claim per buyer.
    expect(await app.rt.redis.get(keys.stock(date))).toBe('0');
    expect(await app.rt.redis.hlen(keys.pending(date))).toBe(0);
    expect(await app.rt.redis.hlen(keys.claims(date))).toBe(100);

    const list = await app.get<{ date: string; soldOut: boolean; remaining: number }[]>('/api/tickets/list');
    expect(list.body.data.find((d) => d.date === date)).toMatchObject({ soldOut: true, remaining: 0 });
  });

  it('gives one user exactly one ticket out of 50 concurrent purchases', async () => {
    const date = app.dates[2];
    const userId = 2000;
    const [before] = await rows<{ remaining: number; sold: number }>(
      'SELECT remaining, sold FROM ticket_days WHERE date = $1',
      [date],
    );
    const answers = await Promise.all(Array.from({ length: 50 }, () => buy(userId, date)));
    const codes = answers.map((a) => a.body.code);
    expect(codes.filter((c) => c === 200)).toHaveLength(1);
    for (const c of codes) expect([200, 6005, 7001]).toContain(c);

    const orders = await rows<{ order_no: string }>(
      "SELECT order_no FROM orders WHERE user_id = $1 AND date = $2 AND status = 'valid'",
      [userId, date],
    );
    expect(orders).toHaveLength(1);
    expect(orders[0].order_no).toBe(answers.find((a) => a.body.code === 200)?.body.data.orderNo);
    const [after] = await rows<{ remaining: number; sold: number }>(
      'SELECT remaining, sold FROM ticket_days WHERE date = $1',
      [date],
    );
    expect(after).toEqual({ remaining: before.remaining - 1, sold: before.sold + 1 });
    expect(Number(await app.rt.redis.get(keys.stock(date)))).toBe(after.remaining);
    expect(await app.rt.redis.hlen(keys.pending(date))).toBe(0);
  });

  it('keeps sold + remaining = total and one valid order per user and day', async () => {
    expect(
      await rows('SELECT date FROM ticket_days WHERE sold + remaining <> total OR remaining < 0'),
    ).toEqual([]);
    expect(
      await rows("SELECT user_id, date FROM orders WHERE status = 'valid' GROUP BY 1, 2 HAVING count(*) > 1"),
    ).toEqual([]);
    expect(
      await rows(
        `SELECT d.date FROM ticket_days d
         WHERE d.sold <> (SELECT count(*) FROM orders o WHERE o.date = d.date AND o.status = 'valid')`,
      ),
    ).toEqual([]);
  });
});
