import { queueNames } from '../../lib/purchase/queue';
import type { ResultRecord } from '../../lib/purchase/results';
import { readSse } from '../helpers/app';
import { NatsCluster } from '../helpers/cluster';
import {
  acceptedIds,
  assertInvariants,
  buyers,
  cleanUpAfterSuite,
  countBy,
  Deployment,
  describeRun,
  startRateLoad,
  waitFor,
  type Gateway,
  type Submitted,
  type SubmitData,
} from '../helpers/processes';

/**
 * SPEC §7, §8: the NATS node leading the purchase stream is killed (SIGKILL) in a 3-node JetStream
 * cluster (`QUEUE_REPLICAS=3`) while submits arrive at a steady rate. The submits that meet the
 * election wait and retry their publish with the same Nats-Msg-Id (QUEUE_PUBLISH_RETRY_MS), so none
 * is refused; nothing accepted is lost, nothing is stored twice; workers and result events carry on;
 * the killed node, started again, rejoins the stream as a current replica.
 *
 * One gateway and one worker know only the node that leads the stream, so their connections (broker
 * transporter and JetStream client alike) must move to the nodes the cluster told them about.
 */

const RATE = 150; // submits per second
const SECONDS = 10;
const USERS = RATE * SECONDS;
const KILL_AFTER = RATE * 3; // answers before the kill

jest.setTimeout(300_000);

let cluster: NatsCluster | undefined;

cleanUpAfterSuite(() => cluster?.stop());

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
};

describe('NATS cluster: the purchase stream leader killed at a steady submit rate', () => {
  let dep: Deployment;
  const gateways: Gateway[] = [];

  beforeAll(async () => {
    cluster = await NatsCluster.start(3);
    dep = Deployment.create(
      {
        NATS_URL: cluster.url,
        QUEUE_REPLICAS: '3',
        QUEUE_STORAGE: 'file',
        SEED_USERS: String(USERS + 10),
        RATE_LIMIT_USER_MAX: '0',
        // The window must outlast the election, which took 6–14 s on loaded 2-core VMs (a follower
        // first waits out the lost leader, and a split vote costs another round); past it a submit
        // is answered 5030 by design. The other gateway's outbox waits for the window to end.
        QUEUE_PUBLISH_RETRY_MS: '25000',
        OUTBOX_GRACE_MS: '30000',
      },
      'nc',
    );
    gateways.push(await dep.startSale({ stock: USERS + 100 }));
    const leader = await cluster.leaderOf(queueNames(dep.namespace).stream);
    const onlyLeader = { env: { NATS_URL: `nats://127.0.0.1:${leader.server.port}` } };
    gateways.push(await dep.startGateway({ ...onlyLeader, name: `gateway-on-${leader.name}` }));
    await dep.startWorker({ ...onlyLeader, name: `worker-on-${leader.name}` });
  });

  afterAll(async () => {
    await dep?.destroy();
  });

  it('refuses no submit, loses and duplicates nothing, and the killed node rejoins', async () => {
    const date = dep.dates[0];
    const { stream } = queueNames(dep.namespace);
    const loadStart = Date.now();
    const load = startRateLoad(dep, gateways, { requests: buyers(date, USERS), rate: RATE });
    await waitFor(
      async () => (load.answers.length >= KILL_AFTER ? true : undefined),
      60_000,
      () => `load too slow: ${JSON.stringify(load.codes())}`,
      20,
    );

    const leader = await cluster!.leaderOf(stream);
    const killedAt = Date.now();
    await leader.server.kill();
    const newLeader = await cluster!.leaderOf(stream, 60_000);
    const electedMs = Date.now() - killedAt;
    expect(newLeader.name).not.toBe(leader.name);

    const answers = await load.done;
    const refused = answers.filter((a) => a.code !== 200);
    const codes = countBy(answers.map((a) => a.code));
    const ids = acceptedIds(answers);

    // The killed node comes back with its store and catches up as a replica.
    const restartedAt = Date.now();
    await leader.server.start();
    await cluster!.waitCurrentReplica(stream, leader);
    const rejoinMs = Date.now() - restartedAt;

    // Result events still reach the gateway whose connections moved: a stream it opened while
    // the message waited (workers paused) sees the worker's transitions, which only events carry.
    for (const worker of dep.workers) worker.pause();
    const late = await gateways[1].post<SubmitData>('/api/tickets/v2/purchase', {
      userId: USERS + 1,
      date,
      verifyHash: dep.hash(USERS + 1, date),
    });
    expect(late.body.code).toBe(200);
    const statuses: string[] = [];
    const sse = await fetch(
      `${gateways[1].url}/api/tickets/v2/purchase/stream?messageId=${late.body.data.messageId}`,
      {
        signal: AbortSignal.timeout(60_000),
      },
    );
    const reading = readSse(sse.body!.getReader(), (frame) =>
      statuses.push((frame.data as ResultRecord).status),
    );
    await waitFor(
      async () => (statuses.length > 0 ? true : undefined),
      10_000,
      () => 'no first SSE frame',
    );
    for (const worker of dep.workers) worker.resume();
    await reading;
    expect(statuses[0]).toBe('PENDING');
    expect(statuses.at(-1)).toBe('SUCCESS');
    ids.push(late.body.data.messageId);

    const f = await assertInvariants(dep, gateways[0], date, ids);
    const info = await cluster!.streamInfo(stream);
    const lost = ids.length - f.validOrders;
    const duplicated = info.state.last_seq - ids.length; // every message stored once: seq = count

    const latencies = answers.map((a) => a.latencyMs);
    const slow = (a: Submitted) => a.latencyMs > 1000;
    const recoveryMs = Math.max(0, ...answers.filter(slow).map((a) => loadStart + a.at - killedAt));
    console.log(
      describeRun(
        'NATS stream leader killed (3-node JetStream cluster, QUEUE_REPLICAS=3)',
        { users: USERS, codes },
        `leader ${leader.name} killed after ${KILL_AFTER} answers at ${RATE} submits/s; new leader ` +
          `${newLeader.name} seen after ${electedMs} ms; refused ${refused.length}, lost ${lost}, ` +
          `duplicated ${duplicated}; submit latency p50 ${percentile(latencies, 50)} ms, p99 ` +
          `${percentile(latencies, 99)} ms, max ${Math.max(...latencies)} ms; ${answers.filter(slow).length} ` +
          `submits took over 1 s, the last answered ${recoveryMs} ms after the kill (recovery); ` +
          `${leader.name} restarted and current again after ${rejoinMs} ms`,
        f,
      ),
    );
    expect(refused).toEqual([]);
    expect(codes).toEqual({ 200: USERS });
    expect(lost).toBe(0);
    expect(duplicated).toBe(0);
    expect(f.validOrders).toBe(USERS + 1);
    expect(f.ordersOutsideAccepted).toBe(0);
  });
});
