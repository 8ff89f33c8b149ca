import type { ServiceBroker } from 'moleculer';
import { QueryTypes } from 'sequelize';
import { loadConfig } from '../../config';
import { createBroker } from '../../app/broker';
import { reserve } from '../../lib/purchase/reservations';
import type { PurchaseMessage } from '../../lib/purchase/queue';
import { keys } from '../../lib/store/keys';
import { eventually, startApp, type TestApp } from '../helpers/app';
import { dayStock, processedUpTo, submit, terminal } from '../helpers/purchase';

const ordersOf = (app: TestApp, userId: number, date: string) =>
  app.rt.db.query<{ messageId: string; ticketCode: string }>(
    `SELECT message_id AS "messageId", ticket_code AS "ticketCode" FROM orders
     WHERE user_id = $1 AND date = $2`,
    { bind: [userId, date], type: QueryTypes.SELECT },
  );

describe('V2 duplicate deliveries', () => {
  let app: TestApp;
  let date: string;

  beforeAll(async () => {
    app = await startApp();
    date = app.dates[0];
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('finishes a processed message republished under another Nats-Msg-Id as the same SUCCESS', async () => {
    const answer = await submit(app, 301, date);
    const first = await terminal(app, answer.body.data.messageId);
    expect(first.status).toBe('SUCCESS');
    const dayBefore = await dayStock(app, date);
    const stockBefore = await app.rt.redis.get(keys.stock(date));

    const message: PurchaseMessage = {
      messageId: first.messageId,
      userId: 301,
      date,
      queuedAt: first.queuedAt,
    };
    const queue = await app.rt.queue();
    const ack = await queue.publish(message, `${first.messageId}:redelivery`);
    expect(ack.duplicate).toBe(false);
    await processedUpTo(app, ack.seq);

    const again = await terminal(app, first.messageId);
    expect(again).toMatchObject({ status: 'SUCCESS', ticketCode: first.ticketCode, orderNo: first.orderNo });
    expect(again.errorCode).toBeUndefined();
    expect(await ordersOf(app, 301, date)).toEqual([
      { messageId: first.messageId, ticketCode: first.ticketCode },
    ]);
    // Nothing sold or given back twice, in the database or the admission cache.
    expect(await dayStock(app, date)).toEqual(dayBefore);
    expect(await app.rt.redis.get(keys.stock(date))).toBe(stockBefore);
  });

  it('ignores a message published twice with the same Nats-Msg-Id', async () => {
    const answer = await submit(app, 302, date);
    const messageId = answer.body.data.messageId;
    const first = await terminal(app, messageId);
    const queue = await app.rt.queue();
    const ack = await queue.publish({ messageId, userId: 302, date, queuedAt: first.queuedAt });
    expect(ack.duplicate).toBe(true);
    await processedUpTo(app, ack.seq);
    expect(await terminal(app, messageId)).toMatchObject({ status: 'SUCCESS', ticketCode: first.ticketCode });
    expect(await ordersOf(app, 302, date)).toHaveLength(1);
  });
});

describe('V2 duplicate deliveries arriving together', () => {
  let app: TestApp;
  let worker: ServiceBroker | undefined;
  let date: string;

  beforeAll(async () => {
    // No worker yet: both copies wait on the queue and reach the worker in the same moment.
    app = await startApp({ SERVICES: 'api,tickets,purchase' });
    date = app.dates[0];
  });
  afterAll(async () => {
    await worker?.stop();
    await app?.stop();
  });

  it('makes one order and a SUCCESS result when two copies of a message are processed at once', async () => {
    const users = [401, 402, 403];
    const messages = new Map<number, string>();
    const seqs: number[] = [];
    const queue = await app.rt.queue();
    for (const userId of users) {
      const answer = await submit(app, userId, date);
      expect(answer.body.code).toBe(200);
      const messageId = answer.body.data.messageId;
      messages.set(userId, messageId);
      // A second copy, as a crash-and-redeliver or a resend racing the original would leave it.
      const copy = await queue.publish(
        { messageId, userId, date, queuedAt: new Date().toISOString() },
        `${messageId}:copy`,
      );
      seqs.push(copy.seq);
    }
    const dayBefore = await dayStock(app, date);

    worker = createBroker(loadConfig({ ...app.env, SERVICES: 'purchase-worker' }), `${app.namespace}-worker`);
    await worker.start();
    await processedUpTo(app, Math.max(...seqs));

    for (const userId of users) {
      const messageId = messages.get(userId)!;
      const result = await terminal(app, messageId);
      const orders = await ordersOf(app, userId, date);
      expect(orders).toHaveLength(1);
      expect(result).toMatchObject({ status: 'SUCCESS', ticketCode: orders[0].ticketCode });
      expect(result.errorCode).toBeUndefined();
    }
    const dayAfter = await dayStock(app, date);
    expect(dayAfter.sold).toBe(dayBefore.sold + users.length);
    expect(dayAfter.sold + dayAfter.remaining).toBe(dayAfter.total);
    // The admission cache gave nothing back for the copies.
    await eventually(async () => ((await app.rt.redis.hlen(keys.pending(date))) === 0 ? true : undefined));
    expect(Number(await app.rt.redis.get(keys.stock(date)))).toBe(dayAfter.remaining);
    for (const userId of users)
      expect(await app.rt.redis.hget(keys.claims(date), String(userId))).toBe(messages.get(userId));
  });

  it('does not double-book a reservation made directly and published twice under different ids', async () => {
    const queue = await app.rt.queue();
    const messageId = `direct-${Date.now()}`;
    const admission = await reserve(app.rt.redis, app.config, { userId: 404, date }, messageId, {
      resultTtlSeconds: 3600,
      admitter: app.rt.admitter,
    });
    expect(admission.outcome).toBe('OK');
    const message = { messageId, userId: 404, date, queuedAt: new Date().toISOString() };
    const [a, b] = await Promise.all([
      queue.publish(message, `${messageId}:a`),
      queue.publish(message, `${messageId}:b`),
    ]);
    await processedUpTo(app, Math.max(a.seq, b.seq));
    const result = await terminal(app, messageId);
    const orders = await ordersOf(app, 404, date);
    expect(orders).toHaveLength(1);
    expect(result).toMatchObject({ status: 'SUCCESS', ticketCode: orders[0].ticketCode });
  });
});
