import { randomUUID } from 'node:crypto';
import type { ServiceBroker } from 'moleculer';
import { QueryTypes } from 'sequelize';
import { loadConfig } from '../../config';
import { createBroker } from '../../app/broker';
import { eventually, readSse, startApp, type Envelope, type TestApp } from '../helpers/app';
import { actionCalls, resultOf, submit, terminal, type PolledResult } from '../helpers/purchase';

type Result = PolledResult;
type SseEvent = { event: string; data: Result };

const validOrders = (app: TestApp, userId: number, date?: string) =>
  app.rt.db.query<{ ticketCode: string; messageId: string | null; orderNo: string }>(
    `SELECT ticket_code AS "ticketCode", message_id AS "messageId", order_no AS "orderNo" FROM orders
     WHERE user_id = $1 AND status = 'valid' ${date ? 'AND date = $2' : ''}`,
    { bind: date ? [userId, date] : [userId], type: QueryTypes.SELECT },
  );

/** How many messages were ever published on this instance's purchase stream. */
async function published(app: TestApp): Promise<number> {
  const queue = await app.rt.queue();
  return (await queue.jsm.streams.info(queue.names.stream)).state.last_seq;
}

/**
 * An SSE connection read with fetch: events fill `events` as they arrive; `closed` resolves when
 * the server ends the stream. A non-stream answer (an error envelope) is returned in `envelope`.
 */
async function openSse(url: string) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 45_000);
  const res = await fetch(url, { signal: abort.signal, headers: { accept: 'text/event-stream' } });
  const events: SseEvent[] = [];
  if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    clearTimeout(timer);
    return {
      status: res.status,
      events,
      envelope: (await res.json()) as Envelope,
      closed: Promise.resolve(),
    };
  }
  const closed = (async () => {
    try {
      await readSse(res.body!.getReader(), (frame) =>
        events.push({ event: frame.event, data: frame.data as Result }),
      );
    } finally {
      clearTimeout(timer);
    }
  })();
  return { status: res.status, events, envelope: undefined, closed };
}

