import type { ServiceBroker } from 'moleculer';

/** The service's own Prometheus metrics (beside Moleculer's built-in ones), names under `miaosha.`. */
export const METRICS = {
  submits: 'miaosha.submits.total',
  transitions: 'miaosha.results.transitions.total',
  latency: 'miaosha.processing.latency',
  batchSize: 'miaosha.orders.batch.size',
  ordersCommitted: 'miaosha.orders.committed.total',
  backlog: 'miaosha.queue.backlog',
  deadLetters: 'miaosha.queue.dead.letters',
  cache: 'miaosha.results.cache.total',
} as const;

/** Registers the metrics once per broker (idempotent). */
export function registerMetrics(broker: ServiceBroker): void {
  const m = broker.metrics;
  if (!m.isEnabled() || m.getMetric(METRICS.submits)) return;
  m.register({
    type: 'counter',
    name: METRICS.submits,
    labelNames: ['outcome'],
    description: 'V2 purchase submits by outcome',
  });
  m.register({
    type: 'counter',
    name: METRICS.transitions,
    labelNames: ['status'],
    description: 'Result status transitions written by the workers',
  });
  m.register({
    type: 'histogram',
    name: METRICS.latency,
    unit: 'millisecond',
    buckets: [5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 30000],
    description: 'Submit-to-terminal latency of purchase messages',
  });
  m.register({
    type: 'histogram',
    name: METRICS.batchSize,
    buckets: [1, 10, 50, 100, 250, 500, 1000, 2000],
    description: 'Messages per order-writing transaction',
  });
  m.register({
    type: 'counter',
    name: METRICS.ordersCommitted,
    description: 'Messages settled by committed batches',
  });
  m.register({
    type: 'gauge',
    name: METRICS.backlog,
    description: 'Messages waiting or in progress on the queue',
  });
  m.register({ type: 'gauge', name: METRICS.deadLetters, description: 'Messages in the dead-letter stream' });
  m.register({
    type: 'counter',
    name: METRICS.cache,
    labelNames: ['level'],
    description: 'Result reads answered by level (lru, redis, database, miss)',
  });
}
