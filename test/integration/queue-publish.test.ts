import { loadConfig } from '../../config';
import { PurchaseQueue, type PurchaseMessage } from '../../lib/purchase/queue';
import { uniqueNamespace } from '../helpers/app';

/** The queue's bulk publisher against the real JetStream, on streams of its own. */
describe('Purchase queue publishing', () => {
  const config = loadConfig({ ...process.env, NAMESPACE: uniqueNamespace('pub'), NODE_ENV: 'test' });
  let queue: PurchaseQueue;
  const message = (n: number): PurchaseMessage => ({
    messageId: `m-${n}`,
    userId: n,
    date: '2030-01-01',
    queuedAt: new Date().toISOString(),
  });

  beforeAll(async () => {
    queue = await PurchaseQueue.open(config, 'publish-test');
  });
  afterAll(async () => {
    await queue.destroy();
    await queue.close();
  });

  it('acknowledges each of many concurrent publishes with its own stream sequence', async () => {
    const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => queue.publish(message(i))));
    expect(acks.every((a) => a.stream === queue.names.stream && a.duplicate === false)).toBe(true);
    expect(new Set(acks.map((a) => a.seq)).size).toBe(200);
    const info = await queue.jsm.streams.info(queue.names.stream);
    expect(info.state.messages).toBe(200);
  });

  it('reports a republish under the same id as a duplicate of the stored message', async () => {
    const first = await queue.publish(message(500));
    const again = await queue.publish(message(500));
    expect(again).toMatchObject({ duplicate: true, seq: first.seq });
  });

  it('without retries, fails a publish that no stream takes at once', async () => {
    const once = await PurchaseQueue.open(
      { ...config, queue: { ...config.queue, publishRetryMs: 0 } },
      'once',
    );
    try {
      await queue.jsm.streams.delete(queue.names.stream);
      await expect(once.publish(message(900))).rejects.toThrow(/No stream answered/);
    } finally {
      await queue.ensure();
      await once.close();
    }
  });

  it('retries a publish that no stream takes yet, with the same id, until a stream takes it', async () => {
    await queue.jsm.streams.delete(queue.names.stream);
    // As during a leader election: "no responders" for a while, then the stream answers again.
    const published = queue.publish(message(901));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await queue.ensure();
    const ack = await published;
    expect(ack.duplicate).toBe(false);
    const stored = await queue.jsm.streams.getMessage(queue.names.stream, { seq: ack.seq });
    expect(stored.header.get('Nats-Msg-Id')).toBe('m-901');
    expect((await queue.jsm.streams.info(queue.names.stream)).state.messages).toBe(1);
  });

  it('gives up at the retry bound', async () => {
    const bounded = await PurchaseQueue.open(
      { ...config, queue: { ...config.queue, publishRetryMs: 500 } },
      'bounded',
    );
    try {
      await queue.jsm.streams.delete(queue.names.stream);
      await expect(bounded.publish(message(902))).rejects.toThrow(/No stream answered/);
    } finally {
      await queue.ensure();
      await bounded.close();
    }
  });

  it('rejects the publishes still retrying when the queue closes', async () => {
    const closing = await PurchaseQueue.open(config, 'closing');
    await queue.jsm.streams.delete(queue.names.stream);
    try {
      const published = Array.from({ length: 20 }, (_, i) => closing.publish(message(910 + i)));
      await new Promise((resolve) => setTimeout(resolve, 200));
      await closing.close();
      const outcomes = await Promise.allSettled(published);
      expect(outcomes.map((o) => o.status)).toEqual(Array(20).fill('rejected'));
    } finally {
      await queue.ensure();
    }
  });
});
