import type { ResultRecord } from '../../lib/purchase/results';
import { deleteNamespace } from '../../lib/store/redis';
import { keys } from '../../lib/store/keys';
import { serverRunId, type RepairReport } from '../../lib/purchase/cache';
import { eventually, startApp, type TestApp } from '../helpers/app';
import { dayStock, expectConsistent, resultOf, submit, terminal, validOrders } from '../helpers/purchase';

const STOCK = 40;

describe('V2 after the cache loses its state', () => {
  let app: TestApp;
  let date: string;
  const firstSale = new Map<number, ResultRecord>();
  const V1_BUYER = 50;

  beforeAll(async () => {
    // A one-entry result LRU, so old results are really read from Redis or the database.
    app = await startApp({ RESULT_LRU_SIZE: '1' });
    date = app.dates[0];
    expect((await app.put(`/api/admin/tickets/${date}`, { total: STOCK }, app.admin)).body.code).toBe(200);
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('sells a first round normally', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => submit(app, i + 1, date)));
    for (const [i, a] of answers.entries()) {
      expect(a.body.code).toBe(200);
      firstSale.set(i + 1, await terminal(app, a.body.data.messageId));
    }
    expect([...firstSale.values()].every((r) => r.status === 'SUCCESS')).toBe(true);
    const v1 = await app.post('/api/tickets/v1/purchase', {
      userId: V1_BUYER,
      date,
      verifyHash: app.hash(V1_BUYER, date),
    });
    expect(v1.body.code).toBe(200);
    await expectConsistent(app, date);
  });

  it('refuses submits with 5030 until the cache is rebuilt, and answers old results from the database', async () => {
    // Hold the rebuild lock across the flush, so the "not rebuilt yet" moment is certain, not a race.
    const raw = app.rt.redis.duplicate({ keyPrefix: '' });
    try {
      const prefix = `${app.namespace}:`;
      await raw.set(prefix + keys.rebuildLock, 'test', 'PX', 30_000);
      let cursor = '0';
      do {
        const [next, found] = await raw.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        const doomed = found.filter((k) => k !== prefix + keys.rebuildLock);
        if (doomed.length) await raw.unlink(...doomed);
      } while (cursor !== '0');
    } finally {
      raw.disconnect();
    }

    const refused = await submit(app, 30, date);
    expect(refused.status).toBe(503);
    expect(refused.body.code).toBe(5030);
    const buyerAgain = await submit(app, 1, date);
    expect(buyerAgain.body.code).toBe(5030);

    // Old results of successful orders still answer, from the database.
    for (const [userId, before] of firstSale) {
      const r = await resultOf(app, before.messageId);
      expect(r.body.code).toBe(200);
      expect(r.body.data).toMatchObject({
        messageId: before.messageId,
        userId,
        status: 'SUCCESS',
        ticketCode: before.ticketCode,
        orderNo: before.orderNo,
      });
    }
    const byUser = await app.get<ResultRecord>(`/api/tickets/v2/purchase/result/user?userId=3&date=${date}`);
    expect(byUser.body.data).toMatchObject({ status: 'SUCCESS', ticketCode: firstSale.get(3)!.ticketCode });

    // Release the lock: the service notices the loss by itself and rebuilds.
    await app.rt.redis.del(keys.rebuildLock);
    const accepted = await eventually(async () => {
      const r = await submit(app, 30, date);
      if (r.body.code === 5030) return undefined;
      return r;
    }, 20_000);
    expect(accepted.body.code).toBe(200);
    expect((await terminal(app, accepted.body.data.messageId)).status).toBe('SUCCESS');
  });

  it('sells nothing twice to earlier buyers after the rebuild', async () => {
    for (const [userId, before] of firstSale) {
      const again = await submit(app, userId, date);
      // Either the same message or "already purchased"; never a new message.
      if (again.body.code === 200) expect(again.body.data.messageId).toBe(before.messageId);
      else expect(again.body.code).toBe(6005);
    }
    expect((await submit(app, V1_BUYER, date)).body.code).toBe(6005);
    const orders = await validOrders(app, date);
    for (const [userId, before] of firstSale)
      expect(orders.filter((o) => o.userId === userId)).toEqual([
        { userId, messageId: before.messageId, ticketCode: before.ticketCode },
      ]);
    await expectConsistent(app, date);
  });

  it('rebuilds after a plain flush of the namespace and sells the rest exactly', async () => {
    await deleteNamespace(app.rt.redis, app.namespace);
    // The second round, old and new users mixed, retried while the cache is being rebuilt.
    const users = Array.from({ length: 60 }, (_, i) => i + 1);
    const outcomes = await Promise.all(
      users.map((userId) =>
        eventually(async () => {
          const r = await submit(app, userId, date);
          return r.body.code === 5030 ? undefined : r;
        }, 20_000),
      ),
    );
    const newMessages = outcomes
      .filter((a, i) => a.body.code === 200 && firstSale.get(users[i])?.messageId !== a.body.data.messageId)
      .map((a) => a.body.data.messageId);
    for (const [i, a] of outcomes.entries()) {
      const userId = users[i];
      if (firstSale.has(userId)) {
        expect(a.body.code === 6005 || a.body.data.messageId === firstSale.get(userId)!.messageId).toBe(true);
      } else if (userId === V1_BUYER || userId === 30) {
        expect([6005, 200]).toContain(a.body.code);
      } else {
        expect([200, 6002]).toContain(a.body.code);
      }
    }
    const results = await Promise.all(newMessages.map((id) => terminal(app, id)));
    expect(results.every((r) => r.status === 'SUCCESS')).toBe(true);
    const day = await dayStock(app, date);
    expect(day).toEqual({ total: STOCK, remaining: 0, sold: STOCK });
    await expectConsistent(app, date);
  });

  it('reports and repairs a tampered cache on admin reconcile', async () => {
    const victim = firstSale.get(5)!;
    await app.rt.redis.set(keys.stock(date), 9999);
    await app.rt.redis.hdel(keys.claims(date), '5');
    await app.rt.redis.hset(keys.claims(date), '999', 'bogus-claim');
    await app.rt.redis.del(keys.result(victim.messageId));

    const res = await app.post<RepairReport>('/api/admin/reconcile', {}, app.admin);
    expect(res.body.code).toBe(200);
    const repair = res.body.data.days.find((d) => d.date === date)!;
    expect(repair).toMatchObject({
      stock: { cached: 9999, expected: 0 },
      claimsAdded: 1,
      claimsRemoved: 1,
      resultsRestored: 1,
    });
    expect(res.body.data.differences).toBeGreaterThanOrEqual(4);

    expect(await app.rt.redis.get(keys.stock(date))).toBe('0');
    expect(await app.rt.redis.hget(keys.claims(date), '5')).toBe(victim.messageId);
    expect(await app.rt.redis.hget(keys.claims(date), '999')).toBeNull();
    expect(await app.rt.redis.hget(keys.result(victim.messageId), 'status')).toBe('SUCCESS');
    await expectConsistent(app, date);
    expect((await submit(app, 5, date)).body.data).toMatchObject({ messageId: victim.messageId });
    expect((await submit(app, 999, date)).body.code).toBe(6002);

    const again = await app.post<RepairReport>('/api/admin/reconcile', {}, app.admin);
    expect(again.body.data.differences).toBe(0);
  });

  it('distrusts a cache built on another Redis server (a promoted replica) and rebuilds it', async () => {
    const runId = await serverRunId(app.rt.redis);
    expect(await app.rt.redis.get(keys.generation)).toBe(runId);
    // What a replica promoted by Sentinel holds: the old primary's marker and a stale copy.
    const victim = firstSale.get(7)!;
    await app.rt.redis
      .multi()
      .set(keys.generation, 'run-id-of-the-old-primary')
      .set(keys.stock(date), 9999)
      .hdel(keys.claims(date), '7')
      .exec();
    // The marker goes first, `ready` last: rebuilt once both say so.
    await eventually(async () => ((await app.rt.redis.get(keys.generation)) === runId ? true : undefined));
    await eventually(async () => ((await app.rt.redis.exists(keys.ready)) === 1 ? true : undefined));
    expect(await app.rt.redis.get(keys.stock(date))).toBe('0');
    expect(await app.rt.redis.hget(keys.claims(date), '7')).toBe(victim.messageId);
    await expectConsistent(app, date);
  });

  it('does not trust a cache built elsewhere because the admin reconcile repaired it', async () => {
    const runId = await serverRunId(app.rt.redis);
    // Another node is rebuilding (the lock is held), so only the reconcile writes meanwhile.
    await app.rt.redis.set(keys.rebuildLock, 'test', 'PX', 30_000);
    try {
      // As the watchdog leaves it on noticing the move: `ready` gone, the old marker.
      await app.rt.redis.multi().set(keys.generation, 'run-id-of-the-old-primary').del(keys.ready).exec();
      const res = await app.post<RepairReport>('/api/admin/reconcile', {}, app.admin);
      expect(res.body.code).toBe(200);
      expect(await app.rt.redis.get(keys.generation)).toBe('run-id-of-the-old-primary');
    } finally {
      await app.rt.redis.del(keys.rebuildLock);
    }
    await eventually(async () => ((await app.rt.redis.get(keys.generation)) === runId ? true : undefined));
    await eventually(async () => ((await app.rt.redis.exists(keys.ready)) === 1 ? true : undefined));
    await expectConsistent(app, date);
  });
});
