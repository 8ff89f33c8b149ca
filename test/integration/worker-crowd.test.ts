import { hostname } from 'node:os';
import type { Consumer, FetchOptions } from 'nats';
import { CROWD_PAUSE_MS, type CrowdNearby } from '../../lib/purchase/crowd';
import { PurchaseWorker } from '../../lib/purchase/worker';
import { startApp, type TestApp } from '../helpers/app';
import { submit, terminal } from '../helpers/purchase';

/**
 * While a gateway on its machine is in a crowd, a worker fetches at WORKER_CROWD_RATE (a few
 * messages after each pause) and at full size again once the crowd ends; every message still ends.
 * Driven through a worker of the test's own, on the app's real queue, so each fetch it asks for is
 * seen in order.
 */
describe('worker during a crowd', () => {
  const CROWD_RATE = 1000 / CROWD_PAUSE_MS; // one message per pause
  const MESSAGES = 20;
  const CROWD_FETCHES = 4;
  let app: TestApp;

  beforeAll(async () => {
    app = await startApp({ WORKER_CROWD_RATE: String(CROWD_RATE) });
  });
  afterAll(async () => {
    await app?.stop();
  });

  /**
   * Submits MESSAGES purchases (users from `firstUser`), then runs a worker of the test's own over
   * them with the given crowd signal and longest wait; returns each fetch it asked for, in order.
   */
  async function drainDuringCrowd(
    firstUser: number,
    crowdMaxWaitMs: number,
    crowd: (fetches: number) => boolean,
  ) {
    const today = app.dates[0];
    const answers = await Promise.all(
      Array.from({ length: MESSAGES }, (_, i) => submit(app, firstUser + i, today)),
    );
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));

    const queue = await app.rt.queue();
    const asked: { crowd: boolean; max: number }[] = [];
    const consumers = queue.js.consumers;
    const get = consumers.get.bind(consumers);
    consumers.get = (async (...args: Parameters<typeof get>) => {
      const consumer: Consumer = await get(...args);
      const fetch = consumer.fetch.bind(consumer);
      consumer.fetch = (opts?: FetchOptions) => {
        asked.push({ crowd: crowd(asked.length), max: opts?.max_messages ?? Infinity });
        return fetch(opts);
      };
      return consumer;
    }) as typeof consumers.get;

    const config = { ...app.config, worker: { ...app.config.worker, crowdMaxWaitMs } };
    const worker = new PurchaseWorker(config, app.rt.writerDb, app.rt.redis, queue, {
      publish: () => undefined,
      yielding: () => crowd(asked.length),
      log: { warn: () => undefined, error: () => undefined },
    });
    try {
      await worker.start();
      const results = await Promise.all(answers.map((a) => terminal(app, a.body.data.messageId)));
      expect(results.map((r) => r.status)).toEqual(results.map(() => 'SUCCESS'));
    } finally {
      consumers.get = get;
      await worker.stop();
    }
    return asked;
  }

  beforeAll(async () => {
    // The app's own worker steps aside: the backlogs are for the test's workers alone.
    const service = app.broker.getLocalService('purchase-worker') as unknown as { worker: PurchaseWorker };
    await service.worker.stop();
  });

  it('fetches a trickle while told of a crowd, then the rest at full size', async () => {
    // A crowd for the first few fetches, then none; no limit on how long the orders wait.
    const asked = await drainDuringCrowd(1700, 0, (fetches) => fetches < CROWD_FETCHES);

    const inCrowd = asked.filter((a) => a.crowd);
    expect(inCrowd).toHaveLength(CROWD_FETCHES);
    expect(inCrowd.every((a) => a.max === 1)).toBe(true);
    expect(asked[CROWD_FETCHES]).toEqual({ crowd: false, max: expect.any(Number) });
    expect(asked[CROWD_FETCHES].max).toBeGreaterThanOrEqual(MESSAGES - CROWD_FETCHES);
  });

  it('catches up at full size during a crowd that lasts, once the oldest order waited the limit', async () => {
    // The crowd never ends; at one message per pause the backlog alone would take MESSAGES pauses.
    const asked = await drainDuringCrowd(1800, 2000, () => true);

    expect(asked.every((a) => a.crowd)).toBe(true);
    expect(asked[0].max).toBe(1);
    const caughtUp = asked.findIndex((a) => a.max > 1);
    expect(caughtUp).toBeGreaterThan(0);
    expect(asked.slice(0, caughtUp).every((a) => a.max === 1)).toBe(true);
    expect(asked.filter((a) => a.max === 1).length).toBeLessThan(MESSAGES);
  });

  it("hears the gateways' crowd reports: those of its own machine only", async () => {
    const { crowds } = app.broker.getLocalService('purchase-worker') as unknown as { crowds: CrowdNearby };
    const report = (host: string, crowd: boolean) =>
      app.broker.broadcast('purchase.crowd', { nodeID: 'gateway-x', host, crowd });
    const heard = async (active: boolean) => {
      while (crowds.active() !== active) await new Promise((resolve) => setTimeout(resolve, 10));
    };
    await report('another-machine', true);
    await report(hostname(), false); // delivered after the first: it was heard and ignored
    expect(crowds.active()).toBe(false);
    await report(hostname(), true);
    await heard(true);
    await report(hostname(), false);
    await heard(false);
  });
});
