import { ServerProcess } from '../helpers/cluster';
import {
  assertInvariants,
  cleanUpAfterSuite,
  Deployment,
  describeRun,
  freePort,
  sleep,
  waitFor,
  waitInFlight,
  type Gateway,
  type ServiceProcess,
  type SubmitData,
} from '../helpers/processes';

/**
 * Redis dies under a worker that is between attempts (SPEC §5.5, "restarted empty"): the orders of
 * the messages in hand fail on a lock timeout (the test holds the day's row), the worker reports
 * RETRYING and waits its backoff, and the result writes of that moment fail because Redis is gone.
 * The worker must live through it — a failed write is the delivery's failure, redelivered later,
 * never an unhandled rejection that ends the process — and once Redis is back (empty, rebuilt from
 * the database) every accepted message ends terminal.
 */

const BUYERS = 20;

jest.setTimeout(180_000);

let redis: ServerProcess | undefined;

cleanUpAfterSuite(() => redis?.kill());

describe('Redis killed while a worker waits between attempts', () => {
  let dep: Deployment;
  let gateway: Gateway;
  let worker: ServiceProcess;

  beforeAll(async () => {
    const port = await freePort();
    redis = new ServerProcess('redis', port, 'redis-server', [
      ...['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    ]);
    await redis.start();
    dep = Deployment.create({
      REDIS_URL: `redis://127.0.0.1:${port}`,
      DB_LOCK_TIMEOUT_MS: '200',
      WORKER_RETRY_BASE_MS: '2000',
    });
    gateway = await dep.startSale({ stock: 100 });
    [worker] = dep.workers;
  });

  afterAll(async () => {
    await dep?.destroy();
  });

  it('keeps the worker running, and every accepted message ends once Redis is back', async () => {
    const date = dep.dates[0];
    await dep.sql('BEGIN');
    await dep.sql('SELECT 1 FROM ticket_days WHERE date = $1 FOR UPDATE', [date]);
    const answers = await Promise.all(
      Array.from({ length: BUYERS }, (_, i) =>
        gateway.post<SubmitData>('/api/tickets/v2/purchase', {
          userId: i + 1,
          date,
          verifyHash: dep.hash(i + 1, date),
        }),
      ),
    );
    expect(answers.map((a) => a.body.code)).toEqual(Array(BUYERS).fill(200));
    await waitInFlight(dep, 'the worker took no message');
    await redis!.kill();
    // The worker's next attempts time out on the lock, and their RETRYING writes find no Redis.
    await sleep(3000);
    await dep.sql('COMMIT');
    await redis!.start(); // empty: the gateway rebuilds the cache from the database
    expect(worker.running ? 'running' : worker.output(30)).toBe('running');

    const ids = answers.map((a) => a.body.data.messageId);
    await waitFor(
      async () => ((await gateway.get('/health')).status === 200 ? true : undefined),
      30_000,
      () => `the gateway did not recover\n${dep.output()}`,
    );
    const f = await assertInvariants(dep, gateway, date, ids);
    expect(f.validOrders).toBe(BUYERS);
    expect(worker.running).toBe(true);
    console.log(
      describeRun(
        'Redis killed while the worker waits between attempts, restarted empty',
        { users: BUYERS, codes: { 200: BUYERS } },
        'day row locked, Redis killed with messages in hand, back empty after 3 s; worker still running',
        f,
      ),
    );
  });
});
