import { QueryTypes } from 'sequelize';
import type { ResultRecord } from '../../lib/purchase/results';
import type { PurchaseGateway } from '../../lib/purchase/gateway';
import { keys } from '../../lib/store/keys';
import { deleteNamespace } from '../../lib/store/redis';
import { setSalePaused } from '../../lib/tickets/days';
import { localGateway } from '../../services/local';
import { eventually, startApp, type TestApp } from '../helpers/app';

/**
 * SPEC §5.8 and §7: what gateways keep in memory converges to the shared truth, a pause survives the
 * loss of Redis, reads cannot starve the order writer, a slow message keeps its delivery (in-progress
 * acknowledgements under a short ack wait), a long poll is answered at its end, and the dead-letter
 * stream is bounded.
 */

jest.setTimeout(120_000);

type Submit = { messageId: string; status: string };

const gatewayOf = (app: TestApp): PurchaseGateway => localGateway(app.broker)!;

async function submit(app: TestApp, userId: number, date = app.dates[0]) {
  return app.post<Submit>('/api/tickets/v2/purchase', { userId, date, verifyHash: app.hash(userId, date) });
}

async function terminal(app: TestApp, messageId: string): Promise<ResultRecord> {
  const res = await app.get<ResultRecord>(
    `/api/tickets/v2/purchase/result?messageId=${messageId}&waitMs=20000`,
  );
  expect(res.body.code).toBe(200);
  return res.body.data;
}

describe('flags that missed their broadcast', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startApp({ FLAG_CHECK_MS: '200' });
    await app.put(`/api/admin/tickets/${app.dates[0]}`, { total: 50 }, app.admin);
  });

  afterAll(async () => {
    await app?.stop();
  });

  it('a resume the gateway never heard of reaches it through Redis', async () => {
    expect((await app.post('/api/admin/sale/pause', {}, app.admin)).body.code).toBe(200);
    expect((await submit(app, 1)).body.code).toBe(6007);
    // The sale is resumed behind the gateway's back: the database and Redis, no broadcast.
    await setSalePaused(app.rt.db, false);
    await app.rt.redis.del(keys.paused);
    const accepted = await eventually(async () => {
      const res = await submit(app, 1);
      return res.body.code === 200 ? res : undefined;
    });
    expect(accepted.body.data.status).toBe('PENDING');
  });

  it('a pause the gateway never heard of reaches it too', async () => {
    await app.rt.redis.set(keys.paused, new Date().toISOString());
    await eventually(async () => ((await submit(app, 2)).body.code === 6007 ? true : undefined));
    await app.post('/api/admin/sale/resume', {}, app.admin);
    expect((await submit(app, 2)).body.code).toBe(200);
  });

  it('a day it believes sold out sells again once Redis has stock', async () => {
    const date = app.dates[1];
    await app.put(`/api/admin/tickets/${date}`, { total: 0 }, app.admin);
    expect((await submit(app, 3, date)).body.code).toBe(6002);
    // The gateway now refuses the day alone (once it has the day's claims).
    await eventually(async () =>
      gatewayOf(app).refuseLocally({ userId: 3, date })?.code === 6002 ? true : undefined,
    );
    // Stock added where this gateway cannot hear it (its "stock changed" broadcast was lost).
    await app.rt.db.query(`UPDATE ticket_days SET total = 5, remaining = 5 WHERE date = $1`, {
      bind: [date],
    });
    await app.rt.redis.set(keys.stock(date), 5);
    const accepted = await eventually(async () => {
      const res = await submit(app, 3, date);
      return res.body.code === 200 ? res : undefined;
    });
    expect((await terminal(app, accepted.body.data.messageId)).status).toBe('SUCCESS');
  });
});

describe('a pause when Redis loses its state', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startApp();
    await app.put(`/api/admin/tickets/${app.dates[0]}`, { total: 20 }, app.admin);
  });

  afterAll(async () => {
    await app?.stop();
  });

  it('is still in force after the rebuild from the database', async () => {
    expect((await app.post('/api/admin/sale/pause', {}, app.admin)).body.code).toBe(200);
    const readyBefore = await app.rt.redis.get(keys.ready);
    await deleteNamespace(app.rt.redis, app.namespace);
    // The watchdog rebuilds the cache from PostgreSQL.
    await eventually(async () => {
      const ready = await app.rt.redis.get(keys.ready);
      return ready && ready !== readyBefore ? true : undefined;
    });
    expect(await app.rt.redis.exists(keys.paused)).toBe(1);
    expect((await submit(app, 10)).body.code).toBe(6007);
    const time = await app.get<{ allowed: boolean; reason: string }>(
      `/api/tickets/validate-time?date=${app.dates[0]}`,
    );
    expect(time.body.data).toMatchObject({ allowed: false, reason: 'paused' });
    await app.post('/api/admin/sale/resume', {}, app.admin);
    expect((await submit(app, 10)).body.code).toBe(200);
  });
});

