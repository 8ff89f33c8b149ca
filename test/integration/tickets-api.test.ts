import { ServiceBroker } from 'moleculer';
import { QueryTypes } from 'sequelize';
import { checkHealth } from '../../lib/http/health';
import { addDays, weekdayOf } from '../../lib/sale/calendar';
import { checkVerifyHash, issueVerifyHash } from '../../lib/sale/verify-hash';
import { keys } from '../../lib/store/keys';
import { startApp, type HttpAnswer, type TestApp } from '../helpers/app';
import { dayRow, saleState } from '../helpers/purchase';

/** Every foundation endpoint (SPEC §3 tickets and V1) through HTTP, with its error codes. */

interface DayView {
  date: string;
  name: string;
  weekday: string;
  total: number;
  remaining: number;
  sold: number;
  soldOut: boolean;
  status: string;
}

interface Order {
  orderNo: string;
  messageId: string | null;
  userId: number;
  date: string;
  ticketCode: string;
  status: 'valid' | 'cancelled';
}

interface OrderRow {
  order_no: string;
  message_id: string | null;
  user_id: number;
  date: string;
  ticket_code: string;
  status: string;
}

const ONE_MB = 'x'.repeat(1024 * 1024);
const UNSAFE_ID = 2 ** 53 + 2; // a JSON number past Number.MAX_SAFE_INTEGER

