import type { Context, ServiceSchema, ServiceSettingSchema } from 'moleculer';
import { Monitor } from '../lib/monitor/monitor';
import type { SubmitReport } from '../lib/monitor/types';
import type { ResultRecord } from '../lib/purchase/results';
import { runtimeOf } from '../lib/runtime';

type Vars = { monitor: Monitor };

const STARTUP_GRACE_MS = 15_000;

/**
 * Monitoring (SPEC §3 Operations, §9): success rate, latency, backlog, memory, CPU and broker
 * state as one snapshot per interval, and the alerts raised on them. Fed by broadcast events and
 * polling only, so the purchase hot path never waits for it.
 */
const monitorService: ServiceSchema<ServiceSettingSchema, Record<string, never>, Vars> = {
  name: 'monitor',

  actions: {
    snapshot: {
      handler() {
        return this.monitor.snapshot();
      },
    },

    alerts: {
      handler() {
        return this.monitor.book.view();
      },
    },

    /** For gateways without a local monitor: the snapshot plus the alert changes after `after`. */
    feed: {
      visibility: 'public',
      params: {
        $$strict: true,
        after: { type: 'number', integer: true, min: 0, optional: true, convert: true },
      },
      handler(ctx: Context<{ after?: number }>) {
        return this.monitor.feed(ctx.params.after);
      },
    },
  },

  events: {
    'purchase.results'(ctx: Context<{ records: ResultRecord[] }>) {
      if (Array.isArray(ctx.params.records)) this.monitor.results$.next(ctx.params.records);
    },
    'metrics.submits'(ctx: Context<SubmitReport>) {
      if (ctx.params.counts) this.monitor.submits$.next(ctx.params);
    },
  },

  created() {
    const rt = runtimeOf(this.broker);
    this.monitor = new Monitor(
      this.broker,
      rt.config,
      {
        stores: { db: rt.db, redis: rt.redis },
        queueStats: async () => (await rt.queue(this.broker.nodeID)).stats(),
      },
      this.logger,
    );
  },

  started() {
    // Begin once the service that creates the database is up (or after a grace period without
    // it), so a fresh start does not open with a false "PostgreSQL unreachable" alert.
    void this.broker
      .waitForServices(['tickets'], STARTUP_GRACE_MS)
      .catch(() => undefined)
      .then(() => this.monitor.start());
  },

  async stopped() {
    await this.monitor.stop();
  },
};

export default monitorService;
