import type Redis from 'ioredis';
import { keys } from '../../lib/store/keys';
import { createRedis } from '../../lib/store/redis';
import { serverRunId } from '../../lib/purchase/cache';
import { RedisSentinelSet } from '../helpers/cluster';
import {
  acceptedIds,
  assertInvariants,
  buyers,
  cleanUpAfterSuite,
  countBy,
  Deployment,
  describeRun,
  startLoad,
  waitAccepted,
  waitFor,
  type Gateway,
  type SubmitData,
} from '../helpers/processes';

/**
 * SPEC §8: Redis behind Sentinel (REDIS_SENTINELS); the primary is killed (SIGKILL) in the middle
 * of a sale after its replica has missed its latest writes (the replication link is cut first), and
 * the sentinels promote the replica. Every client of the service follows the promotion; the cache
 * on the promoted replica was built on another server, so it is not trusted: admissions answer 5030
 * until it is rebuilt from the database, then the sale goes on. No oversell, no second ticket,
 * every accepted message terminal.
 */

const USERS = 400;
const STOCK = 150; // day 0: sells out
const PLENTY = 1000; // day 1: admissions must resume after the failover

jest.setTimeout(300_000);

let redis: RedisSentinelSet | undefined;

cleanUpAfterSuite(() => redis?.stop());

describe('Redis Sentinel: the primary killed mid-sale, the replica promoted', () => {
  let dep: Deployment;
  let gateway: Gateway;
  let service: Redis | undefined;

  beforeAll(async () => {
    redis = await RedisSentinelSet.start();
    dep = Deployment.create(
      {
        // The URL is not used for the address once sentinels are set (it would still give a password).
        REDIS_URL: `redis://127.0.0.1:${redis.primary.port}`,
        REDIS_SENTINELS: redis.sentinelList,
        REDIS_SENTINEL_NAME: redis.name,
        SEED_USERS: String(USERS + 10),
        WORKER_BATCH_MS: '50',
      },
      'rs',
    );
    gateway = await dep.startSale({ stock: STOCK });
    await dep.setStock(dep.dates[1], PLENTY);
  });

  afterAll(async () => {
    service?.disconnect();
    await dep?.destroy();
  });

  it('refuses with 5030 until rebuilt on the promoted replica, then sells on without oversell', async () => {
    const date = dep.dates[0];
    // A client configured as the service's are (through the sentinels).
    const client = createRedis(dep.config, dep.namespace);
    service = client;
    client.on('error', () => undefined);
    const oldRunId = await serverRunId(client);
    expect(await client.get(keys.generation)).toBe(oldRunId);

    const loadStart = Date.now();
    const load = startLoad(dep, [gateway], {
      requests: buyers(date, USERS),
      concurrency: 6,
      pauseMs: 10,
      retries: 100,
      retryPauseMs: 100,
    });
    await waitAccepted(load, 40);

    // The replica stops receiving; the sale goes on on the primary for a moment.
    redis!.link.cut();
    const acceptedBeforeGap = load.accepted();
    await waitAccepted(load, acceptedBeforeGap + 20);
    const written = await redis!.replicationOffset(redis!.primary.port);
    const received = await redis!.replicationOffset(redis!.replica.port);
    expect(received).toBeLessThan(written);

    const killedAt = Date.now();
    const answeredBeforeKill = load.answers.length;
    await redis!.primary.kill();
    await redis!.waitPrimary(redis!.replica.port);
    const promotedMs = Date.now() - killedAt;

    // The service's own client follows the sentinels to the promoted replica; the cache is rebuilt
    // there (the generation marker names the new server).
    const newRunId = await waitFor(
      async () => {
        const runId = await serverRunId(client);
        const [generation, ready] = await Promise.all([
          client.get(keys.generation),
          client.exists(keys.ready),
        ]);
        return runId !== oldRunId && generation === runId && ready === 1 ? runId : undefined;
      },
      60_000,
      () => `the cache was not rebuilt on the promoted replica\n${dep.output()}`,
    );
    const rebuiltMs = Date.now() - killedAt;

    const answers = await load.done;
    const afterKill = answers.slice(answeredBeforeKill);
    const refused = afterKill.filter((a) => a.code === 5030 || a.code === -1);
    const sinceKill = (at: number) => loadStart + at - killedAt;
    const refusedUntilMs = Math.max(0, ...refused.map((a) => sinceKill(a.at)));
    const codes = countBy(answers.map((a) => a.code));
    // Clients were told 5030 (then retried) while Redis moved, never 5000.
    expect(Object.keys(codes).filter((c) => !['200', '6002', '5030'].includes(c))).toEqual([]);

    // Admissions resumed on the promoted replica (day 1 still has stock).
    const probeUser = USERS + 1;
    const resumed = await waitFor(
      async () => {
        const answer = await gateway.post<SubmitData>('/api/tickets/v2/purchase', {
          userId: probeUser,
          date: dep.dates[1],
          verifyHash: dep.hash(probeUser, dep.dates[1]),
        });
        return answer.body.code === 200 ? answer : undefined;
      },
      30_000,
      () => `no admission after the failover\n${dep.output()}`,
    );

    const ids = acceptedIds(answers);
    const f = await assertInvariants(dep, gateway, date, ids);
    expect(f.sold).toBeLessThanOrEqual(STOCK);
    expect(f.usersWithTwoOrders).toBe(0);
    const probe = await assertInvariants(dep, gateway, dep.dates[1], [resumed.body.data.messageId]);
    expect(probe.success).toBe(1);
    console.log(
      describeRun(
        'Redis primary killed, Sentinel promoted the replica',
        { users: USERS, codes },
        `replication link cut after ${acceptedBeforeGap} accepted submits; the replica missed ` +
          `${written - received} bytes of writes; primary killed after ${answeredBeforeKill} answers; ` +
          `sentinels promoted the replica after ${promotedMs} ms; cache rebuilt on it (run id ` +
          `${newRunId.slice(0, 8)}) ${rebuiltMs} ms after the kill; ${refused.length} submits answered ` +
          `5030 (or no answer) after the kill and were retried, the last ${refusedUntilMs} ms after it`,
        f,
      ),
    );
  });
});
