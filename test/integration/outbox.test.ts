import { QueryTypes } from 'sequelize';
import { reserve } from '../../lib/purchase/reservations';
import type { ResultRecord } from '../../lib/purchase/results';
import { keys } from '../../lib/store/keys';
import { eventually, startApp, type TestApp } from '../helpers/app';

/**
 * The admission outbox's recovery (lib/purchase/outbox.ts), against the real servers: admissions
 * whose admitter is gone (no heartbeat key) are published again, released when too old, or, for V1,
 * settled from the database. Each admission here is made by the service's own ADMIT under an
 * admitter name no live process holds, as a process killed right after its admission leaves it.
 */

jest.setTimeout(60_000);

const DEAD = 'deadadmitter';

describe('the outbox recovery', () => {
  let app: TestApp;
  let date: string;

  beforeAll(async () => {
    app = await startApp({ OUTBOX_CHECK_MS: '200', OUTBOX_GRACE_MS: '3000', OUTBOX_MAX_AGE_MS: '60000' });
    date = app.dates[0];
    await app.put(`/api/admin/tickets/${date}`, { total: 10 }, app.admin);
  });

  afterAll(async () => {
    await app?.stop();
  });

  const stock = async () => Number(await app.rt.redis.get(keys.stock(date)));
  const claim = (userId: number) => app.rt.redis.hget(keys.claims(date), String(userId));
  const outboxSize = () => app.rt.redis.zcard(keys.outbox);
  const admitDead = (userId: number, messageId: string, ageMs: number, resultTtlSeconds = 3600) =>
    reserve(app.rt.redis, app.config, { userId, date }, messageId, {
      resultTtlSeconds,
      admitter: DEAD,
      now: new Date(Date.now() - ageMs),
    });
  const result = async (messageId: string) =>
    (await app.get<ResultRecord>(`/api/tickets/v2/purchase/result?messageId=${messageId}`)).body.data;

  it('publishes the admission of a dead process again: the buyer gets the ticket', async () => {
    const messageId = 'outbox-republish-0001';
    expect((await admitDead(1, messageId, 0)).outcome).toBe('OK');
    const done = await eventually(async () => {
      const r = await result(messageId);
      return r?.status === 'SUCCESS' ? r : undefined;
    });
    expect(done.ticketCode).toBeTruthy();
    expect(await claim(1)).toBe(messageId);
    expect(await outboxSize()).toBe(0);
    const [order] = await app.rt.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM orders WHERE message_id = $1',
      { bind: [messageId], type: QueryTypes.SELECT },
    );
    expect(order.n).toBe(1);
  });

  it('releases one too old to publish: ticket back, claim dropped, result FAILED 5030, buyer may retry', async () => {
    const messageId = 'outbox-release-0001';
    const before = await stock();
    expect((await admitDead(2, messageId, 120_000)).outcome).toBe('OK');
    expect(await stock()).toBe(before - 1);
    const failed = await eventually(async () => {
      const r = await result(messageId);
      return r?.status === 'FAILED' ? r : undefined;
    });
    expect(failed).toMatchObject({ errorCode: 5030 });
    expect(await stock()).toBe(before);
    expect(await claim(2)).toBeNull();
    expect(await outboxSize()).toBe(0);
    const again = await app.post<{ messageId: string }>('/api/tickets/v2/purchase', {
      userId: 2,
      date,
      verifyHash: app.hash(2, date),
    });
    expect(again.body.code).toBe(200);
    expect(again.body.data.messageId).not.toBe(messageId);
  });

  it('settles a V1 reservation whose order was committed: the claim names the order, no ticket back', async () => {
    const reservation = 'v1-outbox-committed';
    expect((await admitDead(3, reservation, 0, 0)).outcome).toBe('OK');
    const held = await stock();
    // The purchase committed its order, then its process died before settling.
    const [order] = await app.rt.db.transaction(async (transaction) => {
      await app.rt.db.query(
        `UPDATE ticket_days SET remaining = remaining - 1, sold = sold + 1 WHERE date = $1`,
        { bind: [date], transaction },
      );
      return app.rt.db.query<{ orderNo: string }>(
        `INSERT INTO orders (user_id, date, ticket_code) VALUES (3, $1, make_ticket_code($1))
         RETURNING order_no AS "orderNo"`,
        { bind: [date], type: QueryTypes.SELECT, transaction },
      );
    });
    await eventually(async () => ((await outboxSize()) === 0 ? true : undefined));
    expect(await claim(3)).toBe(`v1:${order.orderNo}`);
    expect(await stock()).toBe(held);
    expect(await app.rt.redis.hexists(keys.pending(date), reservation)).toBe(0);
  });

  it('releases a V1 reservation whose order was never made', async () => {
    const reservation = 'v1-outbox-never';
    const before = await stock();
    expect((await admitDead(4, reservation, 0, 0)).outcome).toBe('OK');
    await eventually(async () => ((await outboxSize()) === 0 ? true : undefined));
    expect(await claim(4)).toBeNull();
    expect(await stock()).toBe(before);
  });

  it('takes an admission sent twice (a re-send after a dropped connection) as the one admission', async () => {
    const messageId = 'outbox-twice-0001';
    const before = await stock();
    const admit = () =>
      reserve(app.rt.redis, app.config, { userId: 6, date }, messageId, {
        resultTtlSeconds: 3600,
        admitter: app.rt.admitter,
      });
    expect((await admit()).outcome).toBe('OK');
    // Not "already purchased" with its own message id, which would never be published.
    expect((await admit()).outcome).toBe('OK');
    expect(await stock()).toBe(before - 1);
    expect(await app.rt.redis.zcard(keys.outbox)).toBe(1);
    // Another message of the same user is still refused with the claim.
    expect(
      await reserve(app.rt.redis, app.config, { userId: 6, date }, 'outbox-twice-0002', {
        resultTtlSeconds: 3600,
        admitter: app.rt.admitter,
      }),
    ).toEqual({ outcome: 'EXISTS', claim: messageId });
    // Never published here: past its grace, the outbox publishes it.
    await eventually(async () => ((await result(messageId)).status === 'SUCCESS' ? true : undefined));
    expect(await outboxSize()).toBe(0);
  });

  it('takes over the pass lock of a process that died mid-pass: recovery does not wait for it to expire', async () => {
    // The lock outlives a hanging pass by far longer than this test waits (see LOCK_MS).
    await app.rt.redis.set(keys.outboxLock, DEAD, 'PX', 60_000);
    const messageId = 'outbox-lock-0001';
    expect((await admitDead(7, messageId, 0)).outcome).toBe('OK');
    await eventually(async () => ((await result(messageId)).status === 'SUCCESS' ? true : undefined));
    expect(await outboxSize()).toBe(0);
    expect(await app.rt.redis.get(keys.outboxLock)).not.toBe(DEAD);
  });

  it('leaves the admissions of a live process to it', async () => {
    const messageId = 'outbox-live-0001';
    // Owned by this very service (its heartbeat is live), and younger than the grace (3 s).
    await reserve(app.rt.redis, app.config, { userId: 5, date }, messageId, {
      resultTtlSeconds: 3600,
      admitter: app.rt.admitter,
    });
    await new Promise((r) => setTimeout(r, 500)); // two recovery passes
    expect(await outboxSize()).toBe(1);
    expect((await result(messageId)).status).toBe('PENDING');
    // Past the grace, it is finished too (its process may be stuck).
    await eventually(async () => ((await result(messageId)).status === 'SUCCESS' ? true : undefined));
    expect(await outboxSize()).toBe(0);
  });
});
