import type { Context, ServiceSchema, ServiceSettingSchema } from 'moleculer';
import { groupBy, mergeMap, Subject, throttleTime, type Subscription } from 'rxjs';
import { CrowdNearby, type CrowdReport } from '../lib/purchase/crowd';
import { resendDeadLetter } from '../lib/purchase/dead-letters';
import type { PurchaseQueue } from '../lib/purchase/queue';
import { readCachedResult, type ResultRecord } from '../lib/purchase/results';
import { PurchaseWorker } from '../lib/purchase/worker';
import { METRICS, registerMetrics } from '../lib/metrics';
import { runtimeOf, type Runtime } from '../lib/runtime';
import { limitRule, messageIdRule } from '../lib/validation';

type Vars = {
  rt: Runtime;
  queue: PurchaseQueue;
  worker: PurchaseWorker;
  stockReturned$: Subject<string>;
  announcing: Subscription;
  crowds: CrowdNearby;
};

/** Consumes the purchase queue and owns the dead-letter queue (SPEC §4). */
const purchaseWorkerService: ServiceSchema<ServiceSettingSchema, Record<string, never>, Vars> = {
  name: 'purchase-worker',
  dependencies: ['tickets'],

  actions: {
    deadLetters: {
      params: {
        $$strict: true,
        limit: limitRule,
      },
      handler(ctx: Context<{ limit?: number }>) {
        return this.queue.deadLetters(ctx.params.limit ?? 100);
      },
    },

    resend: {
      params: { $$strict: true, messageId: messageIdRule },
      async handler(ctx: Context<{ messageId: string }>) {
        const { queue, rt } = this;
        const answer = await resendDeadLetter(queue, rt.redis, rt.config, rt.admitter, ctx.params.messageId);
        // Gateways may still hold the old FAILED answer in their LRU: tell them it is pending again.
        const record = await readCachedResult(this.rt.redis, answer.messageId);
        if (record) await ctx.broadcast('purchase.results', { records: [record] });
        return answer;
      },
    },

    queueStats: {
      handler() {
        return this.queue.stats();
      },
    },
  },

  events: {
    'purchase.crowd'(ctx: Context<CrowdReport>) {
      this.crowds.onReport(ctx.params);
    },
  },

  created() {
    this.rt = runtimeOf(this.broker);
    this.crowds = new CrowdNearby();
    registerMetrics(this.broker);
    // Gateways that marked a day sold out learn that stock came back, at most twice a second per day.
    this.stockReturned$ = new Subject<string>();
    this.announcing = this.stockReturned$
      .pipe(
        groupBy((date) => date),
        mergeMap((day$) => day$.pipe(throttleTime(500, undefined, { leading: true, trailing: true }))),
      )
      .subscribe((date) => void this.broker.broadcast('tickets.stockChanged', { date }));
  },

  async started() {
    this.queue = await this.rt.queue(this.broker.nodeID);
    this.worker = new PurchaseWorker(this.rt.config, this.rt.writerDb, this.rt.redis, this.queue, {
      publish: (records: ResultRecord[]) => {
        const perStatus = new Map<string, number>();
        for (const r of records) perStatus.set(r.status, (perStatus.get(r.status) ?? 0) + 1);
        for (const [status, n] of perStatus)
          this.broker.metrics.increment(METRICS.transitions, { status }, n);
        void this.broker.broadcast('purchase.results', { records });
      },
      finished: (_record, latencyMs) => this.broker.metrics.observe(METRICS.latency, latencyMs),
      deadLettered: (record) => {
        void this.broker.broadcast('purchase.deadLettered', { record });
      },
      onBatch: (size) => {
        this.broker.metrics.observe(METRICS.batchSize, size);
        this.broker.metrics.increment(METRICS.ordersCommitted, undefined, size);
      },
      stockReturned: (date) => this.stockReturned$.next(date),
      yielding: () => this.crowds.active(),
      log: this.logger,
    });
    await this.worker.start();
  },

  async stopped() {
    await this.worker?.stop();
    this.announcing.unsubscribe();
  },
};

export default purchaseWorkerService;
