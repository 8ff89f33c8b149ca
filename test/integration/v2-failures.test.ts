import pg from 'pg';
import { SYSTEM_ERROR_MESSAGE } from '../../machines/purchase.machine';
import { QueryTypes } from 'sequelize';
import type { DeadLetter } from '../../lib/purchase/queue';
import type { ResultRecord } from '../../lib/purchase/results';
import { keys } from '../../lib/store/keys';
import { eventually, readSse, startApp, type TestApp } from '../helpers/app';
import { processedUpTo, resultOf, submit, terminal } from '../helpers/purchase';

const POISON_USER = 777;

const ordersOf = (app: TestApp, userId: number, date: string) =>
  app.rt.db.query<{ messageId: string; ticketCode: string }>(
    `SELECT message_id AS "messageId", ticket_code AS "ticketCode" FROM orders
     WHERE user_id = $1 AND date = $2 AND status = 'valid'`,
    { bind: [userId, date], type: QueryTypes.SELECT },
  );

const remainingOf = async (app: TestApp, date: string) =>
  (
    await app.rt.db.query<{ remaining: number; sold: number; total: number }>(
      'SELECT remaining, sold, total FROM ticket_days WHERE date = $1',
      { bind: [date], type: QueryTypes.SELECT },
    )
  )[0];

const deadLetters = async (app: TestApp) =>
  (await app.get<{ total: number; letters: DeadLetter[] }>('/api/admin/dlq', app.admin)).body;

/** The SSE statuses of one message, read with fetch until the server closes the stream. */
async function streamStatuses(app: TestApp, messageId: string, seen: string[]): Promise<void> {
  const res = await fetch(`${app.baseUrl}/api/tickets/v2/purchase/stream?messageId=${messageId}`, {
    signal: AbortSignal.timeout(45_000),
  });
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  await readSse(res.body!.getReader(), (frame) => seen.push((frame.data as ResultRecord).status));
}