describe('tickets API (foundation)', () => {
  let app: TestApp;
  let today: string;

  // Tables are built before the app starts: they name today's date TODAY.
  const atToday = (text: string) => text.replaceAll('TODAY', today);
  const rows = <T extends object>(sql: string, bind: unknown[] = []) =>
    app.rt.db.query<T>(sql, { bind, type: QueryTypes.SELECT });
  const ordersOf = (userId: number) =>
    rows<OrderRow>('SELECT * FROM orders WHERE user_id = $1 ORDER BY id', [userId]);
  const buy = (userId: number, date = today, verifyHash = app.hash(userId, date)) =>
    app.post<Order>('/api/tickets/v1/purchase', { userId, date, verifyHash });

  /** Everything a request could change: days, orders, and the admission state in Redis. */
  const state = () => saleState(app);

  const expectEnvelope = (answer: HttpAnswer, status: number, code: number) => {
    expect({ status: answer.status, code: answer.body.code }).toEqual({ status, code });
    expect(typeof answer.body.message).toBe('string');
    expect(answer.body).toHaveProperty('data');
  };

  beforeAll(async () => {
    app = await startApp();
    today = app.dates[0];
  });
  afterAll(async () => {
    await app?.stop();
  });

  describe('GET /api/tickets/list', () => {
    it('lists the three sale days with their default stock', async () => {
      const res = await app.get<DayView[]>('/api/tickets/list');
      expectEnvelope(res, 200, 200);
      expect(res.body.message).toBe('success');
      expect(res.body.data.map((d) => d.date)).toEqual(app.dates);
      expect(app.dates).toEqual([today, addDays(today, 1), addDays(today, 2)]);
      expect(res.body.data.map((d) => d.total)).toEqual([100, 150, 200]);
      for (const day of res.body.data) {
        expect(day).toMatchObject({
          weekday: weekdayOf(day.date),
          remaining: day.total,
          sold: 0,
          soldOut: false,
        });
      }
    });

    it('shows a day without tickets as sold out, and V1 answers 6002 for it', async () => {
      const date = app.dates[2];
      expect((await app.put(`/api/admin/tickets/${date}`, { total: 0 }, app.admin)).body.code).toBe(200);
      try {
        const list = await app.get<DayView[]>('/api/tickets/list');
        expect(list.body.data.find((d) => d.date === date)).toMatchObject({
          total: 0,
          remaining: 0,
          soldOut: true,
        });
        const res = await buy(1, date);
        expectEnvelope(res, 409, 6002);
        expect(await ordersOf(1)).toEqual([]);
      } finally {
        await app.put(`/api/admin/tickets/${date}`, { total: 200 }, app.admin);
      }
      expect(await dayRow(app, date)).toMatchObject({ total: 200, remaining: 200, sold: 0 });
    });
  });

  describe('GET /api/tickets/verify-hash', () => {
    it('issues a hash that the service accepts for this user and day', async () => {
      const res = await app.get<{ verifyHash: string; expiresAt: string }>(
        `/api/tickets/verify-hash?userId=10&date=${today}`,
      );
      expectEnvelope(res, 200, 200);
      const { verifyHash, expiresAt } = res.body.data;
      expect(checkVerifyHash(app.config.hashSecret, 10, today, verifyHash)).toBe(true);
      expect(checkVerifyHash(app.config.hashSecret, 11, today, verifyHash)).toBe(false);
      const lifetime = Date.parse(expiresAt) - Date.now();
      expect(lifetime).toBeGreaterThan(0);
      expect(lifetime).toBeLessThanOrEqual(app.config.hashTtlSeconds * 1000);
      // And it buys.
      expectEnvelope(await buy(10, today, verifyHash), 200, 200);
    });

    it('answers 6006 for an unknown user', async () => {
      const res = await app.get(`/api/tickets/verify-hash?userId=999999&date=${today}`);
      expectEnvelope(res, 404, 6006);
    });

    it('looks the user up in its own database while another broker of the process has fewer users', async () => {
      // Started after `app`: a model bound process-wide to the last pool made would ask this database.
      const other = await startApp({ SEED_USERS: '5' });
      try {
        expectEnvelope(await app.get(`/api/tickets/verify-hash?userId=20&date=${today}`), 200, 200);
        const there = await other.get(`/api/tickets/verify-hash?userId=20&date=${other.dates[0]}`);
        expectEnvelope(there, 404, 6006);
      } finally {
        await other.stop();
      }
    });

    it.each([
      ['yesterday', -1],
      ['the day after the window', 3],
      ['next year', 365],
    ])('answers 6001 for %s', async (_label, offset) => {
      const res = await app.get(`/api/tickets/verify-hash?userId=10&date=${addDays(today, offset)}`);
      expectEnvelope(res, 404, 6001);
    });

    it.each([
      'userId=10',
      'date=TODAY',
      '',
      'userId=abc&date=TODAY',
      'userId=10&date=2025-02-30',
      'userId=10&date=TODAY&extra=1',
    ])('answers 1001 for ?%s', async (query) => {
      expectEnvelope(await app.get(`/api/tickets/verify-hash?${atToday(query)}`), 400, 1001);
    });
  });

  describe('GET /api/tickets/validate-time', () => {
    it('allows every day of the window (open all day by default)', async () => {
      for (const date of app.dates) {
        const res = await app.get<{ allowed: boolean; reason: string | null; saleDates: string[] }>(
          `/api/tickets/validate-time?date=${date}`,
        );
        expectEnvelope(res, 200, 200);
        expect(res.body.data).toMatchObject({ date, allowed: true, reason: null, saleDates: app.dates });
      }
    });

    it('explains why a date outside the window is refused', async () => {
      const res = await app.get<{ allowed: boolean; reason: string; message: string }>(
        `/api/tickets/validate-time?date=${addDays(today, -1)}`,
      );
      expectEnvelope(res, 200, 200);
      expect(res.body.data).toMatchObject({ allowed: false, reason: 'date-outside-window' });
      expect(res.body.data.message).toContain(today);
    });

    it.each(['', 'date=', 'date=2025-13-01', 'date=20250101', 'date=TODAY&userId=1'])(
      'answers 1001 for ?%s',
      async (query) => {
        expectEnvelope(await app.get(`/api/tickets/validate-time?${atToday(query)}`), 400, 1001);
      },
    );
  });

  describe('POST /api/tickets/v1/purchase', () => {
    it('buys a ticket synchronously and records the order in PostgreSQL', async () => {
      const before = await dayRow(app, today);
      const res = await buy(20);
      expectEnvelope(res, 200, 200);
      expect(Object.keys(res.body.data).sort()).toEqual(['date', 'orderNo', 'ticketCode', 'userId']);
      const { orderNo, ticketCode } = res.body.data;
      expect(res.body.data).toMatchObject({ userId: 20, date: today });
      expect(orderNo).toMatch(/^[A-Za-z0-9-]+$/);
      expect(ticketCode).toMatch(/^[A-Za-z0-9-]+$/);

      const [row, ...others] = await ordersOf(20);
      expect(others).toEqual([]);
      expect(row).toMatchObject({
        order_no: orderNo,
        message_id: null,
        user_id: 20,
        date: today,
        ticket_code: ticketCode,
        status: 'valid',
      });
      expect(await dayRow(app, today)).toMatchObject({
        total: before.total,
        remaining: before.remaining - 1,
        sold: before.sold + 1,
      });
      // The admission state follows: one ticket fewer, the user's claim names the order.
      expect(Number(await app.rt.redis.get(keys.stock(today)))).toBe(before.remaining - 1);
      expect(await app.rt.redis.hget(keys.claims(today), '20')).toBe(`v1:${orderNo}`);
    });

    it('answers 6005 to a second purchase by the same user for the same day', async () => {
      expectEnvelope(await buy(21), 200, 200);
      const before = await state();
      expectEnvelope(await buy(21), 409, 6005);
      expect(await state()).toEqual(before);
      // Another day is another purchase.
      expectEnvelope(await buy(21, app.dates[1]), 200, 200);
    });

    it('answers 6006 for an unknown user with a valid hash, and gives the reservation back', async () => {
      const before = await state();
      const res = await buy(999_999);
      expectEnvelope(res, 404, 6006);
      expect(await state()).toEqual(before);
    });

    it('answers 6001 for a date outside the window of days', async () => {
      const date = addDays(today, 3);
      const before = await state();
      expectEnvelope(await buy(22, date), 404, 6001);
      expect(await state()).toEqual(before);
    });

    it('answers 6003 for a hash of another user', async () => {
      const before = await state();
      expectEnvelope(await buy(23, today, app.hash(24, today)), 403, 6003);
      expect(await state()).toEqual(before);
    });
  });

  describe('orders and cancel', () => {
    it("lists a user's orders, newest first, and an empty list for a user without any", async () => {
      const first = await buy(30, app.dates[0]);
      const second = await buy(30, app.dates[1]);
      const res = await app.get<Order[]>('/api/tickets/orders?userId=30');
      expectEnvelope(res, 200, 200);
      expect(res.body.data.map((o) => o.orderNo)).toEqual([
        second.body.data.orderNo,
        first.body.data.orderNo,
      ]);
      expect(res.body.data[0]).toMatchObject({
        userId: 30,
        date: app.dates[1],
        ticketCode: second.body.data.ticketCode,
        status: 'valid',
        messageId: null,
      });
      const none = await app.get<Order[]>('/api/tickets/orders?userId=31');
      expectEnvelope(none, 200, 200);
      expect(none.body.data).toEqual([]);
    });

    it.each(['', 'userId=abc', 'userId=0', 'userId=-4', 'userId=1.5', 'userId=30&date=2025-01-01'])(
      'answers 1001 for orders?%s',
      async (query) => {
        expectEnvelope(await app.get(`/api/tickets/orders?${query}`), 400, 1001);
      },
    );

    it('cancels an order, returns its ticket, and lets the same user buy again', async () => {
      const date = app.dates[1];
      const bought = await buy(40, date);
      expectEnvelope(bought, 200, 200);
      const { orderNo } = bought.body.data;
      const before = await dayRow(app, date);

      const res = await app.post<Order>('/api/tickets/orders/cancel', { userId: 40, orderNo });
      expectEnvelope(res, 200, 200);
      expect(res.body.data).toMatchObject({ orderNo, userId: 40, date, status: 'cancelled' });
      expect(await dayRow(app, date)).toMatchObject({
        total: before.total,
        remaining: before.remaining + 1,
        sold: before.sold - 1,
      });
      const list = await app.get<DayView[]>('/api/tickets/list');
      expect(list.body.data.find((d) => d.date === date)?.remaining).toBe(before.remaining + 1);
      expect(Number(await app.rt.redis.get(keys.stock(date)))).toBe(before.remaining + 1);
      expect(await app.rt.redis.hexists(keys.claims(date), '40')).toBe(0);

      // Cancelling again finds no valid order.
      expectEnvelope(await app.post('/api/tickets/orders/cancel', { userId: 40, orderNo }), 404, 6008);

      const again = await buy(40, date);
      expectEnvelope(again, 200, 200);
      expect(again.body.data.orderNo).not.toBe(orderNo);
      expect((await ordersOf(40)).map((o) => o.status)).toEqual(['cancelled', 'valid']);
      expect(await dayRow(app, date)).toMatchObject({ remaining: before.remaining, sold: before.sold });
    });

    it("answers 6008 for an unknown order number or another user's order, and cancels nothing", async () => {
      const bought = await buy(41);
      const { orderNo } = bought.body.data;
      const before = await state();
      expectEnvelope(
        await app.post('/api/tickets/orders/cancel', { userId: 41, orderNo: 'O000000000000' }),
        404,
        6008,
      );
      expectEnvelope(await app.post('/api/tickets/orders/cancel', { userId: 42, orderNo }), 404, 6008);
      expect(await state()).toEqual(before);
      expect((await ordersOf(41))[0].status).toBe('valid');
    });

    it.each([
      ['missing orderNo', { userId: 41 }],
      ['missing userId', { orderNo: 'O1' }],
      ['string userId', { userId: '41', orderNo: 'O1' }],
      ['orderNo with SQL', { userId: 41, orderNo: "O1' OR '1'='1" }],
      ['orderNo too long', { userId: 41, orderNo: 'O'.repeat(33) }],
      ['orderNo as number', { userId: 41, orderNo: 1 }],
      ['extra field', { userId: 41, orderNo: 'O1', status: 'valid' }],
    ])('answers 1001 to a cancel with %s', async (_label, body) => {
      const before = await state();
      expectEnvelope(await app.post('/api/tickets/orders/cancel', body), 400, 1001);
      expect(await state()).toEqual(before);
    });
  });

  describe('GET /api/tickets/stats', () => {
    it('balances sold + remaining = total per day and overall, with the valid orders counted', async () => {
      const res = await app.get<{
        days: { date: string; total: number; remaining: number; sold: number; orders: number }[];
        total: { total: number; remaining: number; sold: number; orders: number };
      }>('/api/tickets/stats');
      expectEnvelope(res, 200, 200);
      const { days, total } = res.body.data;
      expect(days.map((d) => d.date)).toEqual(app.dates);
      const valid = await rows<{ date: string; n: number }>(
        "SELECT date, count(*)::int AS n FROM orders WHERE status = 'valid' GROUP BY date",
      );
      for (const day of days) {
        expect(day.sold + day.remaining).toBe(day.total);
        expect(day.orders).toBe(valid.find((v) => v.date === day.date)?.n ?? 0);
        expect(day.sold).toBe(day.orders);
      }
      expect(total.sold + total.remaining).toBe(total.total);
      expect(total.total).toBe(days.reduce((s, d) => s + d.total, 0));
      expect(total.sold).toBeGreaterThan(0);
    });
  });

  describe('routing and the envelope', () => {
    it.each(['/api/nope', '/api/tickets/nope', '/api/tickets/list/extra', '/nope'])(
      'answers an unknown route %s with a 404 envelope',
      async (path) => {
        expectEnvelope(await app.get(path), 404, 404);
      },
    );

    it.each([
      ['GET', '/api/tickets/v1/purchase'],
      ['POST', '/api/tickets/list'],
      ['PUT', '/api/tickets/orders'],
      ['DELETE', '/api/tickets/orders/cancel'],
      ['PATCH', '/api/tickets/stats'],
    ])('answers %s %s (wrong method) with an envelope, not a 500', async (method, path) => {
      const res = await fetch(app.baseUrl + path, { method });
      const body = (await res.json()) as { code: number; message: string };
      expect([404, 405]).toContain(res.status);
      expect(body.code).toBe(res.status);
      expect(typeof body.message).toBe('string');
    });

    it.each([
      ['text/plain', (b: string) => b],
      ['application/x-www-form-urlencoded', (b: string) => new URLSearchParams(JSON.parse(b)).toString()],
      ['application/xml', () => '<purchase><userId>50</userId></purchase>'],
    ])('refuses a %s body with 1001 and changes nothing', async (type, encode) => {
      const body = JSON.stringify({ userId: 50, date: today, verifyHash: app.hash(50, today) });
      const before = await state();
      const res = await fetch(`${app.baseUrl}/api/tickets/v1/purchase`, {
        method: 'POST',
        headers: { 'content-type': type },
        body: encode(body),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: number }).code).toBe(1001);
      expect(await state()).toEqual(before);
    });

    it.each([
      ['truncated JSON', '{"userId":50,'],
      ['single quotes', "{'userId':50}"],
      ['a bare string', '"purchase"'],
      ['null', 'null'],
      ['a number', '42'],
      ['trailing garbage', '{"userId":50}}'],
    ])('refuses invalid JSON (%s) with 1001', async (_label, raw) => {
      const before = await state();
      expectEnvelope(await app.post('/api/tickets/v1/purchase', raw), 400, 1001);
      expect(await state()).toEqual(before);
    });

    it('refuses a body over the 16 kb limit with 413 / 1001 and changes nothing', async () => {
      const before = await state();
      const res = await app.post('/api/tickets/v1/purchase', {
        userId: 51,
        date: today,
        verifyHash: app.hash(51, today),
        padding: 'x'.repeat(17 * 1024),
      });
      expectEnvelope(res, 413, 1001);
      expect(await state()).toEqual(before);
    });

    it('refuses a body whose content encoding is broken with 1001', async () => {
      const before = await state();
      const res = await fetch(`${app.baseUrl}/api/tickets/v1/purchase`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body: 'this is not gzip',
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: number }).code).toBe(1001);
      expect(await state()).toEqual(before);
    });
  });

  describe('operations', () => {
    it('/health shows postgres, redis and nats up', async () => {
      const res = await app.get<{
        status: string;
        dependencies: Record<string, { up: boolean }>;
      }>('/health');
      expectEnvelope(res, 200, 200);
      expect(res.body.data.status).toBe('up');
      expect(res.body.data.dependencies).toMatchObject({
        postgres: { up: true },
        redis: { up: true },
        nats: { up: true },
      });
    });

    it('/health says "starting" (answered 503) until every local service of the node has started', async () => {
      // A node whose HTTP door opened before its purchase service registered would answer 5030 to
      // purchases: a load balancer reading /health must wait.
      const notYet = new ServiceBroker({ logger: false });
      expect((await checkHealth(notYet, app.rt)).status).toBe('starting');
      expect((await checkHealth(app.broker, app.rt)).status).toBe('up');
    });

    it('/metrics is Prometheus text with the service metrics', async () => {
      const res = await fetch(`${app.baseUrl}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await res.text();
      expect(text).toMatch(/^# (HELP|TYPE) /m);
      expect(text).toMatch(/^# TYPE miaosha_\w+ (counter|gauge|histogram)$/m);
      // Every sample line is `name{labels} value`.
      const samples = text.split('\n').filter((l) => l && !l.startsWith('#'));
      expect(samples.length).toBeGreaterThan(0);
      for (const line of samples) {
        expect(line).toMatch(/^[a-zA-Z_:][\w:]*(\{.*\})? ([-+]?[\d.eE+-]+|NaN|[+-]Inf)( \d+)?$/);
      }
    });
  });

  describe('bad input never sells, never 500s', () => {
    const U = 60;
    const good = () => ({ userId: U, date: today, verifyHash: app.hash(U, today) });
    const without = (field: string) => {
      const body: Record<string, unknown> = good();
      delete body[field];
      return body;
    };
    const withValue = (field: string, value: unknown) => ({ ...good(), [field]: value });

    const v1Bodies: [string, () => unknown][] = [
      ['an empty object', () => ({})],
      ['no userId', () => without('userId')],
      ['no date', () => without('date')],
      ['an extra field', () => ({ ...good(), quantity: 2 })],
      ['an extra status field', () => ({ ...good(), status: 'SUCCESS' })],
      ['a string userId', () => withValue('userId', String(U))],
      ['an array userId', () => withValue('userId', [U])],
      ['an object userId', () => withValue('userId', { id: U })],
      ['a boolean userId', () => withValue('userId', true)],
      ['a null userId', () => withValue('userId', null)],
      ['a zero userId', () => withValue('userId', 0)],
      ['a negative userId', () => withValue('userId', -U)],
      ['a fractional userId', () => withValue('userId', U + 0.5)],
      ['a userId past 2^53', () => withValue('userId', UNSAFE_ID)],
      ['a huge userId', () => `{"userId":1e400,"date":"${today}","verifyHash":"${app.hash(U, today)}"}`],
      ['date 2025-02-30', () => withValue('date', '2025-02-30')],
      ['date 2025-13-01', () => withValue('date', '2025-13-01')],
      ['date 20250101 (string)', () => withValue('date', '20250101')],
      ['date 20250101 (number)', () => withValue('date', 20250101)],
      ['a date with a time', () => withValue('date', `${today}T00:00:00Z`)],
      ['an empty date', () => withValue('date', '')],
      ['a null date', () => withValue('date', null)],
      ['an array date', () => withValue('date', [today])],
      ['an object date', () => withValue('date', { date: today })],
      ['a boolean date', () => withValue('date', true)],
      ['a numeric verifyHash', () => withValue('verifyHash', 12345)],
      ['an array verifyHash', () => withValue('verifyHash', [app.hash(U, today)])],
      ['an object verifyHash', () => withValue('verifyHash', { hash: app.hash(U, today) })],
      ['a 1 kb verifyHash', () => withValue('verifyHash', 'h'.repeat(1024))],
      ['a top-level array', () => [good()]],
      ['an empty array', () => []],
      ['a constructor key', () => `{"constructor":{"prototype":{"admin":true}},"userId":${U}}`],
      ['a 1 MB userId', () => withValue('userId', ONE_MB)],
      ['a 1 MB date', () => withValue('date', ONE_MB)],
      ['a 1 MB verifyHash', () => withValue('verifyHash', ONE_MB)],
    ];

    const queries: string[] = [
      ...['verify-hash', 'orders'].flatMap((ep) => {
        const date = ep === 'verify-hash' ? '&date=TODAY' : '';
        return [
          `${ep}?userId=abc${date}`,
          `${ep}?userId=${U}abc${date}`,
          `${ep}?userId=0${date}`,
          `${ep}?userId=-${U}${date}`,
          `${ep}?userId=${U}.5${date}`,
          `${ep}?userId=9007199254740993${date}`,
          `${ep}?userId=99999999999999999999999${date}`,
          `${ep}?userId=true${date}`,
          `${ep}?userId=null${date}`,
          `${ep}?userId=${date}`,
          `${ep}?userId[]=${U}&userId[]=${U + 1}${date}`,
          `${ep}?userId[id]=${U}${date}`,
          `${ep}?userId=${U}&userId=${U}${date}`,
          `${ep}?userId=${U}${date}&unknown=1`,
          `${ep}?userId=${ONE_MB}${date}`,
        ];
      }),
      ...['verify-hash?userId=60&', 'validate-time?'].flatMap((prefix) =>
        [
          '2025-02-30',
          '2025-13-01',
          '20250101',
          '2025-1-1',
          'TODAYT00:00:00Z',
          '',
          'null',
          'TODAY&date=TODAY',
          '[TODAY]',
          ONE_MB,
        ].map((d) => `${prefix}date=${encodeURIComponent(d)}`),
      ),
      'validate-time?date[]=TODAY',
      'validate-time?date[x]=TODAY',
    ];

    let before: Awaited<ReturnType<typeof state>>;
    beforeAll(async () => {
      before = await state();
    });

    // SPEC §3: a missing verify hash is a 6003 like a wrong one, not a format error.
    it.each([
      ['no verifyHash', () => without('verifyHash')],
      ['a null verifyHash', () => withValue('verifyHash', null)],
      ['an empty verifyHash', () => withValue('verifyHash', '')],
    ])('V1 purchase with %s answers 6003', async (_label, make) => {
      expectEnvelope(await app.post('/api/tickets/v1/purchase', make()), 403, 6003);
    });

    it.each(v1Bodies)('V1 purchase with %s answers 1001', async (_label, make) => {
      const res = await app.post('/api/tickets/v1/purchase', make());
      expect(res.body.code).toBe(1001);
      expect([400, 413]).toContain(res.status);
      expect(typeof res.body.message).toBe('string');
    });

    it.each(queries.map((q) => [q.length > 200 ? `${q.slice(0, 60)}… (${q.length} chars)` : q, q]))(
      'GET /api/tickets/%s answers 1001',
      async (_label, query) => {
        const res = await app.get(`/api/tickets/${atToday(query)}`);
        expect(res.body.code).toBe(1001);
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
      },
    );

    it('left no order and no stock change behind, and the service still answers', async () => {
      expect(await state()).toEqual(before);
      expect(await ordersOf(U)).toEqual([]);
      expectEnvelope(await app.get('/health'), 200, 200);
      // The user of all these bad requests can still buy normally.
      expectEnvelope(await buy(U), 200, 200);
    });
  });

  it('keeps sold + remaining = total in the database after everything above', async () => {
    const unbalanced = await rows(
      'SELECT date FROM ticket_days WHERE sold + remaining <> total OR remaining < 0',
    );
    expect(unbalanced).toEqual([]);
    const [{ n }] = await rows<{ n: number }>(
      `SELECT count(*)::int AS n FROM ticket_days d
       WHERE d.sold <> (SELECT count(*) FROM orders o WHERE o.date = d.date AND o.status = 'valid')`,
    );
    expect(n).toBe(0);
    // An issued-but-foreign-secret hash is of no use either.
    const forged = issueVerifyHash('another-secret-0123456789abcdefghijkl', 70, today, 3600).verifyHash;
    expectEnvelope(await buy(70, today, forged), 403, 6003);
  });
});
