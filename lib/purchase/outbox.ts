import type Redis from 'ioredis';
import type { Sequelize } from 'sequelize';
import { ERRORS } from '../errors';
import { isV1Claim, keys, outboxEntry, parseOutboxEntry, v1Claim, type OutboxEntry } from '../store/keys';
import { validOrderOf } from '../tickets/orders';
import { TurnBuffer } from '../turn-buffer';
import { settle } from './reservations';
import type { PurchaseQueue } from './queue';
import { ResultRecorder, toFields, type ResultRecord } from './results';

/**
 * The admission outbox closes the gap between an admission (Redis) and its message on the queue:
 * ADMIT enters every admission in the `outbox` sorted set, by time, and the entry leaves once
 * JetStream acknowledged the message (V2) or the order is committed (V1). An entry whose admitter
 * died (its heartbeat key expired) or that stayed too long is finished here by any live gateway,
 * one at a time under a lock: a V2 message is published again with the same `Nats-Msg-Id`
 * (JetStream drops the copy of one that did arrive, and the worker is idempotent on message id); a
 * V1 reservation is settled from the database's answer. An admission too old to publish is released:
 * the ticket returns to the sale and the result becomes FAILED (5030).
 */

interface Published {
  entry: string;
  messageId: string;
  /** JetStream's sequence of the message; undefined when its publish failed and was undone. */
  seq?: number;
}

/**
 * Takes acknowledged admissions out of the outbox and writes their stream sequence into their
 * waiting result records (queue positions): one PUBLISHED call per event-loop turn.
 */
export class OutboxAcks {
  private readonly acked = new TurnBuffer<Published>((batch) => this.write(batch), 1000);

  constructor(private readonly redis: Redis) {}

  remove(entry: OutboxEntry, seq?: number): void {
    this.acked.add({ entry: outboxEntry(entry), messageId: entry.messageId, seq });
  }

  private write(batch: Published[]): void {
    const args: (string | number)[] = [batch.length + 1, keys.outbox];
    for (const p of batch) args.push(keys.result(p.messageId));
    for (const p of batch) args.push(p.entry, p.seq === undefined ? '' : p.seq);
    void this.redis.published(args).catch(() => undefined); // recovery clears the outbox
  }
}

export interface OutboxSettings {
  /** An entry whose admitter still lives is left to it for this long. */
  graceMs: number;
  /** Past this age an admission is released instead of published. */
  maxAgeMs: number;
  resultTtlSeconds: number;
}

export interface OutboxHooks {
  /** Results that became terminal here (clients waiting on them wake up). */
  results(records: ResultRecord[]): void;
  /** A reservation went back to a day's stock. */
  stockReturned(date: string): void;
}

export interface OutboxReport {
  republished: number;
  released: number;
  v1Settled: number;
  cleared: number;
}

/** At most this many entries per pass (the oldest). */
const PASS_SIZE = 1000;
/** The pass lock outlives a pass that hangs on an unreachable queue. */
const LOCK_MS = 30_000;

interface Due extends OutboxEntry {
  raw: string;
  admittedAt: number;
  userId: number;
}

export class OutboxKeeper {
  private readonly recorder: ResultRecorder;

  constructor(
    private readonly deps: { redis: Redis; db: Sequelize; queue: PurchaseQueue; admitter: string },
    private readonly settings: OutboxSettings,
    private readonly hooks: OutboxHooks,
  ) {
    this.recorder = new ResultRecorder(deps.redis, settings.resultTtlSeconds);
  }

  /** One recovery pass; undefined when another gateway holds the lock. */
  async pass(now = Date.now()): Promise<OutboxReport | undefined> {
    const { redis, admitter } = this.deps;
    if (!(await this.lock())) return undefined;
    try {
      const report: OutboxReport = { republished: 0, released: 0, v1Settled: 0, cleared: 0 };
      const due = await this.dueEntries(now);
      const done: string[] = [];
      await Promise.all(
        due.map(async (entry) => {
          if (!Number.isSafeInteger(entry.userId)) {
            done.push(entry.raw); // settled already: its message is on the queue or finished
            report.cleared++;
          } else if (isV1Claim(entry.messageId)) {
            await this.finishV1(entry);
            done.push(entry.raw);
            report.v1Settled++;
          } else if (now - entry.admittedAt > this.settings.maxAgeMs) {
            await this.release(entry);
            done.push(entry.raw);
            report.released++;
          } else if (await this.republish(entry)) {
            done.push(entry.raw);
            report.republished++;
          }
        }),
      );
      if (done.length) await redis.zrem(keys.outbox, ...done);
      return report;
    } finally {
      if ((await redis.get(keys.outboxLock)) === admitter) await redis.del(keys.outboxLock);
    }
  }

