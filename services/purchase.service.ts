import { hostname } from 'node:os';
import type { Context, ServiceSchema, ServiceSettingSchema } from 'moleculer';
import type { PurchaseRequest } from '../lib/purchase/checks';
import { CrowdWatch, type CrowdReport } from '../lib/purchase/crowd';
import { PurchaseGateway, type Outcome } from '../lib/purchase/gateway';
import { redisAdmissions, storedResults } from '../lib/purchase/gateway-ports';
import { OutboxKeeper } from '../lib/purchase/outbox';
import type { ResultRecord } from '../lib/purchase/results';
import { isRefusal } from '../lib/errors';
import { METRICS, registerMetrics } from '../lib/metrics';
import { SubmitCounter } from '../lib/monitor/submit-counter';
import { runtimeOf, type Runtime } from '../lib/runtime';
import { keys } from '../lib/store/keys';
import { dateRule, messageIdRule, purchaseParams, resultParams, userIdQueryRule } from '../lib/validation';

/** The longest long poll (LONG_POLL_MAX_MS ≤ 30 s), and time for its reads around the wait. */
const LONG_POLL_TIMEOUT_MS = 40_000;
/** As long as the broker waits for actions in flight when it stops (tracking.shutdownTimeout). */
const ADMISSIONS_SETTLE_MS = 10_000;

/**
 * Set by the HTTP door when a signed-in user calls (AUTH_MODE=jwt): the messages asked about must be
 * theirs. Internal callers leave it out and may read any message.
 */
type CallerMeta = { userId?: number };

type Vars = {
  rt: Runtime;
  gateway: PurchaseGateway;
  /** The gateway while the service runs, for the api service of this node (services/local.ts). */
  serving?: PurchaseGateway;
  outbox: OutboxKeeper;
  timers: NodeJS.Timeout[];
  submits: SubmitCounter;
  countSubmit: (outcome: string) => void;
  reportSubmits: () => void;
  crowd: CrowdWatch;
};

/** V2 asynchronous purchase, gateway side: admission, publish, and result queries (SPEC §3 V2). */
const purchaseService: ServiceSchema<ServiceSettingSchema, Record<string, never>, Vars> = {
  name: 'purchase',
  dependencies: ['tickets'],

  actions: {
    submit: {
      params: purchaseParams,
      async handler(ctx: Context<PurchaseRequest, { $statusCode?: number }>) {
        const answer = await this.gateway.submit(ctx.params);
        if (isRefusal(answer)) ctx.meta.$statusCode = answer.http;
        return answer;
      },
    },

    result: {
      params: resultParams,
      // A long poll answers at its wait's end with the current status: the broker's request timeout
      // (30 s) must not cut a 30 s wait short with a 503. (Moleculer honours an action's own
      // timeout; its typings do not list it.)
      ...{ timeout: LONG_POLL_TIMEOUT_MS },
      handler(ctx: Context<{ messageId: string; waitMs?: number }, CallerMeta>) {
        return this.gateway.result(ctx.params.messageId, ctx.params.waitMs ?? 0, ctx.meta.userId);
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
      handler(ctx: Context<{ messageIds: string[] }, CallerMeta>) {
        return this.gateway.results(ctx.params.messageIds, ctx.meta.userId);
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
    // Back on the bus after a blip: broadcasts may have been missed meanwhile.
    '$transporter.connected'() {
      this.gateway?.checkFlags().catch(() => undefined);
    },
  },

  created() {
    this.rt = runtimeOf(this.broker);
    registerMetrics(this.broker);
    // The hot path only bumps a number; once per interval the counts go to the Prometheus counter
    // and, as one event, to the monitor.
    this.submits = new SubmitCounter();
    this.countSubmit = (outcome) => this.submits.add(outcome);
    this.reportSubmits = () => {
      const counts = this.submits.drain();
      if (!counts) return;
      for (const [outcome, n] of Object.entries(counts))
        this.broker.metrics.increment(METRICS.submits, { outcome }, n);
      void this.broker.broadcast(
        'metrics.submits',
        { nodeID: this.broker.nodeID, counts },
        { groups: ['monitor'] },
      );
    };
  },

  async started() {
    const queue = await this.rt.queue(this.broker.nodeID);
    const { config, redis, db, admitter, calendar } = this.rt;
    const ports = {
      admissions: redisAdmissions({ redis, admitter }, config),
      queue,
      results: storedResults({ redis, db }),
    };
    const settings = {
      calendar,
      hashSecret: config.hashSecret,
      poll: config.poll,
      resultLruSize: config.cache.resultLruSize,
    };
    // Workers on this machine slow down while its crowd is admitted (WORKER_CROWD_RATE).
    const report: Omit<CrowdReport, 'crowd'> = { nodeID: this.broker.nodeID, host: hostname() };
    this.crowd = new CrowdWatch((crowd) => {
      void this.broker.broadcast('purchase.crowd', { ...report, crowd }, { groups: ['purchase-worker'] });
    });
    this.gateway = new PurchaseGateway(ports, settings, {
      soldOut: (date) => void this.broker.broadcast('tickets.soldOut', { date }),
      submitted: (outcome: Outcome, stockLeft = NaN) => {
        this.countSubmit(outcome);
        if (outcome === 'accepted') this.crowd.admission(stockLeft);
      },
      resultRead: (level) => this.broker.metrics.increment(METRICS.cache, { level }),
    });
    this.serving = this.gateway;
    this.gateway.setPaused((await redis.exists(keys.paused)) === 1);
    await this.gateway.refreshBacklog().catch(() => undefined);
    this.outbox = new OutboxKeeper(
      { redis, db, queue, admitter },
      { ...config.outbox, resultTtlSeconds: config.resultTtlSeconds },
      {
        results: (records) => void this.broker.broadcast('purchase.results', { records }),
        stockReturned: (date) => void this.broker.broadcast('tickets.stockChanged', { date }),
      },
    );
    const recover = () =>
      this.outbox.pass().then(
        (report) => {
          if (report && report.republished + report.released + report.v1Settled > 0)
            this.logger.warn('Finished admissions their process left behind', report);
        },
        (err: Error) => this.logger.warn('Outbox recovery failed; retrying', err.message),
      );
    void recover();
    this.crowd.start();
    this.timers = [
      setInterval(() => this.gateway.refreshBacklog().catch(() => undefined), 500),
      setInterval(this.reportSubmits, config.monitor.intervalMs),
      setInterval(recover, config.outbox.checkMs),
      setInterval(() => this.gateway.checkFlags().catch(() => undefined), config.flagCheckMs),
    ];
  },

  async stopped() {
    for (const timer of this.timers ?? []) clearInterval(timer);
    this.crowd?.stop();
    this.serving = undefined;
    // Submits the HTTP route hands straight to the gateway are no action calls: the broker's
    // request tracking does not wait for them, so the service does.
    await this.gateway?.admissionsSettled(ADMISSIONS_SETTLE_MS);
    this.reportSubmits();
  },
};

export default purchaseService;
