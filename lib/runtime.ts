import { randomBytes } from 'node:crypto';
import type { ServiceBroker } from 'moleculer';
import type Redis from 'ioredis';
import type { Sequelize } from 'sequelize';
import type { Config } from '../config';
import { createSequelize } from './db';
import type { SaleCalendar } from './sale/calendar';
import { keys } from './store/keys';
import { createRedis } from './store/redis';
import { PurchaseQueue } from './purchase/queue';

/** How long an admitter's heartbeat key outlives its last beat. */
const ADMITTER_TTL_MS = 3000;

/**
 * The connections a process shares between its services, one set per broker so that several
 * brokers (tests, benchmarks) can live in one process with different namespaces.
 */
export class Runtime {
  private sequelize?: Sequelize;
  private writerSequelize?: Sequelize;
  private redisClient?: Redis;
  private queuePromise?: Promise<PurchaseQueue>;
  private admitterId?: string;
  private heartbeat?: NodeJS.Timeout;

  constructor(readonly config: Config) {
    const { timeZone, days, windowStart, windowEnd } = config.sale;
    this.calendar = { timeZone, days, windowStart, windowEnd };
  }

  readonly calendar: SaleCalendar;

  get db(): Sequelize {
    this.sequelize ??= createSequelize({ url: this.config.databaseUrl, poolMax: this.config.db.poolMax });
    return this.sequelize;
  }

  /**
   * The order writer's own pool: floods of reads (orders, stats, unknown results, verify hashes)
   * queue on the main pool and can never delay the commits of accepted messages.
   */
  get writerDb(): Sequelize {
    this.writerSequelize ??= createSequelize({
      url: this.config.databaseUrl,
      poolMax: this.config.db.writerPoolMax,
      name: 'miaosha-orders',
    });
    return this.writerSequelize;
  }

  get redis(): Redis {
    if (!this.redisClient) {
      this.redisClient = createRedis(this.config, this.config.namespace);
      // Errors are reported per command and by /health; an unhandled 'error' event would crash.
      this.redisClient.on('error', () => undefined);
    }
    return this.redisClient;
  }

  /**
   * This process's name on the admissions it makes (their outbox entries). A heartbeat key says it
   * lives; once the key expires, any gateway finishes what it left (purchase/outbox.ts).
   */
  get admitter(): string {
    if (!this.admitterId) {
      const id = randomBytes(6).toString('hex');
      const beat = () =>
        void this.redis.set(keys.admitter(id), process.pid, 'PX', ADMITTER_TTL_MS).catch(() => undefined);
      beat();
      this.heartbeat = setInterval(beat, ADMITTER_TTL_MS / 3).unref();
      this.admitterId = id;
    }
    return this.admitterId;
  }

  /** The JetStream queue, connected (and its streams ensured) on first use. */
  queue(name = 'miaosha'): Promise<PurchaseQueue> {
    this.queuePromise ??= PurchaseQueue.open(this.config, name).catch((err) => {
      this.queuePromise = undefined;
      throw err;
    });
    return this.queuePromise;
  }

  async close(): Promise<void> {
    const queue = await this.queuePromise?.catch(() => undefined);
    await queue?.close();
    this.queuePromise = undefined;
    clearInterval(this.heartbeat);
    // Stopped: what this process still owns is for the others to finish now.
    if (this.admitterId) await this.redisClient?.del(keys.admitter(this.admitterId)).catch(() => undefined);
    this.admitterId = undefined;
    await this.sequelize?.close().catch(() => undefined);
    await this.writerSequelize?.close().catch(() => undefined);
    this.writerSequelize = undefined;
    this.redisClient?.disconnect();
    this.sequelize = undefined;
    this.redisClient = undefined;
  }
}

const runtimes = new WeakMap<ServiceBroker, Runtime>();

export function attachRuntime(broker: ServiceBroker, config: Config): Runtime {
  const runtime = new Runtime(config);
  runtimes.set(broker, runtime);
  return runtime;
}

export function runtimeOf(broker: ServiceBroker): Runtime {
  const runtime = runtimes.get(broker);
  if (!runtime) throw new Error('No runtime attached to this broker (create it with createBroker)');
  return runtime;
}
