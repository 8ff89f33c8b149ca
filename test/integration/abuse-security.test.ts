import crypto, { createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import type { Service } from 'moleculer';
import { QueryTypes } from 'sequelize';
import { checkVerifyHash, issueVerifyHash } from '../../lib/sale/verify-hash';
import { keys } from '../../lib/store/keys';
import { ADMIN_TOKEN, eventually, startApp, type TestApp } from '../helpers/app';
import {
  assertCleanAnswer,
  closeAgent,
  leaksIn,
  rawRequest,
  snapshotState,
  type RawRequest,
  type StateSnapshot,
} from './abuse-support';

/**
 * SPEC §2 (verify hash), §3 (admin token, error envelope) and §7 (security targets), attacked:
 * - forged, tampered, expired and other-user/other-day verify hashes are refused with 6003 on V1
 *   and V2, and reserve nothing;
 * - a hash issued by another instance (another HASH_SECRET) is refused;
 * - every admin endpoint refuses a missing, wrong, shorter/longer, `Basic`, lower-case `bearer`
 *   token with 4001 and changes nothing; the token comparison is constant-time (always one
 *   `timingSafeEqual` over equal-length buffers, whatever the given length);
 * - a real internal error (a table gone from the instance's own database) answers a clean 5000 that
 *   is logged, and a missing service a clean 5030.
 * Property-based parts use a fixed seed (FUZZ_SEED, default below); fast-check prints the seed and
 * the counterexample on failure.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20_250_302);

const V1 = '/api/tickets/v1/purchase';
const V2 = '/api/tickets/v2/purchase';

describe('abuse: security', () => {
  let app: TestApp;
  /** Another instance: its own namespace, database and HASH_SECRET, and no ADMIN_TOKEN. */
  let other: TestApp;

  beforeAll(async () => {
    [app, other] = await Promise.all([startApp(), startApp({ ADMIN_TOKEN: '' })]);
  });

  afterAll(async () => {
    closeAgent();
    await Promise.all([app?.stop(), other?.stop()]);
  });

  const json = (path: string, body: unknown, headers: Record<string, string> = {}): RawRequest => ({
    method: 'POST',
    path,
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

  /** Submits on V1 and V2 and expects 6003 from both. */
  async function expectRefusedHash(target: TestApp, userId: number, date: string, verifyHash: string) {
    for (const path of [V1, V2]) {
      const req = json(path, { userId, date, verifyHash });
      const answer = await rawRequest(target.baseUrl, req);
      assertCleanAnswer(answer, [6003], req, verifyHash);
    }
  }

  describe('verify hash', () => {
    let before: StateSnapshot;
    beforeAll(async () => {
      before = await snapshotState(app);
    });
    afterEach(async () => {
      // Nothing reserved: no claim, no pending reservation, no result, no rate-limit count, no order.
      expect(await snapshotState(app)).toEqual(before);
    });

    it('refuses random strings (property, V1 and V2)', async () => {
      const hash = fc.oneof(
        fc.string({ minLength: 1, maxLength: 128 }),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
        fc
          .tuple(
            fc.integer({ min: 1, max: 999_999_999_999 }),
            fc.base64String({ minLength: 44, maxLength: 44 }),
          )
          .map(([exp, sig]) => `${exp}.${sig.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')}`),
      );
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 3000 }), fc.constantFrom(...app.dates), hash, (u, d, h) =>
          expectRefusedHash(app, u, d, h),
        ),
        { seed: SEED, numRuns: 60 },
      );
    });

    it('refuses a bare digest of the public values and an HMAC under another secret', async () => {
      const [date] = app.dates;
      const userId = 101;
      const exp = Math.floor(Date.now() / 1000) + 3600;
      const md5 = (s: string) => createHash('md5').update(s).digest('hex');
      const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
      const forged = [
        md5(`${userId}${date}`),
        md5(`${userId}|${date}`),
        md5(`${userId}-${date}`),
        md5(`${date}${userId}`),
        `${exp}.${md5(`${userId}${date}`)}`,
        sha256(`${userId}${date}`),
        `${exp}.${createHash('sha256').update(`v1|${userId}|${date}|${exp}`).digest('base64url')}`,
        issueVerifyHash('dev-only-hash-secret-change-me-in-production', userId, date, 3600).verifyHash,
        issueVerifyHash(`${app.config.hashSecret}x`, userId, date, 3600).verifyHash,
        issueVerifyHash('', userId, date, 3600).verifyHash,
        // the right secret over another message layout
        `${exp}.${createHmac('sha256', app.config.hashSecret).update(`${userId}|${date}|${exp}`).digest('base64url')}`,
        `${exp}.${createHmac('sha256', app.config.hashSecret).update(`v1|${userId}|${date}`).digest('base64url')}`,
        `${exp}.${createHmac('sha256', app.config.hashSecret).update(`v1|${userId}|${date}|${exp}`).digest('hex')}`,
      ];
      for (const hash of forged) await expectRefusedHash(app, userId, date, hash);
    });

    it('refuses a hash with any single character changed, over HTTP and exhaustively in-process', async () => {
      const [date] = app.dates;
      const userId = 102;
      const genuine = app.hash(userId, date);
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+/=!* ';
      const variants = new Set<string>();
      for (let i = 0; i < genuine.length; i++) {
        for (const c of alphabet)
          if (c !== genuine[i]) variants.add(genuine.slice(0, i) + c + genuine.slice(i + 1));
        variants.add(genuine.slice(0, i) + genuine.slice(i + 1)); // deleted
        variants.add(`${genuine.slice(0, i)}*${genuine.slice(i)}`); // inserted
      }
      variants.add(`0${genuine}`); // leading zero in the expiry
      variants.add(`${genuine}=`);
      variants.add(`${genuine}\n`);
      const accepted = [...variants].filter((v) => checkVerifyHash(app.config.hashSecret, userId, date, v));
      expect(accepted).toEqual([]);
      // Over HTTP: the last characters of the signature (their low bits carry no data in base64),
      // every expiry digit, and a sample of the rest.
      const [exp, sig] = genuine.split('.');
      const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
      const flipDigit = (s: string, i: number) => s.slice(0, i) + ((Number(s[i]) + 1) % 10) + s.slice(i + 1);
      const lastChar = sig.length - 1;
      const overHttp = [
        ...['A', 'B', 'C', 'D', 'E', 'F', 'Q', 'g', 'w', '0'].map(
          (c) => `${exp}.${sig.slice(0, lastChar)}${c}`,
        ),
        ...Array.from(exp, (_, i) => `${flipDigit(exp, i)}.${sig}`),
        ...[0, 5, 10, 20, 30, 40].map((i) => `${exp}.${flip(sig, i)}`),
        `0${genuine}`,
        `${exp}.${sig}=`,
        `${exp}.${sig.slice(0, 10)}*${sig.slice(10)}`,
        `${exp}.${sig.replace(/-/g, '+').replace(/_/g, '/')}`,
        `${Number(exp) + 1}.${sig}`,
        `${Number(exp) + 86_400}.${sig}`,
      ].filter((v) => v !== genuine);
      for (const hash of overHttp) await expectRefusedHash(app, userId, date, hash);
    });

    it('refuses an expired hash', async () => {
      const [date] = app.dates;
      const now = Date.now();
      for (const [ttl, issuedAgo] of [
        [3600, 2 * 3600_000],
        [60, 61_000],
        [1, 2000],
      ]) {
        const hash = issueVerifyHash(app.config.hashSecret, 103, date, ttl, now - issuedAgo).verifyHash;
        await expectRefusedHash(app, 103, date, hash);
      }
    });

    it('refuses a hash of another user or another day', async () => {
      const [today, tomorrow] = app.dates;
      const of = (u: number, d: string) => app.hash(u, d);
      await expectRefusedHash(app, 105, today, of(104, today)); // another user
      await expectRefusedHash(app, 4, today, of(42, today)); // "4" + "2|…" is not "42|…"
      await expectRefusedHash(app, 42, today, of(4, today));
      await expectRefusedHash(app, 104, tomorrow, of(104, today)); // another day
      await expectRefusedHash(app, 104, today, of(104, tomorrow));
      // The hash the service itself issued, reused for someone else.
      const issued = await app.get<{ verifyHash: string }>(
        `/api/tickets/verify-hash?userId=106&date=${today}`,
      );
      expect(issued.body.code).toBe(200);
      await expectRefusedHash(app, 107, today, issued.body.data.verifyHash);
    });

    it('refuses the hash issued by another instance (another HASH_SECRET), both ways', async () => {
      expect(other.config.hashSecret).not.toBe(app.config.hashSecret);
      const [date] = app.dates;
      const fromOther = await other.get<{ verifyHash: string }>(
        `/api/tickets/verify-hash?userId=108&date=${date}`,
      );
      expect(fromOther.body.code).toBe(200);
      await expectRefusedHash(app, 108, date, fromOther.body.data.verifyHash);
      const otherBefore = await snapshotState(other);
      await expectRefusedHash(other, 108, date, app.hash(108, date));
      expect(await snapshotState(other)).toEqual(otherBefore);
    });
  });

  it('accepts the genuine hash (the refusals above are for the hash, nothing else)', async () => {
    const [date] = app.dates;
    const v2 = await app.post<{ messageId: string }>(V2, {
      userId: 109,
      date,
      verifyHash: app.hash(109, date),
    });
    expect(v2.body.code).toBe(200);
    const v1 = await app.post<{ orderNo: string }>(V1, {
      userId: 110,
      date,
      verifyHash: app.hash(110, date),
    });
    expect(v1.body.code).toBe(200);
    const result = await app.get<{ status: string }>(
      `/api/tickets/v2/purchase/result?messageId=${v2.body.data.messageId}&waitMs=10000`,
    );
    expect(result.body.data.status).toBe('SUCCESS');
  });

  it('never answers a V2 submit racing a V1 purchase of the same user and day with a message that does not exist', async () => {
    // Found by this suite: the in-flight V1 reservation id (`v1-<uuid>`) was handed out as a V2 messageId.
    const date = app.dates[1];
    const users = Array.from({ length: 20 }, (_, i) => 400 + i);
    await Promise.all(
      users.map(async (userId) => {
        const body = { userId, date, verifyHash: app.hash(userId, date) };
        const [v1, v2] = await Promise.all([app.post(V1, body), app.post<{ messageId: string }>(V2, body)]);
        // One of the two buys the ticket; the other is told "already purchased".
        expect([userId, ...[v1.body.code, v2.body.code].sort()]).toEqual([userId, 200, 6005]);
        if (v2.body.code === 200) {
          const result = await app.get<{ status: string }>(
            `/api/tickets/v2/purchase/result?messageId=${v2.body.data.messageId}&waitMs=10000`,
          );
          expect([userId, result.body.code, result.body.data.status]).toEqual([userId, 200, 'SUCCESS']);
        }
      }),
    );
    const rows = await app.rt.db.query<{ user_id: string; n: number }>(
      `SELECT user_id, count(*)::int AS n FROM orders WHERE date = $1 AND status = 'valid' AND user_id BETWEEN 400 AND 419 GROUP BY user_id`,
      { bind: [date], type: QueryTypes.SELECT },
    );
    expect(rows.map((r) => r.n)).toEqual(users.map(() => 1));
  });

  describe('admin authorization', () => {
    /** Every admin endpoint; the first eight are valid calls. */
    const ADMIN_CALLS = (date: string): RawRequest[] => [
      { ...json(`/api/admin/tickets/${date}`, { total: 7 }), method: 'PUT' },
      json('/api/admin/tickets/roll', {}),
      json('/api/admin/sale/pause', {}),
      json('/api/admin/sale/resume', {}),
      json('/api/admin/reconcile', {}),
      { method: 'GET', path: '/api/admin/dlq' },
      json('/api/admin/dlq/00000000-0000-4000-8000-000000000000/resend', {}),
      { method: 'GET', path: '/api/admin/alerts' },
      { method: 'GET', path: '/api/admin/orders?userId=1' },
      json('/api/admin/orders/cancel', { userId: 1, orderNo: 'T-1' }),
      // invalid parameters too: authorization is checked first and says nothing about them
      { ...json('/api/admin/tickets/not-a-date', { total: -1 }), method: 'PUT' },
      { method: 'GET', path: '/api/admin/dlq?limit=abc' },
    ];

    const latin1Twin = `${ADMIN_TOKEN.slice(0, -1)}é`; // same string length, one byte longer in UTF-8
    const BAD_AUTH: (Record<string, string> | undefined)[] = [
      undefined,
      { authorization: '' },
      { authorization: 'Bearer' },
      { authorization: 'Bearer ' },
      { authorization: `Bearer ${'x'.repeat(ADMIN_TOKEN.length)}` }, // same length, wrong
      { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}${ADMIN_TOKEN.endsWith('9') ? '8' : '9'}` },
      { authorization: `Bearer ${ADMIN_TOKEN.toUpperCase()}` },
      { authorization: `Bearer ${ADMIN_TOKEN}x` }, // longer
      { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}` }, // shorter
      { authorization: `Bearer ${ADMIN_TOKEN.slice(0, 1)}` },
      { authorization: `Bearer ${ADMIN_TOKEN.repeat(50)}` },
      { authorization: `Bearer ${latin1Twin}` },
      { authorization: `bearer ${ADMIN_TOKEN}` }, // lower-case scheme: not accepted
      { authorization: `BEARER ${ADMIN_TOKEN}` },
      { authorization: `Bearer  ${ADMIN_TOKEN}` }, // two spaces
      { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` },
      { authorization: `Basic ${Buffer.from(ADMIN_TOKEN).toString('base64')}` },
      { authorization: `Token ${ADMIN_TOKEN}` },
      { authorization: ADMIN_TOKEN }, // no scheme
      { authorization: `Bearer ${ADMIN_TOKEN},Bearer ${ADMIN_TOKEN}` },
      { authorization: `Bearer ${Buffer.from(ADMIN_TOKEN).toString('base64')}` },
      { 'x-admin-token': ADMIN_TOKEN },
      { cookie: `token=${ADMIN_TOKEN}; authorization=Bearer ${ADMIN_TOKEN}` },
    ];

    async function expectAllRefused(target: TestApp, auths: (Record<string, string> | undefined)[]) {
      const calls = ADMIN_CALLS(target.dates[0]);
      for (const auth of auths) {
        for (const call of calls) {
          const req = { ...call, headers: { ...call.headers, ...auth } };
          const answer = await rawRequest(target.baseUrl, req);
          try {
            assertCleanAnswer(answer, [4001], req, ADMIN_TOKEN);
          } catch (err) {
            throw new Error(`${JSON.stringify(auth)}: ${(err as Error).message}`, { cause: err });
          }
        }
      }
    }

    it('refuses every admin endpoint with 4001 for a missing or wrong token, and changes nothing', async () => {
      // Earlier tests' rate-limit counters (1 s windows) must not expire between the two snapshots.
      const before = await eventually(async () => {
        const state = await snapshotState(app);
        return Object.keys(state.redis).some((key) => key.startsWith('rl:')) ? undefined : state;
      });
      await expectAllRefused(app, BAD_AUTH);
      // the token in the query string is no token either
      for (const q of ['token', 'access_token', 'authorization']) {
        const req: RawRequest = { method: 'POST', path: `/api/admin/sale/pause?${q}=${ADMIN_TOKEN}` };
        assertCleanAnswer(await rawRequest(app.baseUrl, req), [4001], req);
      }
      expect(await snapshotState(app)).toEqual(before);
      expect(await app.rt.redis.exists(keys.paused)).toBe(0);
    });

    it('refuses resume with a wrong token while paused: the sale stays paused', async () => {
      expect((await app.post('/api/admin/sale/pause', {}, app.admin)).body.code).toBe(200);
      try {
        const before = await snapshotState(app);
        expect(before.redis.paused).toBeDefined();
        await expectAllRefused(app, BAD_AUTH.slice(0, 8));
        expect(await snapshotState(app)).toEqual(before);
        const [date] = app.dates;
        const refused = await app.post(V2, { userId: 111, date, verifyHash: app.hash(111, date) });
        expect(refused.body.code).toBe(6007);
      } finally {
        expect((await app.post('/api/admin/sale/resume', {}, app.admin)).body.code).toBe(200);
      }
    });

    it('answers the right token on every endpoint (the refusals are for the token)', async () => {
      for (const call of ADMIN_CALLS(app.dates[2]).slice(0, 8)) {
        const answer = await rawRequest(app.baseUrl, { ...call, headers: { ...call.headers, ...app.admin } });
        expect([call.path, answer.body?.code]).toEqual([
          call.path,
          call.path.includes('resend') ? 6008 : 200,
        ]);
      }
    });

    it('refuses every admin call on an instance started without ADMIN_TOKEN, whatever the header', async () => {
      expect(other.config.adminToken).toBeNull();
      const before = await snapshotState(other);
      await expectAllRefused(other, [
        ...BAD_AUTH.slice(0, 4),
        { authorization: `Bearer ${ADMIN_TOKEN}` },
        { authorization: 'Bearer null' },
        { authorization: 'Bearer undefined' },
        { authorization: 'Bearer false' },
      ]);
      expect(await snapshotState(other)).toEqual(before);
    });

    it('compares the token in constant time: one timingSafeEqual over equal lengths, whatever is sent', async () => {
      // lib/http/access.ts `tokenMatches`: equal lengths compare the given token with the
      // expected one; other lengths compare the expected token with itself and still answer false.
      const spy = jest.spyOn(crypto, 'timingSafeEqual');
      try {
        const cases: [string | undefined, number][] = [
          [`Bearer ${ADMIN_TOKEN}`, 200],
          [`Bearer ${'x'.repeat(ADMIN_TOKEN.length)}`, 4001],
          [`Bearer ${ADMIN_TOKEN}x`, 4001],
          [`Bearer ${ADMIN_TOKEN.slice(0, 3)}`, 4001],
          [`Bearer ${'y'.repeat(4096)}`, 4001],
          [`Bearer ${latin1Twin}`, 4001],
          ['Basic abc', 4001],
          [undefined, 4001],
        ];
        for (const [authorization, code] of cases) {
          spy.mockClear();
          const answer = await rawRequest(app.baseUrl, {
            method: 'GET',
            path: '/api/admin/dlq',
            headers: authorization === undefined ? {} : { authorization },
          });
          expect([authorization, answer.body?.code]).toEqual([authorization, code]);
          expect(spy).toHaveBeenCalledTimes(1);
          const [a, b] = spy.mock.calls[0] as [Buffer, Buffer];
          expect(a.length).toBe(b.length);
          expect(b.equals(Buffer.from(ADMIN_TOKEN))).toBe(true);
        }
      } finally {
        spy.mockRestore();
      }
    });
  });

  describe('error answers', () => {
    it('answers a real internal error with a clean, logged 5000, and reserves nothing', async () => {
      const api = app.broker.getLocalService('api') as Service;
      const logged = jest.spyOn(api.logger, 'error');
      const [date] = app.dates;
      const before = await snapshotState(app);
      await app.rt.db.query('ALTER TABLE orders RENAME TO orders_hidden_by_test');
      try {
        const requests: RawRequest[] = [
          { method: 'GET', path: '/api/tickets/orders?userId=5' },
          { method: 'GET', path: `/api/tickets/v2/purchase/result/user?userId=5&date=${date}` },
          json(V1, { userId: 112, date, verifyHash: app.hash(112, date) }),
          json('/api/tickets/orders/cancel', { userId: 5, orderNo: 'ABC-123' }),
        ];
        for (const req of requests) {
          logged.mockClear();
          const answer = await rawRequest(app.baseUrl, req);
          expect([req.path, answer.status, answer.body]).toEqual([
            req.path,
            500,
            { code: 5000, message: 'Internal error', data: null },
          ]);
          expect(leaksIn(answer.text, '')).toEqual([]);
          expect(answer.text).not.toMatch(/orders_hidden|relation|42P01/);
          // …and the cause is in the log, for the operators.
          const logLine = logged.mock.calls.map((args) => args.map(String).join(' ')).join('\n');
          expect(logLine).toMatch(/Request failed/);
          expect(logLine).toMatch(/relation "orders" does not exist/);
        }
      } finally {
        await app.rt.db.query('ALTER TABLE orders_hidden_by_test RENAME TO orders');
        logged.mockRestore();
      }
      // The failed V1 purchase gave its reservation back: stock, claims, orders as before (its
      // rate-limit count, which expires with its window, is the one trace it may leave).
      expect(withoutRateCounts(await snapshotState(app))).toEqual(withoutRateCounts(before));
      expect((await app.get('/api/tickets/orders?userId=5')).body.code).toBe(200);
    });

    it('answers 5030 without internal names when the services behind a gateway are missing', async () => {
      const lonely = await startApp({ SERVICES: 'api' });
      try {
        const requests: RawRequest[] = [
          { method: 'GET', path: '/api/tickets/list' },
          { method: 'GET', path: '/api/tickets/stats' },
          json(V2, { userId: 1, date: lonely.dates[0], verifyHash: 'x' }),
          { method: 'GET', path: '/api/tickets/v2/purchase/result?messageId=abc' },
          { method: 'GET', path: '/api/tickets/v2/purchase/stream?messageId=abc' },
          { method: 'GET', path: '/api/admin/dlq', headers: lonely.admin },
        ];
        for (const req of requests) {
          const answer = await rawRequest(lonely.baseUrl, req);
          assertCleanAnswer(answer, [5030], req);
        }
      } finally {
        await lonely.stop();
      }
    });

    it('never shows a stack, SQL or internal name to a hostile client (sample of error answers)', async () => {
      const samples: RawRequest[] = [
        json(V2, '{"userId":'),
        json(V2, { userId: 'SELECT * FROM orders', date: 'DROP TABLE', verifyHash: '../../etc/passwd' }),
        { method: 'GET', path: '/api/tickets/orders?userId=1%27%20OR%20%271%27%3D%271' },
        { method: 'GET', path: '/api/tickets/v2/purchase/result?messageId=%27%3B%20SELECT%201%3B--' },
        { method: 'GET', path: '/api/tickets/verify-hash?userId=999999&date=' + app.dates[0] },
        { method: 'GET', path: '/api/tickets/verify-hash?userId=1&date=2001-01-01' },
        json('/api/tickets/v2/purchase/results', { messageIds: ['x', "'; DROP TABLE orders; --"] }),
      ];
      for (const req of samples) {
        const answer = await rawRequest(app.baseUrl, req);
        assertCleanAnswer(answer, [1001, 6001, 6003, 6006, 6008], req, String(req.body ?? ''));
      }
      const [orders] = await app.rt.db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders', {
        type: QueryTypes.SELECT,
      });
      expect(orders.n).toBeGreaterThan(0); // the table is still there
    });
  });
});

const withoutRateCounts = (state: StateSnapshot): StateSnapshot => ({
  ...state,
  redis: Object.fromEntries(Object.entries(state.redis).filter(([key]) => !key.startsWith('rl:'))),
});
