import Redis from 'ioredis';
import { isTerminal, type PurchaseStatus } from '../../machines/purchase.machine';
import { keys, parseOutboxEntry } from '../../lib/store/keys';
import { createRedis } from '../../lib/store/redis';
import {
  acceptedIds,
  assertInvariants,
  buyers,
  cleanUpAfterSuite,
  countBy,
  Deployment,
  describeRun,
  sleep,
  startLoad,
  waitAccepted,
  waitFor,
  type Gateway,
  type NodeOverrides,
} from '../helpers/processes';
import { TcpProxy } from '../helpers/tcp-proxy';

/**
 * SPEC §5.7 / §7: a process killed between the Redis admission and the queue's acknowledgement (or,
 * for V1, between the admission and the commit) strands nobody. The instant is made reproducible by
 * a proxy the test owns: the node's path to NATS (or PostgreSQL) goes dark, so its admissions are
 * written to Redis while their publishes (commits) never come back, then the node is SIGKILLed.
 */

const USERS = 400;
const STOCK = 300;

jest.setTimeout(240_000);

const proxies: TcpProxy[] = [];
cleanUpAfterSuite(async () => {
  for (const p of proxies) await p.close();
});

async function proxyTo(port: number): Promise<TcpProxy> {
  const proxy = await TcpProxy.start(port);
  proxies.push(proxy);
  return proxy;
}

/** Admissions in the outbox (admitted, not acknowledged by the queue or committed), by kind. */
async function outbox(redis: Redis): Promise<{ v1: number; v2: number }> {
  const entries = (await redis.zrange(keys.outbox, 0, -1)).map(parseOutboxEntry);
  const v1 = entries.filter((e) => e?.messageId.startsWith('v1-')).length;
  return { v1, v2: entries.length - v1 };
}

/**
 * Waits until the outbox is empty. A user can settle before the outbox does: a message whose PubAck
 * the dark path swallowed did reach the queue, its worker finishes it, and the entry goes at the next
 * recovery pass once the dead admitter's heartbeat has lapsed.
 */
async function waitOutboxEmpty(redis: Redis, dep: Deployment): Promise<void> {
  let last = { v1: -1, v2: -1 };
  await waitFor(
    async () => {
      last = await outbox(redis);
      return last.v1 + last.v2 === 0 ? true : undefined;
    },
    45_000,
    () => `outbox still holds ${JSON.stringify(last)}\n${dep.output()}`,
    250,
  );
}

interface UserResult {
  status: PurchaseStatus | 'none';
}

/** What each user's newest purchase is, as the user sees it (`result/user`). */
async function userStates(gateway: Gateway, date: string, users: number[]): Promise<Map<number, string>> {
  const states = new Map<number, string>();
  for (let i = 0; i < users.length; i += 25) {
    const batch = users.slice(i, i + 25);
    const answers = await Promise.all(
      batch.map((userId) =>
        gateway.get<UserResult>(`/api/tickets/v2/purchase/result/user?userId=${userId}&date=${date}`),
      ),
    );
    answers.forEach((a, j) =>
      states.set(
        batch[j],
        a.body.code === 200 ? a.body.data.status : a.body.code === 6008 ? 'none' : 'error',
      ),
    );
  }
  return states;
}

/** Waits until no user of `users` has a purchase that is still on its way; returns the ms it took. */
async function waitEveryUserSettled(gateway: Gateway, dep: Deployment, date: string, users: number[]) {
  const from = Date.now();
  let last = new Map<number, string>();
  await waitFor(
    async () => {
      last = await userStates(gateway, date, users);
      const open = [...last.values()].filter((s) => s !== 'none' && !isTerminal(s as PurchaseStatus));
      return open.length === 0 ? true : undefined;
    },
    90_000,
    () => `users still waiting: ${JSON.stringify(countBy([...last.values()]))}\n${dep.output()}`,
    250,
  );
  return { ms: Date.now() - from, states: countBy([...last.values()]) };
}