describe('V2 asynchronous purchase', () => {
  let app: TestApp;
  let today: string;
  let tomorrow: string;

  beforeAll(async () => {
    app = await startApp();
    [today, tomorrow] = app.dates;
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('buys end to end: the answer, the result and the database agree', async () => {
    const answer = await submit(app, 101, today);
    expect(answer.status).toBe(200);
    expect(answer.body.code).toBe(200);
    const { messageId, status, pollIntervalMs, resultUrl } = answer.body.data;
    expect(messageId).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    expect(status).toBe('PENDING');
    expect(pollIntervalMs).toBeGreaterThan(0);
    expect(resultUrl).toBe(`/api/tickets/v2/purchase/result?messageId=${messageId}`);

    const result = await terminal(app, messageId);
    expect(result).toMatchObject({ messageId, userId: 101, date: today, status: 'SUCCESS' });
    expect(result.attempts).toBeGreaterThanOrEqual(1);
    expect(result.queuedAt).toEqual(expect.any(String));
    expect(result.completedAt).toEqual(expect.any(String));
    const orders = await validOrders(app, 101, today);
    expect(orders).toHaveLength(1);
    expect(orders[0]).toMatchObject({ messageId, ticketCode: result.ticketCode, orderNo: result.orderNo });

    // The advertised result URL answers the same record.
    const viaUrl = await app.get<Result>(resultUrl);
    expect(viaUrl.body.data).toMatchObject({ messageId, status: 'SUCCESS', ticketCode: result.ticketCode });
  });

  it("admits a submit through the node's own gateway without an action call; other callers use the action", async () => {
    const submitCalls = () => actionCalls(app, 'purchase.submit');
    // moleculer-web's own action around every request it routes: the hot routes are taken before it.
    const gatewayCalls = () => actionCalls(app, 'api.rest');
    const before = submitCalls();
    const gatewayBefore = gatewayCalls();
    const viaHttp = await submit(app, 112, today);
    expect(viaHttp.status).toBe(200);
    expect(viaHttp.body.data.status).toBe('PENDING');
    expect(submitCalls()).toBe(before);
    expect(gatewayCalls()).toBe(gatewayBefore);

    // Another service (or node) calling the action gets the same admission.
    const viaAction = await app.broker.call<{ messageId: string; status: string }, object>(
      'purchase.submit',
      {
        userId: 113,
        date: today,
        verifyHash: app.hash(113, today),
      },
    );
    expect(viaAction.status).toBe('PENDING');
    expect(submitCalls()).toBe(before + 1);

    for (const messageId of [viaHttp.body.data.messageId, viaAction.messageId])
      expect((await terminal(app, messageId)).status).toBe('SUCCESS');
    expect(await validOrders(app, 112, today)).toHaveLength(1);
    expect(await validOrders(app, 113, today)).toHaveLength(1);
  });

  it('answers polls of a terminal result from the gateway memory, with the checks of the action', async () => {
    const { messageId } = (await submit(app, 111, today)).body.data;
    const result = await terminal(app, messageId);
    const resultCalls = () => actionCalls(app, 'purchase.result');
    const gatewayCalls = () => actionCalls(app, 'api.rest');
    const before = resultCalls();
    const gatewayBefore = gatewayCalls();
    for (const query of [`messageId=${messageId}`, `messageId=${messageId}&waitMs=1000`]) {
      const answer = await app.get<Result>(`/api/tickets/v2/purchase/result?${query}`);
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ code: 200, message: 'success', data: result });
    }
    expect(resultCalls()).toBe(before);
    expect(gatewayCalls()).toBe(gatewayBefore);
    // What the action's rules refuse is still refused 1001, by the action.
    for (const query of [`messageId=${messageId}&extra=1`, `messageId=${messageId}&waitMs=x`]) {
      const answer = await app.get(`/api/tickets/v2/purchase/result?${query}`);
      expect({ query, status: answer.status, code: answer.body.code }).toEqual({
        query,
        status: 400,
        code: 1001,
      });
    }
    expect(resultCalls()).toBe(before + 2);
  });

  it('answers a resubmit after success with the same messageId and no new message or order', async () => {
    const first = await submit(app, 102, today);
    const messageId = first.body.data.messageId;
    await terminal(app, messageId);
    const before = await published(app);

    const again = await submit(app, 102, today);
    expect(again.body.code).toBe(200);
    expect(again.body.data).toMatchObject({ messageId, status: 'SUCCESS' });
    expect(await published(app)).toBe(before);
    expect(await validOrders(app, 102)).toHaveLength(1);
  });

  it('keeps each sale day independent for one user', async () => {
    const a = await submit(app, 103, today);
    const b = await submit(app, 103, tomorrow);
    expect(b.body.code).toBe(200);
    expect(b.body.data.messageId).not.toBe(a.body.data.messageId);
    const [ra, rb] = await Promise.all([
      terminal(app, a.body.data.messageId),
      terminal(app, b.body.data.messageId),
    ]);
    expect([ra.status, rb.status]).toEqual(['SUCCESS', 'SUCCESS']);
    expect(ra.ticketCode).not.toBe(rb.ticketCode);
    const orders = await validOrders(app, 103);
    expect(orders.map((o) => o.ticketCode).sort()).toEqual([ra.ticketCode, rb.ticketCode].sort());
  });

  it('finds the result by user and day for V2 and V1 orders, and says none clearly', async () => {
    const v2 = await submit(app, 104, today);
    const done = await terminal(app, v2.body.data.messageId);
    const byUser = await app.get<Result>(`/api/tickets/v2/purchase/result/user?userId=104&date=${today}`);
    expect(byUser.body.code).toBe(200);
    expect(byUser.body.data).toMatchObject({
      messageId: v2.body.data.messageId,
      status: 'SUCCESS',
      ticketCode: done.ticketCode,
    });

    const v1 = await app.post<{ orderNo: string; ticketCode: string }>('/api/tickets/v1/purchase', {
      userId: 105,
      date: today,
      verifyHash: app.hash(105, today),
    });
    expect(v1.body.code).toBe(200);
    const byUserV1 = await app.get<Result>(`/api/tickets/v2/purchase/result/user?userId=105&date=${today}`);
    expect(byUserV1.body.code).toBe(200);
    expect(byUserV1.body.data).toMatchObject({
      userId: 105,
      date: today,
      status: 'SUCCESS',
      orderNo: v1.body.data.orderNo,
      ticketCode: v1.body.data.ticketCode,
    });

    const none = await app.get(`/api/tickets/v2/purchase/result/user?userId=106&date=${today}`);
    expect(none.status).toBe(404);
    expect(none.body.code).toBe(6008);
  });

  it('answers a batch query per id, and refuses more than 100 ids', async () => {
    const a = await submit(app, 107, today);
    const b = await submit(app, 108, today);
    const ids = [a.body.data.messageId, b.body.data.messageId];
    await Promise.all(ids.map((id) => terminal(app, id)));
    const unknown = randomUUID();
    const batch = await app.post<(Result | { messageId: string; code: number })[]>(
      '/api/tickets/v2/purchase/results',
      { messageIds: [ids[0], unknown, ids[1]] },
    );
    expect(batch.body.code).toBe(200);
    expect(batch.body.data).toHaveLength(3);
    expect(batch.body.data[0]).toMatchObject({ messageId: ids[0], userId: 107, status: 'SUCCESS' });
    expect(batch.body.data[1]).toMatchObject({ messageId: unknown, code: 6008 });
    expect(batch.body.data[2]).toMatchObject({ messageId: ids[1], userId: 108, status: 'SUCCESS' });

    const tooMany = await app.post('/api/tickets/v2/purchase/results', {
      messageIds: Array.from({ length: 101 }, () => randomUUID()),
    });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.code).toBe(1001);
    const empty = await app.post('/api/tickets/v2/purchase/results', { messageIds: [] });
    expect(empty.body.code).toBe(1001);
  });

  it('answers 6008 for an unknown messageId and 1001 for a malformed one, never 500', async () => {
    const unknown = await resultOf(app, randomUUID());
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe(6008);
    const unknownWait = await resultOf(app, randomUUID(), 200);
    expect(unknownWait.body.code).toBe(6008);
    for (const bad of ['', 'a b', '../../etc', 'x'.repeat(65), "1' OR '1'='1", '%00']) {
      const r = await resultOf(app, bad);
      expect([r.status, r.body.code]).toEqual([400, 1001]);
    }
    const badWait = await app.get(`/api/tickets/v2/purchase/result?messageId=${randomUUID()}&waitMs=30001`);
    expect(badWait.body.code).toBe(1001);
  });

  it('long-polls: one request started right after submit returns the terminal status', async () => {
    const answer = await submit(app, 109, today);
    const polled = await resultOf(app, answer.body.data.messageId, 20_000);
    expect(polled.body.code).toBe(200);
    expect(polled.body.data.status).toBe('SUCCESS');
    expect(polled.body.data.ticketCode).toEqual(expect.any(String));
  });

  it('streams the statuses over SSE until SUCCESS, and answers 6008 for an unknown id', async () => {
    const answer = await submit(app, 110, today);
    const sse = await openSse(
      `${app.baseUrl}/api/tickets/v2/purchase/stream?messageId=${answer.body.data.messageId}`,
    );
    expect(sse.status).toBe(200);
    await sse.closed;
    const statuses = sse.events.map((e) => e.data.status);
    // The stream may open after some transitions; whatever it saw is in order, once each.
    expect(statuses.at(-1)).toBe('SUCCESS');
    expect(new Set(statuses).size).toBe(statuses.length);
    const order = ['PENDING', 'PROCESSING', 'SUCCESS'];
    expect([...statuses].sort((x, y) => order.indexOf(x) - order.indexOf(y))).toEqual(statuses);
    expect(sse.events.every((e) => e.event === 'status')).toBe(true);

    const missing = await openSse(`${app.baseUrl}/api/tickets/v2/purchase/stream?messageId=${randomUUID()}`);
    expect(missing.status).toBe(404);
    expect(missing.envelope).toMatchObject({ code: 6008 });
    const malformed = await openSse(`${app.baseUrl}/api/tickets/v2/purchase/stream?messageId=a%20b`);
    expect(malformed.envelope).toMatchObject({ code: 1001 });
  });
});

