import type { ServiceBroker } from 'moleculer';
import type Redis from 'ioredis';
import type { Sequelize } from 'sequelize';
import type { Config } from '../config';
import { createSequelize } from './db';
import type { SaleCalendar } from './sale/calendar';
import { createRedis } from './store/redis';
import { PurchaseQueue } from './purchase/queue';
import type { PurchaseGateway } from './purchase/gateway';

/**
 * The connections a process shares between its services, one set per broker so that several
 * brokers (tests, benchmarks) can live in one process with different namespaces.
 */
export class Runtime {
  private sequelize?: Sequelize;
  private redisClient?: Redis;
  private queuePromise?: Promise<PurchaseQueue>;
  /** Set by the purchase service on gateway nodes (long-poll and SSE need it). */
  gateway?: PurchaseGateway;

  constructor(readonly config: Config) {
    const { timeZone, days, windowStart, windowEnd } = config.sale;
    this.calendar = { timeZone, days, windowStart, windowEnd };
  }

  readonly calendar: SaleCalendar;

  get db(): Sequelize {
    this.sequelize ??= createSequelize({ url: this.config.databaseUrl, poolMax: this.config.db.poolMax });
    return this.sequelize;
  }

  get redis(): Redis {
    if (!this.redisClient) {
      this.redisClient = createRedis(this.config, this.config.namespace);
      // Errors are reported per command and by /health; an unhandled 'error' event would crash.
      this.redisClient.on('error', () => undefined);
    }
    return this.redisClient;
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
    await this.sequelize?.close().catch(() => undefined);
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