/** Starts a V2 load on `gateway`, darkens `proxy` mid-sale and SIGKILLs the node with submits in the gap. */
async function killInTheGap(dep: Deployment, gateway: Gateway, proxy: TcpProxy, date: string) {
  const load = startLoad(dep, [gateway], { requests: buyers(date, USERS), concurrency: 16, pauseMs: 0 });
  await waitAccepted(load, 60);
  proxy.blackhole();
  await sleep(400); // every lane is now waiting for an acknowledgement that will never come
  await gateway.process.kill();
  proxy.cut(); // the dead node's connections close, as the kernel would close them
  load.stop();
  const answers = await load.done;
  return { answers, acceptedBeforeKill: acceptedIds(answers) };
}

describe('the whole single-process service killed between admissions and their acknowledgements', () => {
  let dep: Deployment;
  let redis: Redis;
  let node: NodeOverrides;
  let nats: TcpProxy;

  beforeAll(async () => {
    nats = await proxyTo(4222);
    dep = Deployment.create({ SEED_USERS: String(USERS + 10) });
    node = { name: 'service', env: { SERVICES: 'all', NATS_URL: `nats://127.0.0.1:${nats.port}` } };
    redis = createRedis(dep.config, dep.namespace);
    await dep.startGateway(node);
    await dep.setStock(dep.dates[0], STOCK);
  });

  afterAll(async () => {
    redis?.disconnect();
    await dep?.destroy();
  });

  it('finishes every admission after the restart, and a second round sells exactly the stock', async () => {
    const date = dep.dates[0];
    const [first] = dep.gateways;
    const round1 = await killInTheGap(dep, first, nats, date);
    const stranded = await outbox(redis);
    // The instant was hit: admissions are in Redis whose messages never reached the queue.
    expect(stranded.v2).toBeGreaterThan(0);

    nats.restore();
    const restartAt = Date.now();
    const restarted = await dep.startGateway({ ...node, name: 'service (restart)' });
    const startMs = Date.now() - restartAt;
    const recovery = await waitEveryUserSettled(
      restarted,
      dep,
      date,
      buyers(date, USERS).map((b) => b.userId),
    );
    await waitOutboxEmpty(redis, dep);

    // Round two: the same buyers again. Nothing is held for anyone, so the stock sells out exactly.
    const round2 = await startLoad(dep, [restarted], { requests: buyers(date, USERS), concurrency: 8 }).done;
    expect(Object.keys(countBy(round2.map((a) => a.code))).sort()).toEqual(['200', '6002']);
    const ids = [...new Set([...round1.acceptedBeforeKill, ...acceptedIds(round2)])];
    const f = await assertInvariants(dep, restarted, date, ids);
    expect(f.sold).toBe(STOCK);
    expect(f.remaining).toBe(0);
    console.log(
      describeRun(
        'whole service SIGKILLed between admission and PubAck, restarted',
        { users: USERS, codes: countBy([...round1.answers, ...round2].map((a) => a.code)) },
        `NATS path darkened after ${round1.acceptedBeforeKill.length} accepted, killed with ${stranded.v2} ` +
          `admissions unpublished; restarted in ${startMs} ms, then every user settled within ${recovery.ms} ms ` +
          `(${JSON.stringify(recovery.states)}); round two sold the rest`,
        f,
      ),
    );
  });
});

describe('a gateway-only node killed for good with admissions unpublished', () => {
  let dep: Deployment;
  let redis: Redis;
  let nats: TcpProxy;

  beforeAll(async () => {
    nats = await proxyTo(4222);
    dep = Deployment.create({ SEED_USERS: String(USERS + 10) });
    redis = createRedis(dep.config, dep.namespace);
    await dep.startSale({
      stock: STOCK,
      gateway: { name: 'gateway-doomed', env: { NATS_URL: `nats://127.0.0.1:${nats.port}` } },
    });
    await dep.startGateway({ name: 'gateway-survivor' });
  });

  afterAll(async () => {
    redis?.disconnect();
    await dep?.destroy();
  });

  it('lets the other gateway finish them: every user terminal, nothing held', async () => {
    const date = dep.dates[0];
    const [doomed, survivor] = dep.gateways;
    const { answers, acceptedBeforeKill } = await killInTheGap(dep, doomed, nats, date);
    const stranded = await outbox(redis);
    expect(stranded.v2).toBeGreaterThan(0);

    const recovery = await waitEveryUserSettled(
      survivor,
      dep,
      date,
      buyers(date, USERS).map((b) => b.userId),
    );
    await waitOutboxEmpty(redis, dep);
    const f = await assertInvariants(dep, survivor, date, acceptedBeforeKill);
    // The finished admissions became orders too (their clients never heard "accepted").
    expect(f.ordersOutsideAccepted).toBeGreaterThan(0);
    console.log(
      describeRun(
        'gateway-only node SIGKILLed for good between admission and PubAck',
        { users: USERS, codes: countBy(answers.map((a) => a.code)) },
        `${stranded.v2} admissions unpublished at the kill; the surviving gateway settled every user in ` +
          `${recovery.ms} ms (${JSON.stringify(recovery.states)})`,
        f,
      ),
    );
  });
});

