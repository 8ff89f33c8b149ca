import type Redis from 'ioredis';
import type { Logger, ServiceBroker } from 'moleculer';
import {
  catchError,
  exhaustMap,
  firstValueFrom,
  from,
  of,
  share,
  Subject,
  timeout,
  timer,
  type Observable,
  type Subscription,
} from 'rxjs';
import type { Sequelize } from 'sequelize';
import type { Config } from '../../config';
import { appError } from '../errors';
import { checkHealth } from '../http/health';
import { METRICS, registerMetrics } from '../metrics';
import type { QueueStats } from '../purchase/queue';
import type { ResultRecord } from '../purchase/results';
import { AlertBook, alertRules, evaluateAlerts, type AlertRule } from './alerts';
import { monitorSnapshots } from './pipeline';
import type { Alert, Dependencies, MonitorSnapshot, NodeStat, QueueSnapshot, SubmitReport } from './types';
import { postWebhook, webhookPayload } from './webhook';

/** What `monitor.feed` answers: the latest snapshot and the alert changes after a sequence number. */
export interface MonitorFeed {
  seq: number;
  changes: Alert[];
  snapshot: MonitorSnapshot;
}

/** The configuration the monitor reads: intervals, alert rules and the webhook, the namespace. */
export type MonitorSettings = Pick<Config, 'monitor' | 'alerts' | 'namespace'>;

/** What the monitor reads besides the bus: this node's stores (health) and the queue directly. */
export interface MonitorDeps {
  stores: { db: Sequelize; redis: Redis };
  /** The queue's figures read directly, when no worker answers `purchase-worker.queueStats`. */
  queueStats(): Promise<QueueStats>;
}

const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

/**
 * The monitor of one node: feeds broker events and polled readings into the RxJS pipeline,
 * evaluates the alert rules on each snapshot, and logs, records and forwards the alerts.
 */
export class Monitor {
  /** `purchase.results` batches (fed by the service's event handler). */
  readonly results$ = new Subject<ResultRecord[]>();
  /** `metrics.submits` reports (fed by the service's event handler). */
  readonly submits$ = new Subject<SubmitReport>();
  readonly book = new AlertBook();
  private readonly snapshotSubject = new Subject<MonitorSnapshot>();
  private readonly alertSubject = new Subject<Alert>();
  readonly snapshots$: Observable<MonitorSnapshot> = this.snapshotSubject.asObservable();
  /** Raises and resolutions, as they happen. */
  readonly alertEvents$: Observable<Alert> = this.alertSubject.asObservable();
  private latestSnapshot: MonitorSnapshot | null = null;
  private subscription?: Subscription;
  private stopped = false;
  private started = false;
  private readonly deliveries = new Set<Promise<boolean>>();
  private readonly rules: AlertRule[];

  constructor(
    private readonly broker: ServiceBroker,
    private readonly config: MonitorSettings,
    private readonly deps: MonitorDeps,
    private readonly logger: Logger,
  ) {
    this.rules = alertRules(config.alerts);
    registerMetrics(broker);
  }

  get latest(): MonitorSnapshot | null {
    return this.latestSnapshot;
  }

  /** Between start and stop: then the SSE route may subscribe to it directly. */
  get running(): boolean {
    return this.started && !this.stopped;
  }

  /** Idempotent; does nothing once stopped. */
  start(): void {
    if (this.stopped || this.subscription) return;
    const { intervalMs } = this.config.monitor;
    // exhaustMap: a slow reading is skipped, never queued behind itself.
    const poll = <T>(everyMs: number, read: () => Promise<T>, fallback: T): Observable<T> =>
      timer(0, everyMs).pipe(
        exhaustMap(() => from(read()).pipe(catchError(() => of(fallback)))),
        share(),
      );
    const snapshots$ = monitorSnapshots(
      {
        results$: this.results$,
        submits$: this.submits$,
        queue$: poll(intervalMs, () => this.readQueue(), null),
        nodes$: poll(intervalMs * 2, () => this.readNodes(), [] as NodeStat[]),
        // Every interval: each snapshot's reading is fresh, so a hold counts distinct probes.
        dependencies$: poll(intervalMs, () => this.readDependencies(), {
          postgres: false,
          redis: false,
          nats: false,
        }),
      },
      { intervalMs, windowMs: this.config.alerts.windowMs },
    );
    this.subscription = snapshots$
      .pipe(evaluateAlerts(this.rules, this.config.alerts.hold))
      .subscribe(({ snapshot, changes }) => {
        this.latestSnapshot = snapshot;
        this.book.setActive(snapshot.alerts);
        for (const change of changes) this.onChange(change);
        this.snapshotSubject.next(snapshot);
      });
    this.started = true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.subscription?.unsubscribe();
    this.snapshotSubject.complete();
    this.alertSubject.complete();
    // Webhook posts have their own timeout: let them finish rather than cut them off.
    await Promise.allSettled([...this.deliveries]);
  }