  /**
   * The pass lock: free, or held by a process that died mid-pass (its heartbeat lapsed), which would
   * otherwise hold every gateway's recovery back until the lock expires.
   */
  private async lock(): Promise<boolean> {
    const { redis, admitter } = this.deps;
    if ((await redis.set(keys.outboxLock, admitter, 'PX', LOCK_MS, 'NX')) === 'OK') return true;
    const holder = await redis.get(keys.outboxLock);
    if (holder === null || holder === admitter) return false;
    return (await redis.takeOver(keys.outboxLock, keys.admitter(holder), holder, admitter, LOCK_MS)) === 1;
  }

  /** The oldest entries that are this pass's to finish, with the user their reservation holds. */
  private async dueEntries(now: number): Promise<Due[]> {
    const { redis } = this.deps;
    const flat = await redis.zrange(keys.outbox, 0, PASS_SIZE - 1, 'WITHSCORES');
    const entries: (OutboxEntry & { raw: string; admittedAt: number })[] = [];
    const malformed: string[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const entry = parseOutboxEntry(flat[i]);
      if (entry) entries.push({ ...entry, raw: flat[i], admittedAt: Number(flat[i + 1]) });
      else malformed.push(flat[i]);
    }
    if (malformed.length) await redis.zrem(keys.outbox, ...malformed);
    if (entries.length === 0) return [];
    const admitters = [...new Set(entries.map((e) => e.admitter))];
    const beats = await redis.mget(admitters.map(keys.admitter));
    const alive = new Set(admitters.filter((_, i) => beats[i] !== null));
    const due = entries.filter((e) => !alive.has(e.admitter) || now - e.admittedAt > this.settings.graceMs);
    if (due.length === 0) return [];
    const users = await redis.pipeline(due.map((e) => ['hget', keys.pending(e.date), e.messageId])).exec();
    return due.map((e, i) => ({ ...e, userId: Number(users?.[i]?.[1] ?? NaN) }));
  }

  private async republish(entry: Due): Promise<boolean> {
    const { messageId, userId, date, admittedAt } = entry;
    try {
      const ack = await this.deps.queue.publish({
        messageId,
        userId,
        date,
        queuedAt: new Date(admittedAt).toISOString(),
      });
      await this.recorder.record(messageId, 'PENDING', { seq: String(ack.seq) });
      return true;
    } catch {
      return false; // the queue is away: the next pass tries again, or releases it once too old
    }
  }

  /** Gives the ticket back and tells the buyer to try again. */
  private async release({ messageId, userId, date, admittedAt }: Due): Promise<void> {
    const released = await settle(this.deps.redis, { userId, date }, messageId, true, 'drop');
    if (!released) return;
    this.hooks.stockReturned(date);
    const now = new Date().toISOString();
    const record: ResultRecord = {
      messageId,
      userId,
      date,
      status: 'FAILED',
      errorCode: ERRORS.UNAVAILABLE.code,
      errorMessage: 'The purchase could not be queued in time; please try again',
      attempts: 0,
      queuedAt: new Date(admittedAt).toISOString(),
      updatedAt: now,
      completedAt: now,
    };
    // Never over a result the message reached after all (RECORD does not step back from SUCCESS).
    if (await this.recorder.record(messageId, 'FAILED', toFields(record))) this.hooks.results([record]);
  }

  /** A V1 purchase whose process died: the database says whether its order was made. */
  private async finishV1({ messageId, userId, date }: Due): Promise<void> {
    const { redis, db } = this.deps;
    const order = await validOrderOf(db, userId, date);
    if (order) {
      await settle(redis, { userId, date }, messageId, false, 'set', v1Claim(order.orderNo));
    } else if (await settle(redis, { userId, date }, messageId, true, 'drop')) {
      this.hooks.stockReturned(date);
    }
  }
}
