import { readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { ServiceBroker } from 'moleculer';
import { CONFIG_DEFAULTS } from '../../config';
import { METRICS } from '../../lib/metrics';
import {
  acceptedIds,
  assertInvariants,
  buyers,
  countBy,
  Deployment,
  killAll,
  startLoad,
  waitFor,
  type Gateway,
  type ServiceProcess,
  type SubmitData,
} from '../helpers/processes';

/**
 * SPEC §8: the same code as separate nodes — two gateways (api,tickets,purchase) and two workers
 * (purchase-worker), each its own process and Moleculer node, on one NATS with one NAMESPACE,
 * sharing Redis, JetStream and PostgreSQL.
 *
 * Per-worker work is read from each worker node's own metrics: a broker in the test process joins
 * the namespace as an observer and calls `$node.metrics` on each worker's nodeID (read from the
 * worker's log). The counter `miaosha.results.transitions.total{status}` is per process, so its
 * SUCCESS + FAILED values are the messages that worker finished.
 */

const USERS = 400;
const STOCK = 300;
const RATE_MAX = 5;

jest.setTimeout(180_000);

afterAll(async () => {
  await killAll();
});

interface MetricValue {
  labels?: Record<string, string>;
  value: number;
}
interface MetricView {
  name: string;
  values: MetricValue[];
}

describe('scale-out: two gateways and two workers as separate nodes', () => {
  let dep: Deployment;
  let g1: Gateway;
  let g2: Gateway;
  let w1: ServiceProcess;
  let w2: ServiceProcess;
  let observer: ServiceBroker;

  beforeAll(async () => {
    dep = Deployment.create(
      {
        SEED_USERS: String(USERS + 20),
        WORKER_BATCH_MS: '50',
        // A window longer than the test: the per-user limit is counted, not timed.
        RATE_LIMIT_USER_MAX: String(RATE_MAX),
        RATE_LIMIT_USER_WINDOW_MS: '600000',
      },
      's',
    );
    // The first gateway migrates the database; the others start together.
    g1 = await dep.startGateway({ name: 'gateway-1' });
    [g2, w1, w2] = await Promise.all([
      dep.startGateway({ name: 'gateway-2' }),
      dep.startWorker({ name: 'worker-1' }),
      dep.startWorker({ name: 'worker-2' }),
    ]);
    await dep.setStock(dep.dates[0], STOCK);
    observer = new ServiceBroker({
      namespace: dep.namespace,
      nodeID: `${dep.namespace}-observer-${process.pid}`,
      transporter: { type: 'NATS', options: { url: dep.config.natsUrl } },
      serializer: 'JSON',
      logger: false,
    });
    await observer.start();
  });

  afterAll(async () => {
    await observer?.stop().catch(() => undefined);
    await dep?.destroy();
  });

  /** Messages a worker node finished (terminal transitions it wrote), from its own metrics. */
  async function finishedBy(worker: ServiceProcess): Promise<number> {
    const metrics = await observer.call<MetricView[], { includes: string[] }>(
      '$node.metrics',
      { includes: [METRICS.transitions] },
      { nodeID: worker.nodeID! },
    );
    const values = metrics.find((m) => m.name === METRICS.transitions)?.values ?? [];
    return values
      .filter((v) => v.labels?.status === 'SUCCESS' || v.labels?.status === 'FAILED')
      .reduce((sum, v) => sum + v.value, 0);
  }

  it('sees every node in one namespace', async () => {
    const nodes = await waitFor(
      async () => {
        const list = await observer.call<{ id: string; available: boolean }[], { onlyAvailable: boolean }>(
          '$node.list',
          { onlyAvailable: true },
        );
        const ids = new Set(list.map((n) => n.id));
        return dep.processes.every((p) => ids.has(p.nodeID!)) ? list : undefined;
      },
      20_000,
      () => 'not every node discovered',
    );
    expect(nodes.length).toBeGreaterThanOrEqual(5); // 4 service nodes + the observer
    expect(new Set(dep.processes.map((p) => p.nodeID)).size).toBe(4);
  });

  it('spreads the load over both gateways and both workers; stopping a worker mid-sale loses nothing', async () => {
    const date = dep.dates[0];
    const load = startLoad(dep, [g1, g2], { requests: buyers(date, USERS), concurrency: 8, pauseMs: 10 });

    // Both workers take work while both run.
    const before = await waitFor(
      async () => {
        const [a, b] = await Promise.all([finishedBy(w1), finishedBy(w2)]);
        return a >= 20 && b >= 20 ? { w1: a, w2: b } : undefined;
      },
      60_000,
      () => `both workers did not take work\n${dep.output()}`,
      50,
    );
    // Then one worker is stopped (SIGTERM, graceful) in the middle of the sale.
    const acceptedAtStop = load.accepted();
    const exit = await w2.stop();
    expect(exit.code).toBe(0);
    const answers = await load.done;

    const byGateway = countBy(answers.map((a) => a.gateway));
    expect(byGateway[0]).toBeGreaterThan(USERS / 4);
    expect(byGateway[1]).toBeGreaterThan(USERS / 4);
    const ids = acceptedIds(answers);
    expect(Object.keys(countBy(answers.map((a) => a.code))).sort()).toEqual(
      ids.length < USERS ? ['200', '6002'] : ['200'],
    );
    // Results of messages accepted by one gateway are read through the other one.
    const f = await assertInvariants(dep, g2, date, ids);
    expect(f.success).toBe(Math.min(STOCK, ids.length));
    expect(f.ordersOutsideAccepted).toBe(0);
    const w1Total = await finishedBy(w1);
    // The remaining worker took over the rest of the sale.
    expect(w1Total).toBeGreaterThan(before.w1);

    console.log(
      [
        '[scale-out] 2 gateways + 2 workers, one namespace',
        `  load: ${USERS} users round-robin over the gateways ${JSON.stringify(byGateway)}, ` +
          `answers ${JSON.stringify(countBy(answers.map((a) => a.code)))}`,
        `  work: worker-1 finished ${before.w1} and worker-2 ${before.w2} messages before worker-2 was ` +
          `stopped (SIGTERM, exit ${exit.code}) after ${acceptedAtStop} accepted; worker-1 finished ${w1Total} in all`,
        `  invariants: accepted ${f.accepted}, SUCCESS ${f.success}, FAILED ${JSON.stringify(f.failed)}, ` +
          `valid orders ${f.validOrders}, sold ${f.sold}/${f.total}, users with two orders ${f.usersWithTwoOrders}, ` +
          `audit ${f.audit.ok ? 'OK' : 'FAILED'}`,
      ].join('\n'),
    );
  });

  it('holds the per-user rate limit across both gateway processes (kept in Redis)', async () => {
    const date = dep.dates[1];
    const userId = USERS + 10;
    const answers: { gateway: number; code: number; messageId?: string }[] = [];
    for (let i = 0; i < RATE_MAX * 2; i++) {
      const gateway = i % 2;
      const a = await [g1, g2][gateway].post<SubmitData>('/api/tickets/v2/purchase', {
        userId,
        date,
        verifyHash: dep.hash(userId, date),
      });
      answers.push({ gateway, code: a.body.code, messageId: a.body.data?.messageId });
    }
    // RATE_MAX in total pass (one message, then the same message id again); the rest are 7001,
    // from both gateways — a per-process limit would have let all ten through.
    expect(answers.map((a) => a.code)).toEqual([
      ...Array<number>(RATE_MAX).fill(200),
      ...Array<number>(RATE_MAX).fill(7001),
    ]);
    expect(new Set(answers.filter((a) => a.code === 200).map((a) => a.messageId)).size).toBe(1);
    expect(new Set(answers.filter((a) => a.code === 7001).map((a) => a.gateway))).toEqual(new Set([0, 1]));
    console.log(
      `[scale-out] rate limit: user ${userId} sent ${answers.length} submits alternating the two gateways: ` +
        `${JSON.stringify(countBy(answers.map((a) => `g${a.gateway + 1}:${a.code}`)))} (RATE_LIMIT_USER_MAX ${RATE_MAX})`,
    );
  });

  it('lowers the priority of a worker-only node (WORKER_NICE), never of a node that serves HTTP', async () => {
    const nice = String(CONFIG_DEFAULTS.WORKER_NICE);
    expect(Number(nice)).toBeGreaterThan(0);
    const autogroup = (pid: number) => readFileSync(`/proc/${pid}/autogroup`, 'utf8').trim();
    const ours = autogroup(process.pid);
    // The test environment runs its nodes at WORKER_NICE 0; these get the production default.
    const [shared, own, full] = await Promise.all([
      dep.startWorker({ name: 'worker-shared-session', env: { WORKER_NICE: nice } }),
      dep.startWorker({ name: 'worker-own-session', env: { WORKER_NICE: nice }, detached: true }),
      dep.startWorker({ name: 'all-services', env: { SERVICES: 'all', WORKER_NICE: nice }, detached: true }),
    ]);
    expect([shared, own, full].map((p) => getPriority(p.pid))).toEqual([Number(nice), Number(nice), 0]);
    // Against the other sessions (Redis, NATS, PostgreSQL…) a worker yields only through its session's
    // group: set when it leads its own session, left alone when it shares the test's.
    expect(autogroup(own.pid)).toMatch(new RegExp(`nice ${nice}$`));
    expect(autogroup(full.pid)).toMatch(/nice 0$/);
    expect(autogroup(shared.pid)).toBe(ours);
    expect(autogroup(process.pid)).toBe(ours);
    // worker-2 was stopped by the test above.
    expect([w1, g1.process, g2.process].map((p) => getPriority(p.pid))).toEqual([0, 0, 0]);
  });
});