  /** The latest snapshot; right after start, waits for the first one. */
  async snapshot(): Promise<MonitorSnapshot> {
    if (this.latestSnapshot) return this.latestSnapshot;
    const waitMs = Math.max(5000, this.config.monitor.intervalMs * 3);
    try {
      return await firstValueFrom(this.snapshots$.pipe(timeout(waitMs)));
    } catch {
      throw appError('UNAVAILABLE', 'The monitor has no snapshot yet, try again shortly');
    }
  }

  async feed(after: number | undefined): Promise<MonitorFeed> {
    const snapshot = await this.snapshot();
    const { seq, changes } = this.book.changesAfter(after ?? Number.MAX_SAFE_INTEGER);
    return { seq, changes, snapshot };
  }

  private onChange(alert: Alert): void {
    this.book.record(alert);
    if (alert.resolvedAt) this.logger.info(`Alert resolved: [${alert.rule}] ${alert.message}`);
    else this.logger.warn(`Alert raised: [${alert.rule}] ${alert.message}`);
    this.alertSubject.next(alert);
    const url = this.config.alerts.webhookUrl;
    if (url && this.sendsWebhooks()) {
      const payload = webhookPayload(alert, this.config.namespace, this.broker.nodeID);
      const delivery = postWebhook(url, payload, this.logger);
      this.deliveries.add(delivery);
      void delivery.finally(() => this.deliveries.delete(delivery));
    }
  }

  /** With several monitors on one bus, only the first (by node ID) posts, so receivers get each alert once. */
  private sendsWebhooks(): boolean {
    const nodes = this.broker.registry
      .getServiceList({ onlyAvailable: true })
      .filter((s) => s.name === 'monitor' && s.nodeID)
      .map((s) => s.nodeID as string)
      .sort();
    return nodes.length === 0 || nodes[0] === this.broker.nodeID;
  }

  private workerCount(): number {
    return this.broker.registry
      .getServiceList({ onlyAvailable: true })
      .filter((s) => s.name === 'purchase-worker').length;
  }

  private async readQueue(): Promise<QueueSnapshot | null> {
    const consumers = this.workerCount();
    // With no worker registered (none running, or still starting) read the consumer ourselves:
    // that is also how a stalled queue shows. Asking first would only log "not registered".
    const stats =
      consumers > 0
        ? await this.broker
            .call<QueueStats, Record<string, never>>(
              'purchase-worker.queueStats',
              {},
              { timeout: 2000, retries: 0 },
            )
            .catch(() => this.deps.queueStats())
        : await this.deps.queueStats();
    const queue: QueueSnapshot = {
      backlog: stats.backlog,
      waiting: stats.waiting,
      inProgress: stats.inProgress,
      consumers,
      deadLetters: stats.deadLetters,
      redelivered: stats.redelivered,
    };
    this.broker.metrics.set(METRICS.backlog, queue.backlog);
    this.broker.metrics.set(METRICS.deadLetters, queue.deadLetters);
    return queue;
  }

  /** Memory and CPU of every available node, from Moleculer's built-in `$node.health`. */
  private async readNodes(): Promise<NodeStat[]> {
    // A node that has announced itself but not (or no longer) its services cannot answer yet.
    const nodes = this.broker.registry
      .getNodeList({ onlyAvailable: true, withServices: true })
      .filter((node) => (node.services as { name: string }[]).some((s) => s.name === '$node'));
    const timeoutMs = Math.max(1000, this.config.monitor.intervalMs);
    const stats = await Promise.all(
      nodes.map(async (node): Promise<NodeStat | null> => {
        try {
          const health = await this.broker.call<
            { cpu: { utilization: number | null }; process: { memory: NodeJS.MemoryUsage; uptime: number } },
            Record<string, never>
          >('$node.health', {}, { nodeID: node.id, timeout: timeoutMs, retries: 0 });
          return {
            nodeID: node.id,
            services: (node.services as { name: string }[])
              .map((s) => s.name)
              .filter((name) => !name.startsWith('$'))
              .sort(),
            rssMb: mb(health.process.memory.rss),
            heapUsedMb: mb(health.process.memory.heapUsed),
            cpuPercent: Math.round(node.cpu ?? health.cpu.utilization ?? 0),
            uptimeSeconds: Math.round(health.process.uptime),
          };
        } catch {
          return null; // left out until it answers again
        }
      }),
    );
    return stats.filter((s): s is NodeStat => s !== null).sort((a, b) => a.nodeID.localeCompare(b.nodeID));
  }

  private async readDependencies(): Promise<Dependencies> {
    const { dependencies: d } = await checkHealth(this.broker, this.deps.stores);
    return { postgres: d.postgres.up, redis: d.redis.up, nats: d.nats.up };
  }
}
