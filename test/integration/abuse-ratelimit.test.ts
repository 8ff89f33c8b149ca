import { QueryTypes } from 'sequelize';
import { keys } from '../../lib/store/keys';
import { eventually, startApp, type HttpAnswer, type TestApp } from '../helpers/app';

/**
 * SPEC §2 and §7: the per-user and global rate limits answer 7001 beyond the limit and are held in
 * Redis, so two gateways (two brokers on the same namespace, database and HASH_SECRET) share them.
 * A refused request reserves nothing. (No timing assertions: each burst is sent at once, far inside
 * its window; the window's end is awaited with `eventually`.)
 */

const V1 = '/api/tickets/v1/purchase';
const V2 = '/api/tickets/v2/purchase';

type Submit = HttpAnswer<{ messageId: string }>;

/** A second gateway on the instance of `first`: same namespace, database and secret. */
function secondGateway(first: TestApp, overrides: Record<string, string>): Promise<TestApp> {
  return startApp({
    ...overrides,
    NAMESPACE: first.namespace,
    DATABASE_URL: first.env.DATABASE_URL,
    HASH_SECRET: first.env.HASH_SECRET,
  });
}

const codes = (answers: HttpAnswer[]) => answers.map((a) => a.body.code).sort((a, b) => a - b);

describe('abuse: rate limits held in Redis, shared by two gateways', () => {
  describe('per user (RATE_LIMIT_USER_MAX=3 per 1000 ms)', () => {
    const LIMITS = {
      RATE_LIMIT_USER_MAX: '3',
      RATE_LIMIT_USER_WINDOW_MS: '1000',
      RATE_LIMIT_GLOBAL_MAX: '0',
    };
    let a: TestApp;
    let b: TestApp;

    beforeAll(async () => {
      a = await startApp(LIMITS);
      b = await secondGateway(a, LIMITS);
    });
    afterAll(async () => {
      await b?.stop(false); // the shared instance is cleaned up once, by the first gateway
      await a?.stop();
    });

    const submit = (gw: TestApp, userId: number, path = V2) => {
      const date = gw.dates[0];
      return gw.post<{ messageId: string }>(path, { userId, date, verifyHash: gw.hash(userId, date) });
    };

    it('gives 7001 beyond the limit on one gateway; the others get the one message', async () => {
      const answers: Submit[] = await Promise.all(Array.from({ length: 6 }, () => submit(a, 201)));
      expect(codes(answers)).toEqual([200, 200, 200, 7001, 7001, 7001]);
      const limited = answers.filter((x) => x.body.code === 7001);
      expect(limited.map((x) => x.status)).toEqual([429, 429, 429]);
      const ids = new Set(answers.filter((x) => x.body.code === 200).map((x) => x.body.data.messageId));
      expect(ids.size).toBe(1); // idempotent: one message, whatever the retries
    });

    it('shares the count between two gateways (it lives in Redis, not in the process)', async () => {
      const answers: Submit[] = await Promise.all([
        ...Array.from({ length: 3 }, () => submit(a, 202)),
        ...Array.from({ length: 3 }, () => submit(b, 202)),
      ]);
      // Per-process counters would admit all six (three per gateway).
      expect(codes(answers)).toEqual([200, 200, 200, 7001, 7001, 7001]);
      const ids = new Set(answers.filter((x) => x.body.code === 200).map((x) => x.body.data.messageId));
      expect(ids.size).toBe(1);
    });

    it('counts V1 and V2 alike, on both gateways', async () => {
      const answers = await Promise.all([
        submit(a, 203, V1),
        submit(b, 203, V1),
        submit(a, 203, V1),
        submit(b, 203, V2),
        submit(a, 203, V2),
        submit(b, 203, V1),
      ]);
      // Three admitted in all (one ticket, the others "already purchased" or the same message),
      // three refused: the count is one per user, whichever version and gateway.
      const sorted = codes(answers);
      expect(sorted.filter((c) => c === 7001)).toHaveLength(3);
      expect(sorted.filter((c) => c !== 7001).every((c) => c === 200 || c === 6005)).toBe(true);
      const orders = await eventually(async () => {
        const answer = await a.get<unknown[]>('/api/tickets/orders?userId=203');
        return answer.body.data.length > 0 ? answer.body.data : undefined;
      });
      expect(orders).toHaveLength(1);
    });

    it('admits the user again once the window has passed, on the other gateway', async () => {
      const first = await submit(a, 204);
      expect(first.body.code).toBe(200);
      // Fill the window, then wait for it to end: the same message comes back (idempotent).
      await Promise.all([submit(a, 204), submit(b, 204), submit(b, 204)]);
      const again = await eventually(async () => {
        const answer = await submit(b, 204);
        return answer.body.code === 200 ? answer : undefined;
      }, 10_000);
      expect(again.body.data.messageId).toBe(first.body.data.messageId);
    });

    it('does not count a request refused before admission (bad hash, bad parameters)', async () => {
      const [date] = a.dates;
      for (let i = 0; i < 10; i++) {
        expect((await a.post(V2, { userId: 205, date, verifyHash: 'forged' })).body.code).toBe(6003);
        expect((await b.post(V2, { userId: 205, date: 'bad' })).body.code).toBe(1001);
      }
      expect(await a.rt.redis.exists(keys.userRate(205))).toBe(0);
      expect((await submit(b, 205)).body.code).toBe(200);
    });
  });

  describe('global (RATE_LIMIT_GLOBAL_MAX=4 per 60 s)', () => {
    const LIMITS = {
      RATE_LIMIT_USER_MAX: '0',
      RATE_LIMIT_GLOBAL_MAX: '4',
      RATE_LIMIT_GLOBAL_WINDOW_MS: '60000',
    };
    let c: TestApp;
    let d: TestApp;

    beforeAll(async () => {
      c = await startApp(LIMITS);
      d = await secondGateway(c, LIMITS);
    });
    afterAll(async () => {
      await d?.stop(false);
      await c?.stop();
    });

    it('admits only the global limit across both gateways, and the refused reserve nothing', async () => {
      const [date] = c.dates;
      const stockBefore = Number(await c.rt.redis.get(keys.stock(date)));
      const users = [301, 302, 303, 304, 305, 306];
      const answers: Submit[] = await Promise.all(
        users.map((userId, i) => {
          const gw = i % 2 === 0 ? c : d;
          return gw.post<{ messageId: string }>(V2, { userId, date, verifyHash: gw.hash(userId, date) });
        }),
      );
      expect(codes(answers)).toEqual([200, 200, 200, 200, 7001, 7001]);
      const limitedUsers = users.filter((_, i) => answers[i].body.code === 7001);
      for (const userId of limitedUsers) {
        expect(await c.rt.redis.hget(keys.claims(date), String(userId))).toBeNull();
      }
      // Four tickets reserved (or already sold by the workers), not six.
      const sold = await eventually(async () => {
        const [row] = await c.rt.db.query<{ sold: number }>('SELECT sold FROM ticket_days WHERE date = $1', {
          bind: [date],
          type: QueryTypes.SELECT,
        });
        return row && Number(row.sold) === 4 ? 4 : undefined;
      });
      expect(sold).toBe(4);
      expect(Number(await c.rt.redis.get(keys.stock(date)))).toBe(stockBefore - 4);
      // Still limited for everyone, whichever gateway: the count is shared.
      const late = await d.post(V2, { userId: 307, date, verifyHash: d.hash(307, date) });
      expect(late.body.code).toBe(7001);
    });
  });
});
