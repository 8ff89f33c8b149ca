import type { JsMsg } from 'nats';
import type { PurchaseWorker } from '../../lib/purchase/worker';
import { startApp, type TestApp } from '../helpers/app';
import { submit, terminal } from '../helpers/purchase';

/**
 * WORKER_CONCURRENCY bounds the deliveries a worker holds: the worker fetches only what it has
 * room for (no operator repeats the bound), so a backlog larger than the bound is worked through a
 * few at a time, and every message still ends.
 */
describe('worker concurrency', () => {
  const CONCURRENCY = 3;
  let app: TestApp;

  beforeAll(async () => {
    app = await startApp({ WORKER_CONCURRENCY: String(CONCURRENCY) });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('never holds more than WORKER_CONCURRENCY deliveries while a larger backlog drains', async () => {
    const service = app.broker.getLocalService('purchase-worker') as unknown as { worker: PurchaseWorker };
    const worker = service.worker as unknown as { inFlight: number; handle(msg: JsMsg): Promise<void> };
    const handle = worker.handle.bind(worker);
    let most = 0;
    let handled = 0;
    worker.handle = (msg: JsMsg) => {
      const done = handle(msg);
      handled++;
      most = Math.max(most, worker.inFlight);
      return done;
    };

    const today = app.dates[0];
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => submit(app, 1500 + i, today)));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    const results = await Promise.all(answers.map((a) => terminal(app, a.body.data.messageId)));

    expect(results.map((r) => r.status)).toEqual(results.map(() => 'SUCCESS'));
    expect(handled).toBeGreaterThanOrEqual(40);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(CONCURRENCY);
  });
});
