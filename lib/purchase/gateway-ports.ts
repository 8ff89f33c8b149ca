import type Redis from 'ioredis';
import type { Sequelize } from 'sequelize';
import type { Config } from '../../config';
import type { PurchaseKey } from '../../machines/purchase.machine';
import { keys } from '../store/keys';
import { orderByMessageId, validOrderOf } from '../tickets/orders';
import { AdmissionBatch } from './admit-batch';
import { settle, type Admission } from './reservations';
import { OutboxAcks } from './outbox';
import type { PurchaseMessage } from './queue';
import { fromOrder, readCachedResult, type ResultRecord } from './results';

/**
 * The narrow ports the purchase gateway (gateway.ts) works through. The real ones below are the
 * Redis admission scripts, the JetStream queue and the result records in Redis and PostgreSQL; the
 * gateway's unit test drives it through in-memory fakes of the same interfaces.
 */

type UserDay = Pick<PurchaseKey, 'userId' | 'date'>;

/** The admission store: reservations, claims and the sale's shared flags. */
export interface AdmissionPort {
  /** One round trip: pause, rate limits, the claim, a reserved ticket, the outbox entry, the PENDING record. */
  reserve(req: UserDay, messageId: string, now: Date): Promise<Admission>;
  /**
   * The admission's message is on the queue as stream sequence `seq`: its outbox entry goes, and
   * its PENDING record learns the sequence (queue positions for later polls). Never rejects.
   */
  queued(date: string, messageId: string, seq: number): void;
  /**
   * Undoes an admission whose publish failed: the ticket back, the claim and the PENDING record
   * gone, the outbox entry cleared. Never rejects (what it misses, the outbox recovery finishes).
   */
  release(req: UserDay, messageId: string): Promise<void>;
  /** The user's claim on a day (a message id or a V1 claim), null when none. */
  claim(date: string, userId: number): Promise<string | null>;
  /** Every claim of a day, by user id. */
  claims(date: string): Promise<Record<string, string>>;
  /** The shared flags and the stock of `dates`; undefined when any read failed. */
  flags(dates: string[]): Promise<{ ready: boolean; paused: boolean; stocks: number[] } | undefined>;
}

/** The queue accepted messages go to, and its consumer's progress. `PurchaseQueue` is one. */
export interface PublisherPort {
  publish(message: PurchaseMessage): Promise<{ seq: number }>;
  consumerInfo(): Promise<{
    ack_floor: { stream_seq: number };
    num_pending: number;
    num_ack_pending: number;
  }>;
}

/** Where results are read: the records in Redis, then the orders in the database. */
export interface ResultStorePort {
  cached(messageId: string): Promise<ResultRecord | null>;
  /** The order a message made, as its result; null when none. */
  ofMessage(messageId: string): Promise<ResultRecord | null>;
  /** The user's valid order of a day, as its result; null when none. */
  ofUser(userId: number, date: string): Promise<ResultRecord | null>;
}

export interface GatewayPorts {
  admissions: AdmissionPort;
  queue: PublisherPort;
  results: ResultStorePort;
}

/**
 * The admission port on Redis (store/scripts.ts), admitting in the name of `admitter`: the
 * admissions of one event-loop turn in one ADMIT_MANY call, and their queue acknowledgements (outbox
 * removal and stream sequence) in one PUBLISHED call.
 */
export function redisAdmissions(
  { redis, admitter }: { redis: Redis; admitter: string },
  settings: Pick<Config, 'rateLimit' | 'resultTtlSeconds'>,
): AdmissionPort {
  const outboxAcks = new OutboxAcks(redis);
  const admissions = new AdmissionBatch(redis, { ...settings, admitter });
  return {
    reserve: (req, messageId, now) => admissions.reserve(req, messageId, now),
    queued(date, messageId, seq) {
      outboxAcks.remove({ date, messageId, admitter }, seq);
    },
    async release(req, messageId) {
      await settle(redis, req, messageId, true, 'drop').catch(() => undefined);
      await redis.del(keys.result(messageId)).catch(() => undefined);
      outboxAcks.remove({ date: req.date, messageId, admitter });
    },
    claim: (date, userId) => redis.hget(keys.claims(date), String(userId)),
    claims: (date) => redis.hgetall(keys.claims(date)),
    async flags(dates) {
      const answers = await redis
        .pipeline([
          ['exists', keys.ready],
          ['exists', keys.paused],
          ...dates.map((d) => ['get', keys.stock(d)]),
        ])
        .exec();
      if (!answers || answers.some(([err]) => err)) return undefined;
      const [[, ready], [, paused], ...stocks] = answers;
      return { ready: ready === 1, paused: paused === 1, stocks: stocks.map(([, stock]) => Number(stock)) };
    },
  };
}

/** The result store on Redis (the records) and PostgreSQL (the orders). */
export function storedResults({ redis, db }: { redis: Redis; db: Sequelize }): ResultStorePort {
  return {
    cached: (messageId) => readCachedResult(redis, messageId),
    async ofMessage(messageId) {
      const order = await orderByMessageId(db, messageId);
      return order ? fromOrder(order) : null;
    },
    async ofUser(userId, date) {
      const order = await validOrderOf(db, userId, date);
      return order ? fromOrder(order) : null;
    },
  };
}