describe('the order writer under a flood of reads', () => {
  let app: TestApp;

  beforeAll(async () => {
    // One connection for every read of this process, and a flood that keeps it busy.
    app = await startApp({ DB_POOL_MAX: '1' });
    await app.put(`/api/admin/tickets/${app.dates[0]}`, { total: 20 }, app.admin);
  });

  afterAll(async () => {
    await app?.stop();
  });

  it('commits accepted messages while the read pool is held', async () => {
    let held = true;
    // The read pool's only connection is taken by a long read; the purchase must not wait for it.
    const blocker = app.rt.db
      .query('SELECT pg_sleep(12)', { type: QueryTypes.SELECT })
      .finally(() => (held = false));
    try {
      await eventually(async () => {
        const [row] = await app.rt.writerDb.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(12)' AND state = 'active'`,
          { type: QueryTypes.SELECT },
        );
        return row.n === 1 ? true : undefined;
      });
      const accepted = await submit(app, 20);
      expect(accepted.body.code).toBe(200);
      const result = await terminal(app, accepted.body.data.messageId);
      expect(result).toMatchObject({ status: 'SUCCESS', attempts: 1 });
      expect(held).toBe(true);
    } finally {
      await blocker;
    }
  });
});

describe('a message that takes longer than the ack wait', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startApp({ QUEUE_ACK_WAIT_MS: '1000', DB_LOCK_TIMEOUT_MS: '20000' });
    await app.put(`/api/admin/tickets/${app.dates[0]}`, { total: 20 }, app.admin);
  });

  afterAll(async () => {
    await app?.stop();
  });

  it('keeps its delivery: the worker says it is in progress, nothing is redelivered', async () => {
    const date = app.dates[0];
    const queue = await app.rt.queue();
    const before = await queue.consumerInfo();
    // The day's row is locked for several ack waits: the order writer waits for it.
    const tx = await app.rt.db.transaction();
    await app.rt.db.query('SELECT 1 FROM ticket_days WHERE date = $1 FOR UPDATE', {
      bind: [date],
      transaction: tx,
    });
    const accepted = await submit(app, 30);
    expect(accepted.body.code).toBe(200);
    await eventually(async () => ((await queue.consumerInfo()).num_ack_pending === 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 3500));
    const during = await queue.consumerInfo();
    await tx.commit();
    const result = await terminal(app, accepted.body.data.messageId);
    expect(result).toMatchObject({ status: 'SUCCESS', attempts: 1 });
    expect(during.num_redelivered).toBe(before.num_redelivered);
    expect((await queue.consumerInfo()).num_redelivered).toBe(before.num_redelivered);
  });
});

describe('a long poll near its longest wait, and the dead-letter stream', () => {
  let app: TestApp;

  beforeAll(async () => {
    // No worker: a submitted message stays PENDING.
    app = await startApp({ SERVICES: 'api,tickets,purchase', QUEUE_DLQ_MAX_MESSAGES: '5000' });
    await app.put(`/api/admin/tickets/${app.dates[0]}`, { total: 20 }, app.admin);
  });

  afterAll(async () => {
    await app?.stop();
  });

  it('answers 200 with the current status at the end of a 30 s wait, not 503', async () => {
    const accepted = await submit(app, 40);
    const res = await app.get<ResultRecord>(
      `/api/tickets/v2/purchase/result?messageId=${accepted.body.data.messageId}&waitMs=30000`,
    );
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ messageId: accepted.body.data.messageId, status: 'PENDING' });
  });

  it('keeps the dead-letter stream bounded by its configured limits', async () => {
    const queue = await app.rt.queue();
    const info = await queue.jsm.streams.info(queue.names.dlqStream);
    expect(info.config.max_msgs).toBe(5000);
    expect(info.config.max_age).toBe(168 * 3600 * 1e9);
  });
});
