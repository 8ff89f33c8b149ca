import {
  acceptedIds,
  assertInvariants,
  buyers,
  cleanUpAfterSuite,
  countBy,
  Deployment,
  describeRun,
  expectAcceptedOrSoldOut,
  startLoad,
  waitAccepted,
  waitFor,
  waitInFlight,
  waitTerminal,
  type Gateway,
} from '../helpers/processes';

/**
 * SPEC §4 / §7: a worker crash at any point neither loses nor duplicates an order. The worker is a
 * separate process (SERVICES=purchase-worker) beside one gateway (api,tickets,purchase); the
 * order writer batches for 150 ms so that messages are always in flight when the signal lands.
 */

const USERS = 300;
const STOCK = 200;

jest.setTimeout(180_000);

cleanUpAfterSuite();

describe('worker killed with SIGKILL mid-sale, then restarted', () => {
  let dep: Deployment;
  let gateway: Gateway;

  beforeAll(async () => {
    dep = Deployment.create({ WORKER_BATCH_MS: '150', SEED_USERS: String(USERS + 10) });
    gateway = await dep.startSale({ stock: STOCK, workers: [{ name: 'worker-1' }] });
  });

  afterAll(async () => {
    await dep?.destroy();
  });

  it('loses nothing, duplicates nothing, and every accepted message ends terminal', async () => {
    const date = dep.dates[0];
    const load = startLoad(dep, [gateway], {
      requests: buyers(date, USERS),
      concurrency: 6,
      pauseMs: 15,
    });
    // Kill in the middle of the sale, while the consumer has unacknowledged deliveries.
    await waitAccepted(load, 50);
    const [first] = dep.workers;
    const inFlight = await waitInFlight(dep, 'no delivery in flight to crash on');
    first.signal('SIGKILL');
    const exit = await first.exited;
    expect(exit.signal).toBe('SIGKILL');
    const acceptedAtKill = load.accepted();

    // The sale goes on without a worker for a moment, then a new worker process starts.
    await waitFor(
      async () => (load.accepted() >= acceptedAtKill + 20 || load.answers.length >= USERS ? true : undefined),
      30_000,
      () => 'no submits after the kill',
    );
    await dep.startWorker({ name: 'worker-2 (restart)' });
    const answers = await load.done;

    const ids = acceptedIds(answers);
    // Only "accepted" and "sold out" are possible answers here: nothing else was broken.
    expectAcceptedOrSoldOut(answers, ids, USERS);
    const f = await assertInvariants(dep, gateway, date, ids);
    expect(f.success).toBe(Math.min(STOCK, ids.length));
    expect(f.ordersOutsideAccepted).toBe(0);
    // The deliveries the dead worker held were redelivered (attempts count across deliveries).
    expect(f.records.filter((r) => r.attempts > 1).length).toBeGreaterThan(0);
    console.log(
      describeRun(
        'worker SIGKILL + restart',
        { users: USERS, codes: countBy(answers.map((a) => a.code)) },
        `worker-1 (pid ${first.pid}) SIGKILLed with ${inFlight} unacknowledged deliveries after ${acceptedAtKill} accepted; ` +
          'worker-2 started after 20 more submits',
        f,
      ),
    );
  });
});

describe('worker paused with SIGSTOP past the ack wait, then SIGCONT', () => {
  let dep: Deployment;
  let gateway: Gateway;

  beforeAll(async () => {
    dep = Deployment.create({ WORKER_BATCH_MS: '150', SEED_USERS: String(USERS + 10) });
    gateway = await dep.startSale({ stock: STOCK, workers: [{ name: 'worker-A' }, { name: 'worker-B' }] });
  });

  afterAll(async () => {
    await dep?.destroy();
  });

  it('hands the frozen worker’s messages to the other one, and makes one order per message', async () => {
    const date = dep.dates[0];
    const [a] = dep.workers;
    const load = startLoad(dep, [gateway], {
      requests: buyers(date, USERS),
      concurrency: 6,
      pauseMs: 15,
    });
    await waitAccepted(load, 50);
    // Workers fetch only what they have room for and JetStream spreads deliveries over both: with
    // ten or more in flight, worker A holds some of them when it freezes.
    const unackedAtPause = await waitInFlight(dep, 'fewer than 10 deliveries in flight to freeze', 10);
    a.pause();
    const acceptedAtPause = acceptedIds(load.answers);

    // While A is frozen (past several ack waits), B finishes everything, A's deliveries included:
    // those were delivered again (attempts count across deliveries).
    const whileFrozen = [...(await waitTerminal(dep, gateway, acceptedAtPause, 60_000)).values()];
    const takenOver = whileFrozen.filter((r) => r.attempts > 1).length;
    expect(takenOver).toBeGreaterThan(0);
    const answers = await load.done;
    const ids = acceptedIds(answers);
    expect(a.running).toBe(true);
    a.resume();

    // A wakes up with stale deliveries: they must find the orders already made.
    const f = await assertInvariants(dep, gateway, date, ids);
    expect(f.success).toBe(Math.min(STOCK, ids.length));
    expect(f.ordersOutsideAccepted).toBe(0);
    const [{ n: orderRows }] = await dep.sql<{ n: number }>(
      'SELECT count(*)::int AS n FROM orders WHERE message_id = ANY($1::varchar[])',
      [ids],
    );
    expect(orderRows).toBe(f.success);
    console.log(
      describeRun(
        'worker SIGSTOP past the ack wait + SIGCONT',
        { users: USERS, codes: countBy(answers.map((x) => x.code)) },
        `worker-A (pid ${a.pid}) SIGSTOPped with ${unackedAtPause} unacknowledged deliveries after ` +
          `${acceptedAtPause.length} accepted; all ${whileFrozen.length} messages accepted before the pause ended ` +
          `terminal while A was frozen, ${takenOver} of them redelivered to worker-B; then SIGCONT`,
        f,
      ),
    );
  });
});
