import { QueryTypes } from 'sequelize';
import { addDays } from '../../lib/sale/calendar';
import { issueVerifyHash } from '../../lib/sale/verify-hash';
import { keys } from '../../lib/store/keys';
import { ADMIN_TOKEN, eventually, startApp, type HttpAnswer, type TestApp } from '../helpers/app';
import { dayRow, saleState } from '../helpers/purchase';

/** Verify hashes that cannot be forged or reused, the sale pause, and the admin API and its token. */

interface Order {
  orderNo: string;
  ticketCode: string;
}

interface DayView {
  date: string;
  total: number;
  remaining: number;
  sold: number;
  status: string;
}

const PATHS = {
  v1: '/api/tickets/v1/purchase',
  v2: '/api/tickets/v2/purchase',
} as const;

describe('security and admin', () => {
  let app: TestApp;

  const rows = <T extends object>(sql: string, bind: unknown[] = []) =>
    app.rt.db.query<T>(sql, { bind, type: QueryTypes.SELECT });
  /** Everything a refused request must leave alone. */
  async function state() {
    const before = await saleState(app);
    const paused = await app.rt.redis.exists(keys.paused);
    return { ...before, paused };
  }

  const expectCode = (answer: HttpAnswer, status: number, code: number) =>
    expect({ status: answer.status, code: answer.body.code }).toEqual({ status, code });

  /** Waits until a V2 message is terminal and returns its status. */
  const settled = (messageId: string) =>
    eventually(async () => {
      const res = await app.get<{ status: string }>(
        `/api/tickets/v2/purchase/result?messageId=${messageId}&waitMs=2000`,
      );
      return ['SUCCESS', 'FAILED'].includes(res.body.data?.status) ? res.body.data.status : undefined;
    }, 30_000);

  beforeAll(async () => {
    // No periodic roll during the suite: the roll test controls when days are created and stopped.
    app = await startApp({ SALE_ROLL_INTERVAL_MS: '3600000' });
  });
  afterAll(async () => {
    await app?.stop();
  });

  describe('verify hash', () => {
    const secret = () => app.config.hashSecret;
    const flipLast = (hash: string) => hash.slice(0, -1) + (hash.endsWith('A') ? 'B' : 'A');
    const cases: [string, (u: number, d: string) => string][] = [
      ['a hash issued to another user', (u, d) => issueVerifyHash(secret(), u + 1, d, 3600).verifyHash],
      [
        'a hash issued for another day',
        (u, d) => issueVerifyHash(secret(), u, addDays(d, 1), 3600).verifyHash,
      ],
      ['a tampered signature', (u, d) => flipLast(issueVerifyHash(secret(), u, d, 3600).verifyHash)],
      [
        'a tampered expiry',
        (u, d) => {
          const [exp, sig] = issueVerifyHash(secret(), u, d, 60).verifyHash.split('.');
          return `${Number(exp) + 86_400}.${sig}`;
        },
      ],
      [
        'an expired hash',
        (u, d) => issueVerifyHash(secret(), u, d, 3600, Date.now() - 2 * 3600_000).verifyHash,
      ],
      [
        'a hash signed with another secret',
        (u, d) => issueVerifyHash('someone-elses-secret-0123456789abcdef', u, d, 3600).verifyHash,
      ],
      ['an unsigned guess', () => `${Math.floor(Date.now() / 1000) + 3600}.${'A'.repeat(43)}`],
    ];

    it.each(cases)('refuses %s with 6003 on V1 and V2, creating nothing', async (_label, make) => {
      const before = await state();
      const date = app.dates[0];
      for (const [i, path] of [PATHS.v1, PATHS.v2].entries()) {
        const userId = 100 + i;
        const res = await app.post(path, { userId, date, verifyHash: make(userId, date) });
        expectCode(res, 403, 6003);
      }
      expect(await state()).toEqual(before);
    });

    it('accepts the hash issued by the service for this user and day, on V1 and V2', async () => {
      const date = app.dates[0];
      const issued = await app.get<{ verifyHash: string }>(
        `/api/tickets/verify-hash?userId=110&date=${date}`,
      );
      const v1 = await app.post(PATHS.v1, { userId: 110, date, verifyHash: issued.body.data.verifyHash });
      expectCode(v1, 200, 200);
      const issued2 = await app.get<{ verifyHash: string }>(
        `/api/tickets/verify-hash?userId=111&date=${date}`,
      );
      const v2 = await app.post<{ messageId: string }>(PATHS.v2, {
        userId: 111,
        date,
        verifyHash: issued2.body.data.verifyHash,
      });
      expectCode(v2, 200, 200);
      expect(await settled(v2.body.data.messageId)).toBe('SUCCESS');
    });
  });

  describe('pause', () => {
    afterAll(async () => {
      // Never leave the sale paused for the tests below, even on failure.
      await app.post('/api/admin/sale/resume', {}, app.admin);
    });

    it('refuses V1 and V2 purchases with 6007 until resumed', async () => {
      const date = app.dates[0];
      const paused = await app.post<{ paused: boolean }>('/api/admin/sale/pause', {}, app.admin);
      expectCode(paused, 200, 200);
      expect(paused.body.data).toEqual({ paused: true });

      const before = await state();
      const v1 = await app.post(PATHS.v1, { userId: 120, date, verifyHash: app.hash(120, date) });
      expectCode(v1, 503, 6007);
      const v2 = await app.post(PATHS.v2, { userId: 121, date, verifyHash: app.hash(121, date) });
      expectCode(v2, 503, 6007);
      expect(await state()).toEqual(before);

      const time = await app.get<{ allowed: boolean; reason: string }>(
        `/api/tickets/validate-time?date=${date}`,
      );
      expect(time.body.data).toMatchObject({ allowed: false, reason: 'paused' });

      const resumed = await app.post<{ paused: boolean }>('/api/admin/sale/resume', {}, app.admin);
      expectCode(resumed, 200, 200);
      expect(resumed.body.data).toEqual({ paused: false });

      expectCode(await app.post(PATHS.v1, { userId: 120, date, verifyHash: app.hash(120, date) }), 200, 200);
      // The gateway's local flag follows the broadcast; a refused submit creates nothing, so retry.
      const messageId = await eventually(async () => {
        const res = await app.post<{ messageId: string }>(PATHS.v2, {
          userId: 121,
          date,
          verifyHash: app.hash(121, date),
        });
        if (res.body.code === 6007) return undefined;
        expectCode(res, 200, 200);
        return res.body.data.messageId;
      }, 10_000);
      expect(await settled(messageId)).toBe('SUCCESS');
      const time2 = await app.get<{ allowed: boolean }>(`/api/tickets/validate-time?date=${date}`);
      expect(time2.body.data.allowed).toBe(true);
    });
  });

  describe('admin authorization', () => {
    const endpoints: [string, string, unknown][] = [
      ['PUT', '/api/admin/tickets/DATE', { total: 1 }],
      ['PUT', '/api/admin/tickets/NEWDATE', { total: 5 }],
      ['POST', '/api/admin/tickets/roll', {}],
      ['POST', '/api/admin/sale/pause', {}],
      ['POST', '/api/admin/sale/resume', {}],
      ['GET', '/api/admin/dlq', undefined],
      ['POST', '/api/admin/dlq/some-message-id/resend', {}],
      ['POST', '/api/admin/reconcile', {}],
    ];
    const headers: [string, Record<string, string>][] = [
      ['no token', {}],
      ['a wrong token', { authorization: 'Bearer wrong-token-0123456789abc' }],
      ['the token plus a character', { authorization: `Bearer ${ADMIN_TOKEN}x` }],
      ['a prefix of the token', { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}` }],
      ['the token without the Bearer scheme', { authorization: ADMIN_TOKEN }],
      ['the token as Basic', { authorization: `Basic ${ADMIN_TOKEN}` }],
      ['an empty bearer', { authorization: 'Bearer ' }],
    ];

    const request = (
      target: TestApp,
      method: string,
      path: string,
      body: unknown,
      h: Record<string, string>,
    ) => {
      const url = path.replace('NEWDATE', addDays(target.dates[0], 20)).replace('DATE', target.dates[0]);
      if (method === 'GET') return target.get(url, h);
      if (method === 'PUT') return target.put(url, body, h);
      return target.post(url, body, h);
    };

    it.each(headers)('answers 4001 on every admin endpoint with %s, changing nothing', async (_label, h) => {
      const before = await state();
      for (const [method, path, body] of endpoints) {
        const res = await request(app, method, path, body, h);
        expect({ endpoint: `${method} ${path}`, status: res.status, code: res.body.code }).toEqual({
          endpoint: `${method} ${path}`,
          status: 401,
          code: 4001,
        });
      }
      expect(await state()).toEqual(before);
      expect(await rows('SELECT date FROM ticket_days WHERE date = $1', [addDays(app.dates[0], 20)])).toEqual(
        [],
      );
    });

    it('refuses every admin call, even with a token, on an instance started without ADMIN_TOKEN', async () => {
      const noAdmin = await startApp({ ADMIN_TOKEN: '' });
      try {
        expect(noAdmin.config.adminToken).toBeNull();
        for (const h of [noAdmin.admin, {}, { authorization: 'Bearer ' }, { authorization: 'Bearer null' }]) {
          for (const [method, path, body] of endpoints) {
            const res = await request(noAdmin, method, path, body, h);
            expect({ endpoint: `${method} ${path}`, status: res.status, code: res.body.code }).toEqual({
              endpoint: `${method} ${path}`,
              status: 401,
              code: 4001,
            });
          }
        }
        expect(await noAdmin.rt.redis.exists(keys.paused)).toBe(0);
        const list = await noAdmin.get<DayView[]>('/api/tickets/list');
        expect(list.body.data.map((d) => d.total)).toEqual([100, 150, 200]);
      } finally {
        await noAdmin.stop();
      }
    });
  });

  describe('admin calls', () => {
    it('creates a new day with PUT /api/admin/tickets/:date', async () => {
      const date = addDays(app.dates[0], 10);
      const res = await app.put<DayView & { name: string; soldOut: boolean }>(
        `/api/admin/tickets/${date}`,
        { total: 42, name: 'Special day' },
        app.admin,
      );
      expectCode(res, 200, 200);
      expect(res.body.data).toMatchObject({
        date,
        name: 'Special day',
        total: 42,
        remaining: 42,
        sold: 0,
        soldOut: false,
      });
      expect(await dayRow(app, date)).toMatchObject({ total: 42, remaining: 42, sold: 0, status: 'on_sale' });
      expect(await app.rt.redis.get(keys.stock(date))).toBe('42');
    });

    it('sets the stock to total - sold, refuses a total below sold with 1001, and accepts total = sold', async () => {
      const date = app.dates[1];
      for (const userId of [130, 131]) {
        expectCode(await app.post(PATHS.v1, { userId, date, verifyHash: app.hash(userId, date) }), 200, 200);
      }
      const day = await dayRow(app, date);
      expect(day.sold).toBe(2);

      const raised = await app.put<DayView>(`/api/admin/tickets/${date}`, { total: 300 }, app.admin);
      expectCode(raised, 200, 200);
      expect(raised.body.data).toMatchObject({ total: 300, remaining: 298, sold: 2 });
      expect(await app.rt.redis.get(keys.stock(date))).toBe('298');

      const before = await state();
      const below = await app.put(`/api/admin/tickets/${date}`, { total: 1 }, app.admin);
      expectCode(below, 400, 1001);
      expect(await state()).toEqual(before);

      const exact = await app.put<DayView & { soldOut: boolean }>(
        `/api/admin/tickets/${date}`,
        { total: 2 },
        app.admin,
      );
      expectCode(exact, 200, 200);
      expect(exact.body.data).toMatchObject({ total: 2, remaining: 0, sold: 2, soldOut: true });
      expect(await app.rt.redis.get(keys.stock(date))).toBe('0');
      expectCode(await app.post(PATHS.v1, { userId: 132, date, verifyHash: app.hash(132, date) }), 409, 6002);

      await app.put(`/api/admin/tickets/${date}`, { total: 150 }, app.admin);
      expect(await dayRow(app, date)).toMatchObject({ total: 150, remaining: 148, sold: 2 });
    });

    it.each([
      ['a negative total', 'DATE', { total: -1 }],
      ['a string total', 'DATE', { total: '10' }],
      ['a fractional total', 'DATE', { total: 1.5 }],
      ['no total', 'DATE', {}],
      ['an extra field', 'DATE', { total: 10, remaining: 10 }],
      ['an impossible date', '2025-02-30', { total: 10 }],
      ['a malformed date', '20250101', { total: 10 }],
    ])('refuses %s with 1001', async (_label, date, body) => {
      const before = await state();
      const res = await app.put(`/api/admin/tickets/${date.replace('DATE', app.dates[0])}`, body, app.admin);
      expectCode(res, 400, 1001);
      expect(await state()).toEqual(before);
    });

    it('rolls: creates a missing sale day and stops past ones', async () => {
      const past = addDays(app.dates[0], -1);
      // A past day still on sale, and the last sale day missing.
      expectCode(await app.put(`/api/admin/tickets/${past}`, { total: 10 }, app.admin), 200, 200);
      const last = app.dates[2];
      await app.rt.db.query('DELETE FROM orders WHERE date = $1', { bind: [last] });
      await app.rt.db.query('DELETE FROM ticket_days WHERE date = $1', { bind: [last] });

      const res = await app.post<{ created: string[]; stopped: string[] }>(
        '/api/admin/tickets/roll',
        {},
        app.admin,
      );
      expectCode(res, 200, 200);
      expect(res.body.data.created).toEqual([last]);
      expect(res.body.data.stopped).toEqual([past]);
      expect(await dayRow(app, last)).toMatchObject({
        total: 200,
        remaining: 200,
        sold: 0,
        status: 'on_sale',
      });
      expect(await dayRow(app, past)).toMatchObject({ status: 'stopped' });
      expect(await app.rt.redis.get(keys.stock(last))).toBe('200');

      // Rolling again changes nothing.
      const again = await app.post<{ created: string[]; stopped: string[] }>(
        '/api/admin/tickets/roll',
        {},
        app.admin,
      );
      expect(again.body.data).toEqual({ created: [], stopped: [] });
    });

    it('reconciles the cache with the database and reports what differed', async () => {
      const date = app.dates[0];
      const bought = await app.post<Order>(PATHS.v1, { userId: 140, date, verifyHash: app.hash(140, date) });
      expectCode(bought, 200, 200);
      const { remaining } = await dayRow(app, date);

      // Damage the cache: wrong stock, a lost claim, a stray claim.
      await app.rt.redis.set(keys.stock(date), remaining + 500);
      await app.rt.redis.hdel(keys.claims(date), '140');
      await app.rt.redis.hset(keys.claims(date), '141', 'v1:NO-SUCH-ORDER');

      const res = await app.post<{
        differences: number;
        days: {
          date: string;
          stock: { cached: number | null; expected: number };
          claimsAdded: number;
          claimsRemoved: number;
        }[];
      }>('/api/admin/reconcile', {}, app.admin);
      expectCode(res, 200, 200);
      const report = res.body.data.days.find((d) => d.date === date);
      expect(report).toMatchObject({
        stock: { cached: remaining + 500, expected: remaining },
        claimsAdded: 1,
        claimsRemoved: 1,
      });
      expect(res.body.data.differences).toBeGreaterThanOrEqual(3);

      expect(await app.rt.redis.get(keys.stock(date))).toBe(String(remaining));
      expect(await app.rt.redis.hget(keys.claims(date), '140')).toBe(`v1:${bought.body.data.orderNo}`);
      expect(await app.rt.redis.hexists(keys.claims(date), '141')).toBe(0);
      // The repaired claim holds: the buyer cannot buy twice, the stray user can buy.
      expectCode(await app.post(PATHS.v1, { userId: 140, date, verifyHash: app.hash(140, date) }), 409, 6005);
      expectCode(await app.post(PATHS.v1, { userId: 141, date, verifyHash: app.hash(141, date) }), 200, 200);

      const clean = await app.post<{ differences: number }>('/api/admin/reconcile', {}, app.admin);
      expect(clean.body.data.differences).toBe(0);
    });
  });

  it('ends with sold + remaining = total everywhere', async () => {
    expect(
      await rows('SELECT date FROM ticket_days WHERE sold + remaining <> total OR remaining < 0'),
    ).toEqual([]);
  });
});