describe('V2 purchase with the worker started later (separate node)', () => {
  let app: TestApp;
  let worker: ServiceBroker | undefined;
  let today: string;

  beforeAll(async () => {
    // Gateway and tickets only: accepted messages wait on the queue until a worker node joins.
    app = await startApp({ SERVICES: 'api,tickets,purchase' });
    today = app.dates[0];
  });
  afterAll(async () => {
    await worker?.stop();
    await app?.stop();
  });

  it('keeps a queued message PENDING, idempotent, and long-polls to the timeout with its position', async () => {
    const first = await submit(app, 201, today);
    expect(first.body.code).toBe(200);
    const messageId = first.body.data.messageId;
    const before = await published(app);

    const again = await submit(app, 201, today);
    expect(again.body.code).toBe(200);
    expect(again.body.data).toMatchObject({ messageId, status: 'PENDING' });
    expect(await published(app)).toBe(before);

    const polled = await resultOf(app, messageId, 1500);
    expect(polled.body.code).toBe(200);
    expect(polled.body.data).toMatchObject({ messageId, status: 'PENDING' });
    expect(polled.body.data.position).toEqual(expect.any(Number));
    expect(polled.body.data.pollIntervalMs).toBeGreaterThan(0);
  });

  it('streams PENDING, PROCESSING, SUCCESS once each in order when a worker node picks the message up', async () => {
    const answer = await submit(app, 202, today);
    const messageId = answer.body.data.messageId;
    const sse = await openSse(`${app.baseUrl}/api/tickets/v2/purchase/stream?messageId=${messageId}`);
    expect(sse.status).toBe(200);
    await eventually(async () => (sse.events.length > 0 ? true : undefined));
    expect(sse.events[0].data.status).toBe('PENDING');

    worker = createBroker(loadConfig({ ...app.env, SERVICES: 'purchase-worker' }), `${app.namespace}-worker`);
    await worker.start();
    await sse.closed;
    expect(sse.events.map((e) => e.data.status)).toEqual(['PENDING', 'PROCESSING', 'SUCCESS']);
    const last = sse.events[2].data;
    const orders = await validOrders(app, 202, today);
    expect(orders).toHaveLength(1);
    expect(last.ticketCode).toBe(orders[0].ticketCode);

    // The earlier queued message (user 201) was processed too, once.
    const r201 = await eventually(async () => {
      const r = await app.get<Result>(`/api/tickets/v2/purchase/result/user?userId=201&date=${today}`);
      return r.body.data?.status === 'SUCCESS' ? r.body.data : undefined;
    });
    expect(await validOrders(app, 201, today)).toEqual([
      expect.objectContaining({ ticketCode: r201.ticketCode }),
    ]);
  });
});