describe('V2 failures: transient errors, poison messages, dead letters', () => {
  let app: TestApp;
  let date: string;

  beforeAll(async () => {
    // Warnings (unreadable payloads, retries) are expected here; errors still show.
    app = await startApp({ DB_LOCK_TIMEOUT_MS: '300', WORKER_RETRY_BASE_MS: '200', LOG_LEVEL: 'error' });
    date = app.dates[0];
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('takes a message through RETRYING to SUCCESS while the day row is locked for a while', async () => {
    // A real lock held by another session: the worker's lock_timeout (300 ms) fires on every try.
    const locker = new pg.Client({ connectionString: app.config.databaseUrl });
    await locker.connect();
    let statuses: string[] = [];
    try {
      await locker.query('BEGIN');
      await locker.query('SELECT remaining FROM ticket_days WHERE date = $1 FOR UPDATE', [date]);
      const answer = await submit(app, 501, date);
      expect(answer.body.code).toBe(200);
      const messageId = answer.body.data.messageId;
      statuses = [];
      const streaming = streamStatuses(app, messageId, statuses);
      await eventually(async () => (statuses.includes('RETRYING') ? true : undefined), 30_000, 50);
      await locker.query('ROLLBACK');
      await streaming;
      expect(statuses.at(-1)).toBe('SUCCESS');
      expect(statuses).toContain('RETRYING');
      expect(statuses.indexOf('RETRYING')).toBeLessThan(statuses.lastIndexOf('PROCESSING'));

      const result = await terminal(app, messageId);
      expect(result.status).toBe('SUCCESS');
      expect(result.attempts).toBeGreaterThan(1);
      expect(result.errorCode).toBeUndefined();
      const orders = await ordersOf(app, 501, date);
      expect(orders).toEqual([{ messageId, ticketCode: result.ticketCode }]);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
    }
  });

  it('dead-letters a poison message, releases its ticket, and lets its neighbours succeed', async () => {
    await app.rt.db.query(`
      CREATE FUNCTION test_poison_order() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'poison'; END $$`);
    await app.rt.db.query(`
      CREATE TRIGGER test_poison_order BEFORE INSERT ON orders FOR EACH ROW
      WHEN (NEW.user_id = ${POISON_USER}) EXECUTE FUNCTION test_poison_order()`);
    const before = await remainingOf(app, date);

    // The poison user among others, submitted together so they share write batches.
    const neighbours = Array.from({ length: 20 }, (_, i) => 600 + i);
    const answers = await Promise.all([POISON_USER, ...neighbours].map((u) => submit(app, u, date)));
    expect(answers.map((a) => a.body.code)).toEqual(answers.map(() => 200));
    const [poison, ...others] = answers.map((a) => a.body.data.messageId);

    const failed = await terminal(app, poison);
    expect(failed).toMatchObject({ status: 'FAILED', errorCode: 5000 });
    expect(failed.errorMessage).not.toMatch(/INSERT|SELECT|\bat \w+ \(/);
    // Publicly a generic message; the cause ('poison') is kept for the operator in the DLQ below.
    expect(failed.errorMessage).toBe(SYSTEM_ERROR_MESSAGE);
    for (const id of others) expect((await terminal(app, id)).status).toBe('SUCCESS');
    expect(await ordersOf(app, POISON_USER, date)).toHaveLength(0);

    const dlq = await eventually(async () => {
      const body = await deadLetters(app);
      return body.data.letters.some((l) => l.messageId === poison) ? body : undefined;
    });
    expect(dlq.code).toBe(200);
    expect(dlq.data.letters.find((l) => l.messageId === poison)).toMatchObject({
      userId: POISON_USER,
      date,
      error: expect.stringContaining('poison'),
      deliveries: 1,
    });

    // The reservation was released: the day lost exactly the neighbours' tickets, in both stores.
    const after = await remainingOf(app, date);
    expect(after.remaining).toBe(before.remaining - neighbours.length);
    expect(after.sold + after.remaining).toBe(after.total);
    await eventually(async () => ((await app.rt.redis.hlen(keys.pending(date))) === 0 ? true : undefined));
    expect(Number(await app.rt.redis.get(keys.stock(date)))).toBe(after.remaining);
    expect(await app.rt.redis.hget(keys.claims(date), String(POISON_USER))).toBeNull();
  });

  it('dead-letters a resent message again while the cause is not fixed', async () => {
    const poison = (await deadLetters(app)).data.letters.find((l) => l.userId === POISON_USER)!.messageId;
    const resent = await app.post<{ messageId: string; status: string; seq: number }>(
      `/api/admin/dlq/${poison}/resend`,
      {},
      app.admin,
    );
    expect(resent.body.code).toBe(200);
    expect(resent.body.data).toMatchObject({ messageId: poison, status: 'PENDING' });
    await processedUpTo(app, resent.body.data.seq);

    const letters = await eventually(async () => {
      const found = (await deadLetters(app)).data.letters.filter((l) => l.messageId === poison);
      return found.length > 0 ? found : undefined;
    }, 10_000);
    expect(letters).toHaveLength(1);
    expect((await terminal(app, poison)).status).toBe('FAILED');
    expect(await ordersOf(app, POISON_USER, date)).toHaveLength(0);
    expect(await app.rt.redis.hget(keys.claims(date), String(POISON_USER))).toBeNull();
  });

  it('resends a dead letter once the cause is fixed: SUCCESS with one order; a second resend is 6008', async () => {
    const poison = (await deadLetters(app)).data.letters.find((l) => l.userId === POISON_USER)!.messageId;
    await app.rt.db.query('DROP TRIGGER test_poison_order ON orders');
    await app.rt.db.query('DROP FUNCTION test_poison_order()');

    const resent = await app.post<{ messageId: string; status: string }>(
      `/api/admin/dlq/${poison}/resend`,
      {},
      app.admin,
    );
    expect(resent.body.code).toBe(200);
    // The old FAILED answer must not outlive the resend: a waiting client sees the new outcome.
    const now = await resultOf(app, poison);
    expect(now.body.data.status).not.toBe('FAILED');
    if (now.body.data.status !== 'SUCCESS') expect(now.body.data.errorCode).toBeUndefined();
    const waited = await resultOf(app, poison, 20_000);
    expect(waited.body.data.status).toBe('SUCCESS');
    const result = await terminal(app, poison);
    expect(result.errorCode).toBeUndefined();
    const orders = await ordersOf(app, POISON_USER, date);
    expect(orders).toEqual([{ messageId: poison, ticketCode: result.ticketCode }]);
    expect(await app.rt.redis.hget(keys.claims(date), String(POISON_USER))).toBe(poison);
    expect((await deadLetters(app)).data.letters.some((l) => l.messageId === poison)).toBe(false);

    const second = await app.post(`/api/admin/dlq/${poison}/resend`, {}, app.admin);
    expect(second.status).toBe(404);
    expect(second.body.code).toBe(6008);
    const day = await remainingOf(app, date);
    expect(Number(await app.rt.redis.get(keys.stock(date)))).toBe(day.remaining);
  });

  it('dead-letters unreadable payloads without stopping the worker', async () => {
    const queue = await app.rt.queue();
    const raw = await queue.js.publish(queue.names.subject(date), new TextEncoder().encode('not json {'));
    const partial = await queue.js.publish(
      queue.names.subject(date),
      new TextEncoder().encode('{"userId":"x"}'),
    );
    await processedUpTo(app, partial.seq);

    const letters = (await deadLetters(app)).data.letters;
    for (const seq of [raw.seq, partial.seq]) {
      const letter = letters.find((l) => l.messageId === `unreadable-${seq}`);
      expect(letter).toMatchObject({ userId: 0, error: expect.stringContaining('unreadable payload') });
    }
    // Nobody can resend what nobody can read.
    const resend = await app.post(`/api/admin/dlq/unreadable-${raw.seq}/resend`, {}, app.admin);
    expect(resend.body.code).toBe(6008);

    const answer = await submit(app, 901, date);
    expect(answer.body.code).toBe(200);
    expect((await terminal(app, answer.body.data.messageId)).status).toBe('SUCCESS');
  });

  it('refuses the dead-letter endpoints without the admin token', async () => {
    expect((await app.get('/api/admin/dlq')).body.code).toBe(4001);
    expect((await app.post('/api/admin/dlq/abc/resend', {})).body.code).toBe(4001);
  });
});
