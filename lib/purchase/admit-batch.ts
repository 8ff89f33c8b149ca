import type Redis from 'ioredis';
import type { Config } from '../../config';
import { keys, outboxEntry } from '../store/keys';
import { TurnBuffer } from '../turn-buffer';
import { admissionOf, type Admission } from './reservations';

/** At most this many admissions per script call (a call holds Redis while it runs). */
const MAX_BATCH = 100;

interface Waiting {
  userId: number;
  date: string;
  messageId: string;
  now: Date;
  resolve(admission: Admission): void;
  reject(err: unknown): void;
}

export interface AdmissionBatchSettings extends Pick<Config, 'rateLimit' | 'resultTtlSeconds'> {
  /** The process that finishes these admissions (see purchase/outbox.ts). */
  admitter: string;
}

/**
 * The admissions of one event-loop turn in one Redis script call (ADMIT_MANY), each decided exactly
 * as `reserve` decides it alone. A crowd's requests each arrive in an I/O callback of their own, and
 * ioredis's auto-pipelining flushes at the end of each: one write, one read and one script call per
 * request, where one per turn does. What they share (limits, the result TTL, the sale's flags) goes
 * once per call.
 */
export class AdmissionBatch {
  private readonly waiting = new TurnBuffer<Waiting>((batch) => this.send(batch), MAX_BATCH);

  constructor(
    private readonly redis: Redis,
    private readonly settings: AdmissionBatchSettings,
  ) {}

  reserve(
    { userId, date }: { userId: number; date: string },
    messageId: string,
    now = new Date(),
  ): Promise<Admission> {
    return new Promise((resolve, reject) =>
      this.waiting.add({ userId, date, messageId, now, resolve, reject }),
    );
  }

  private send(batch: Waiting[]): void {
    const { rateLimit: rl, resultTtlSeconds, admitter } = this.settings;
    // One array (ioredis flattens it): the key count, the keys, then the values (store/scripts.ts).
    const all: (string | number)[] = [
      4 + 5 * batch.length,
      keys.ready,
      keys.paused,
      keys.globalRate,
      keys.outbox,
    ];
    for (const { userId, date, messageId } of batch)
      all.push(
        keys.userRate(userId),
        keys.stock(date),
        keys.claims(date),
        keys.pending(date),
        keys.result(messageId),
      );
    all.push(rl.userMax, rl.userWindowMs, rl.globalMax, rl.globalWindowMs, resultTtlSeconds, Date.now());
    for (const { userId, date, messageId, now } of batch)
      all.push(userId, messageId, date, now.toISOString(), outboxEntry({ date, messageId, admitter }));
    this.redis.admitMany(all).then(
      (answers) =>
        batch.forEach((w, i) => {
          const outcome = answers[2 * i];
          if (outcome === undefined) w.reject(new Error('ADMIT_MANY answered too few admissions'));
          else w.resolve(admissionOf(outcome, answers[2 * i + 1], w.messageId));
        }),
      (err: unknown) => batch.forEach((w) => w.reject(err)),
    );
  }
}
