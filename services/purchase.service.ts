import type { Context, ServiceSchema, ServiceSettingSchema } from 'moleculer';
import type { PurchaseRequest } from '../lib/purchase/admission';
import { PurchaseGateway, type Outcome } from '../lib/purchase/gateway';
import type { ResultRecord } from '../lib/purchase/results';
import { METRICS, registerMetrics } from '../lib/metrics';
import { runtimeOf, type Runtime } from '../lib/runtime';
import { keys } from '../lib/store/keys';
import { dateRule, messageIdRule, purchaseParams, userIdQueryRule } from '../lib/validation';

type Vars = { rt: Runtime; gateway: PurchaseGateway; timer?: NodeJS.Timeout };

/** V2 asynchronous purchase, gateway side: admission, publish, and result queries (SPEC §3 V2). */
const purchaseService: ServiceSchema<ServiceSettingSchema, Record<string, never>, Vars> = {
  name: 'purchase',
  dependencies: ['tickets'],

  actions: {
    submit: {
      params: purchaseParams,
      handler(ctx: Context<PurchaseRequest>) {
        return this.gateway.submit(ctx.params);
      },
    },

    result: {
      params: {
        $$strict: true,
        messageId: messageIdRule,
        waitMs: { type: 'number', integer: true, min: 0, max: 30000, optional: true, convert: true },
      },
      handler(ctx: Context<{ messageId: string; waitMs?: number }>) {
        return this.gateway.result(ctx.params.messageId, ctx.params.waitMs ?? 0);
      },
    },

    resultByUser: {
      params: { $$strict: true, userId: userIdQueryRule, date: dateRule },
      handler(ctx: Context<{ userId: number; date: string }>) {
        return this.gateway.resultByUser(ctx.params.userId, ctx.params.date);
      },
    },

    results: {
      params: {
        $$strict: true,
        messageIds: { type: 'array', items: messageIdRule, min: 1, max: 100 },
      },
      handler(ctx: Context<{ messageIds: string[] }>) {
        return this.gateway.results(ctx.params.messageIds);
      },
    },
  },

  events: {
    'purchase.results'(ctx: Context<{ records: ResultRecord[] }>) {
      this.gateway.onResults(ctx.params.records);
    },
    'tickets.soldOut'(ctx: Context<{ date: string }>) {
      this.gateway.markSoldOut(ctx.params.date);
    },
    'tickets.stockChanged'(ctx: Context<{ date: string }>) {
      this.gateway.stockChanged(ctx.params.date);
    },
    'sale.paused'(ctx: Context<{ paused: boolean }>) {
      this.gateway.setPaused(ctx.params.paused);
    },
  },

  created() {
    this.rt = runtimeOf(this.broker);
    registerMetrics(this.broker);
  },

  async started() {
    const queue = await this.rt.queue(this.broker.nodeID);
    this.gateway = new PurchaseGateway(this.rt, queue, {
      soldOut: (date) => void this.broker.broadcast('tickets.soldOut', { date }),
      submitted: (outcome: Outcome) => this.broker.metrics.increment(METRICS.submits, { outcome }),
    });
    this.rt.gateway = this.gateway;
    this.gateway.setPaused((await this.rt.redis.exists(keys.paused)) === 1);
    await this.gateway.refreshBacklog().catch(() => undefined);
    this.timer = setInterval(() => {
      this.gateway.refreshBacklog().catch(() => undefined);
    }, 500);
  },

  async stopped() {
    clearInterval(this.timer);
    this.rt.gateway = undefined;
  },
};

export default purchaseService;