describe('a V1 purchase killed between its admission and its commit', () => {
  let dep: Deployment;
  let redis: Redis;
  let pg: TcpProxy;

  beforeAll(async () => {
    pg = await proxyTo(5432);
    dep = Deployment.create({ SEED_USERS: String(USERS + 10) });
    redis = createRedis(dep.config, dep.namespace);
    const viaProxy = dep.config.databaseUrl.replace(':5432/', `:${pg.port}/`);
    await dep.startSale({
      stock: STOCK,
      gateway: { name: 'gateway-doomed', env: { DATABASE_URL: viaProxy } },
    });
    await dep.startGateway({ name: 'gateway-survivor' });
  });

  afterAll(async () => {
    redis?.disconnect();
    await dep?.destroy();
  });

  it('holds no claim and no ticket for it once another gateway has finished it', async () => {
    const date = dep.dates[0];
    const [doomed, survivor] = dep.gateways;
    const sent: Promise<unknown>[] = [];
    let bought = 0;
    for (let userId = 1; userId <= 40; userId++) {
      sent.push(
        doomed
          .post('/api/tickets/v1/purchase', { userId, date, verifyHash: dep.hash(userId, date) })
          .then((a) => (bought += a.body.code === 200 ? 1 : 0)),
      );
      if (userId === 20) {
        await waitFor(
          async () => (bought >= 5 ? true : undefined),
          30_000,
          () => 'no V1 purchase done',
        );
        pg.blackhole();
        await sleep(400);
      }
    }
    await sleep(400);
    await doomed.process.kill();
    pg.cut(); // its connections close: PostgreSQL rolls back what they had begun
    await Promise.all(sent);
    const stranded = await outbox(redis);
    expect(stranded.v1).toBeGreaterThan(0);

    await waitFor(
      async () =>
        (await outbox(redis)).v1 === 0 && (await redis.hlen(keys.pending(date))) === 0 ? true : undefined,
      60_000,
      () => `V1 reservations still held\n${dep.output()}`,
    );
    // The cache agrees with the database again (stock, claims), and nothing else is off.
    const report = await dep.audit({ stuckAfterMs: 0 });
    expect(report.failed).toEqual([]);
    // Every user of the interrupted purchases can buy: a claim left behind would answer 6005.
    const orders = await dep.sql<{ userId: string }>(
      `SELECT user_id::text AS "userId" FROM orders WHERE date = $1 AND status = 'valid'`,
      [date],
    );
    const holders = new Set(orders.map((o) => Number(o.userId)));
    const retry = Array.from({ length: 40 }, (_, i) => i + 1).filter((u) => !holders.has(u));
    expect(retry.length).toBeGreaterThan(0);
    for (const userId of retry) {
      const again = await survivor.post('/api/tickets/v1/purchase', {
        userId,
        date,
        verifyHash: dep.hash(userId, date),
      });
      expect(again.body.code).toBe(200);
    }
    const [day] = await dep.sql<{ sold: number; remaining: number }>(
      'SELECT sold, remaining FROM ticket_days WHERE date = $1',
      [date],
    );
    expect(day.sold).toBe(40);
    expect(Number(await redis.get(keys.stock(date)))).toBe(day.remaining);
    console.log(
      `[fault] V1 purchase SIGKILLed between admission and commit\n` +
        `  ${stranded.v1} V1 reservations held at the kill; released by the surviving gateway; ` +
        `${retry.length} users bought again, sold ${day.sold}, remaining ${day.remaining} (cache agrees)`,
    );
  });
});
