import type Redis from 'ioredis';
import { keys } from '../../lib/store/keys';
import { createRedis, deleteNamespace } from '../../lib/store/redis';
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
  type SubmitData,
} from '../helpers/processes';

/**
 * SPEC §5.5: losing all cache state mid-sale loses no order and sells nothing twice; the service
 * notices, refuses admissions (5030) until it has rebuilt Redis from the database, then sells on.
 *
 * Every key of this namespace is deleted while the sale runs. To observe the "not admitting" window
 * deterministically, the test holds the namespace's rebuild lock (as if another node were
 * rebuilding) for a moment, then releases it and the service's own watchdog rebuilds.
 */

const USERS = 300;
const SCARCE = 120; // day 0: sells out
const PLENTY = 1000; // day 1: does not, so the cache stock must converge exactly

jest.setTimeout(180_000);

cleanUpAfterSuite();

/**
 * Deletes every key of the namespace except `keep` in one transaction (the namespace's keys only,
 * never FLUSHALL), so the keys vanish together as with a real flush.
 */
async function flushNamespace(redis: Redis, namespace: string, keep: string): Promise<number> {
  const raw = redis.duplicate({ keyPrefix: '' });
  try {
    const doomed = new Set<string>();
    let cursor = '0';
    do {
      const [next, found] = await raw.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
      cursor = next;
      for (const key of found) if (key !== `${namespace}:${keep}`) doomed.add(key);
    } while (cursor !== '0');
    const all = [...doomed];
    const tx = raw.multi();
    for (let i = 0; i < all.length; i += 1000) tx.unlink(...all.slice(i, i + 1000));
    const answers = (await tx.exec()) ?? [];
    return answers.reduce((n, [, deleted]) => n + Number(deleted), 0);
  } finally {
    raw.disconnect();
  }
}

describe('Redis flushed in the middle of a sale', () => {
  let dep: Deployment;
  let gateway: Gateway;
  let redis: Redis;

  beforeAll(async () => {
    dep = Deployment.create({ WORKER_BATCH_MS: '100', SEED_USERS: String(USERS + 100) });
    redis = createRedis(dep.config, dep.namespace);
    gateway = await dep.startSale({ stock: SCARCE });
    await dep.setStock(dep.dates[1], PLENTY);
  });

  afterAll(async () => {
    redis?.disconnect();
    await dep?.destroy();
  });

  const probe = (userId: number) =>
    gateway.post<SubmitData>('/api/tickets/v2/purchase', {
      userId,
      date: dep.dates[1],
      verifyHash: dep.hash(userId, dep.dates[1]),
    });

  it('refuses with 5030 until rebuilt, then sells on: no lost order, no oversell, no second ticket', async () => {
    const [scarce, plenty] = dep.dates;
    // Each user buys on both days, interleaved.
    const requests = buyers(scarce, USERS).flatMap((r) => [r, { userId: r.userId, date: plenty }]);
    const load = startLoad(dep, [gateway], { requests, concurrency: 6, pauseMs: 10, retries: 50 });
    await waitAccepted(load, 120);
    const unacked = (await dep.consumerInfo()).num_ack_pending;

    // Flush: every key of the namespace goes (claims, stock, reservations, results, ready).
    await redis.set(keys.rebuildLock, 'fault-test', 'PX', 30_000);
    const deleted = await flushNamespace(redis, dep.namespace, keys.rebuildLock);
    const flushedAt = load.answers.length;
    const refused = await probe(USERS + 1);
    expect(refused.status).toBe(503);
    expect(refused.body.code).toBe(5030);
    await sleep(700);
    expect((await probe(USERS + 2)).body.code).toBe(5030);
    expect(await redis.exists(keys.ready)).toBe(0);

    // Release: the tickets service notices the missing `ready` key and rebuilds from the database.
    await redis.del(keys.rebuildLock);
    const reopened = await waitFor(
      async () => {
        const answer = await probe(USERS + 3);
        return answer.body.code === 200 ? answer : undefined;
      },
      20_000,
      () => `the service did not admit again after the rebuild\n${dep.output()}`,
    );
    expect(reopened.body.data.messageId).toBeTruthy();
    const refusedDuringFlush = load.answers.slice(flushedAt).filter((a) => a.code === 5030).length;

    const answers = await load.done;
    const all = [...answers, { code: 200, date: plenty, messageId: reopened.body.data.messageId }];
    const ids0 = acceptedIds(answers, scarce);
    const ids1 = acceptedIds(all as typeof answers, plenty);
    const f0 = await assertInvariants(dep, gateway, scarce, ids0);
    const f1 = await assertInvariants(dep, gateway, plenty, ids1);
    expect(f0.sold).toBeLessThanOrEqual(SCARCE);
    expect(f1.validOrders).toBe(USERS + 1); // everyone who asked got one, once
    // A user whose message was in flight during the flush could submit again and get a second
    // message (the claim was lost), but never a second ticket: counted above per user.
    const codes = countBy(answers.map((a) => a.code));
    console.log(
      describeRun(
        'Redis flushed mid-sale (day 0 scarce)',
        { users: USERS, codes },
        `${deleted} keys of the namespace deleted after ${flushedAt} answers with ${unacked} deliveries ` +
          `unacknowledged; admissions refused 5030 until the rebuild (${refusedDuringFlush} load requests ` +
          'refused, then retried)',
        f0,
      ),
    );
    console.log(
      describeRun('Redis flushed mid-sale (day 1 plenty)', { users: USERS, codes }, 'same flush', f1),
    );
  });

  it('converges after a flush with messages still queued (their reservations lost with the cache)', async () => {
    const date = dep.dates[2];
    await dep.setStock(date, PLENTY);
    const [worker] = dep.workers;
    // A backlog: the worker stands still (shorter than the ack wait) while users keep buying.
    worker.pause();
    const load = startLoad(dep, [gateway], {
      requests: buyers(date, 200),
      concurrency: 6,
      pauseMs: 5,
      retries: 50,
    });
    await waitAccepted(load, 80);
    const backlog = (await dep.consumerInfo()).num_pending + (await dep.consumerInfo()).num_ack_pending;
    await deleteNamespace(redis, dep.namespace);
    // The service rebuilds from the database, which does not know the queued messages yet.
    await waitFor(
      async () => ((await redis.exists(keys.ready)) === 1 ? true : undefined),
      20_000,
      () => `no rebuild\n${dep.output()}`,
    );
    worker.resume();
    const answers = await load.done;
    const f = await assertInvariants(dep, gateway, date, acceptedIds(answers, date));
    expect(f.validOrders).toBe(200);
    expect(f.audit.checks.find((c) => c.id === 'cache-converges')?.status).toBe('pass');
    console.log(
      describeRun(
        'Redis flushed with a queue backlog (worker frozen meanwhile)',
        { users: 200, codes: countBy(answers.map((a) => a.code)) },
        `namespace deleted with ${backlog} messages queued; the service rebuilt before they were processed`,
        f,
      ),
    );
  });
});
