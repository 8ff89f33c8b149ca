import { QueryTypes } from 'sequelize';
import type { SubmitAnswer } from '../../lib/purchase/gateway';
import type { ResultRecord } from '../../lib/purchase/results';
import { keys } from '../../lib/store/keys';
import { eventually, startApp, type TestApp } from '../helpers/app';
import { actionCalls } from '../helpers/purchase';

const USERS = 2000;
const STOCK = 300;
const IN_FLIGHT = 200;

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

type BatchEntry = ResultRecord | { messageId: string; code: number; message: string };

describe('V2 flash crowd', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startApp({ SEED_USERS: String(USERS + 100) });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it(`sells exactly ${STOCK} tickets to ${USERS} concurrent users, each message terminal`, async () => {
    const date = app.dates[0];
    const stock = await app.put<{ total: number; remaining: number }>(
      `/api/admin/tickets/${date}`,
      { total: STOCK },
      app.admin,
    );
    expect(stock.body.code).toBe(200);
    expect(stock.body.data).toMatchObject({ total: STOCK, remaining: STOCK });

    const users = Array.from({ length: USERS }, (_, i) => i + 1);
    const hashes = new Map(users.map((u) => [u, app.hash(u, date)]));
    const started = Date.now();
    const answers = await pool(users, IN_FLIGHT, (userId) =>
      app.post<SubmitAnswer>('/api/tickets/v2/purchase', { userId, date, verifyHash: hashes.get(userId) }),
    );
    const submittedMs = Date.now() - started;

    const accepted = answers.filter((a) => a.body.code === 200).map((a) => a.body.data.messageId);
    const rejectedByCode: Record<number, number> = {};
    for (const a of answers)
      if (a.body.code !== 200) rejectedByCode[a.body.code] = (rejectedByCode[a.body.code] ?? 0) + 1;
    expect(new Set(accepted).size).toBe(accepted.length);
    // Everything refused at once is refused as sold out: no 5000/5030/7001 under the crowd.
    expect(Object.keys(rejectedByCode)).toEqual(accepted.length < USERS ? ['6002'] : []);
    expect(answers.filter((a) => a.body.code === 6002).every((a) => a.status === 409)).toBe(true);

    // Poll in batches of 100 until every accepted message is terminal.
    const final = new Map<string, ResultRecord>();
    await eventually(
      async () => {
        const open = accepted.filter((id) => !final.has(id));
        for (let i = 0; i < open.length; i += 100) {
          const batch = await app.post<BatchEntry[]>('/api/tickets/v2/purchase/results', {
            messageIds: open.slice(i, i + 100),
          });
          expect(batch.body.code).toBe(200);
          for (const entry of batch.body.data) {
            if ('status' in entry && (entry.status === 'SUCCESS' || entry.status === 'FAILED'))
              final.set(entry.messageId, entry);
          }
        }
        return final.size === accepted.length ? true : undefined;
      },
      60_000,
      200,
    );
    const drainMs = Date.now() - started;

    const results = [...final.values()];
    const succeeded = results.filter((r) => r.status === 'SUCCESS');
    const failed = results.filter((r) => r.status === 'FAILED');
    const failedByCode: Record<number, number> = {};
    for (const r of failed) failedByCode[r.errorCode ?? 0] = (failedByCode[r.errorCode ?? 0] ?? 0) + 1;
    console.log(
      `V2 crowd: ${USERS} users, stock ${STOCK}, ${IN_FLIGHT} in flight: accepted ${accepted.length}, ` +
        `succeeded ${succeeded.length}, failed after acceptance ${JSON.stringify(failedByCode)}, ` +
        `rejected at submit ${JSON.stringify(rejectedByCode)}; all submits answered in ${submittedMs} ms, ` +
        `every message terminal after ${drainMs} ms (${drainMs - submittedMs} ms after the last answer)`,
    );

    expect(succeeded).toHaveLength(STOCK);
    expect(accepted.length + Object.values(rejectedByCode).reduce((a, b) => a + b, 0)).toBe(USERS);
    // Anything accepted beyond the stock may only fail as sold out.
    expect(Object.keys(failedByCode).every((code) => code === '6002')).toBe(true);

    const [day] = await app.rt.db.query<{ total: number; remaining: number; sold: number }>(
      'SELECT total, remaining, sold FROM ticket_days WHERE date = $1',
      { bind: [date], type: QueryTypes.SELECT },
    );
    expect(day).toEqual({ total: STOCK, remaining: 0, sold: STOCK });
    expect(day.sold + day.remaining).toBe(day.total);

    const orders = await app.rt.db.query<{ userId: number; messageId: string; ticketCode: string }>(
      `SELECT user_id AS "userId", message_id AS "messageId", ticket_code AS "ticketCode"
       FROM orders WHERE date = $1 AND status = 'valid'`,
      { bind: [date], type: QueryTypes.SELECT },
    );
    expect(orders).toHaveLength(STOCK);
    expect(new Set(orders.map((o) => o.userId)).size).toBe(STOCK);
    expect(new Set(orders.map((o) => o.ticketCode)).size).toBe(STOCK);
    // Orders in the database are exactly the SUCCESS results, ticket for ticket.
    const byMessage = new Map(orders.map((o) => [o.messageId, o.ticketCode]));
    for (const r of succeeded) expect(byMessage.get(r.messageId)).toBe(r.ticketCode);

    // The admission cache agrees once idle: no stock left, nothing pending, one claim per buyer.
    await eventually(async () => ((await app.rt.redis.hlen(keys.pending(date))) === 0 ? true : undefined));
    expect(Number(await app.rt.redis.get(keys.stock(date)))).toBe(0);
    expect(await app.rt.redis.hlen(keys.claims(date))).toBe(STOCK);

    // After the crowd, a late submit is refused as sold out and a buyer's resubmit is idempotent.
    const late = await app.post('/api/tickets/v2/purchase', {
      userId: USERS + 1,
      date,
      verifyHash: app.hash(USERS + 1, date),
    });
    expect(late.body.code).toBe(6002);
    const buyer = succeeded[0];
    const again = await app.post<SubmitAnswer>('/api/tickets/v2/purchase', {
      userId: buyer.userId,
      date,
      verifyHash: app.hash(buyer.userId, date),
    });
    expect(again.body.data).toMatchObject({ messageId: buyer.messageId, status: 'SUCCESS' });
  }, 120_000);

  it('answers the crowd after the sell-out from the gateway alone, with the same checks as the action', async () => {
    const date = app.dates[0];
    const submitCalls = () => actionCalls(app, 'purchase.submit');
    const queue = await app.rt.queue();
    const lastSeq = async () => (await queue.jsm.streams.info(queue.names.stream)).state.last_seq;
    const seqBefore = await lastSeq();
    const callsBefore = submitCalls();

    const user = USERS + 2;
    const good = { userId: user, date, verifyHash: app.hash(user, date) };
    const late = await app.post('/api/tickets/v2/purchase', good);
    expect(late.status).toBe(409);
    expect(late.body).toEqual({ code: 6002, message: expect.any(String), data: null });
    // Answered without an action call.
    expect(submitCalls()).toBe(callsBefore);

    // What the action's rules refuse is still refused 1001, by the action: an unknown field, a wrong
    // type, a bad date, a query parameter.
    for (const [path, body] of [
      ['/api/tickets/v2/purchase', { ...good, extra: 1 }],
      ['/api/tickets/v2/purchase', { ...good, userId: String(user) }],
      ['/api/tickets/v2/purchase', { ...good, date: '2025-02-30' }],
      ['/api/tickets/v2/purchase?userId=1', good],
    ] as const) {
      const answer = await app.post(path, body);
      expect({ path, body, status: answer.status, code: answer.body.code }).toMatchObject({
        status: 400,
        code: 1001,
      });
    }
    expect(submitCalls()).toBe(callsBefore + 4);
    expect(await lastSeq()).toBe(seqBefore);
  });
});
