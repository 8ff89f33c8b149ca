import type Redis from 'ioredis';
import type { Config } from '../../config';
import { TurnBuffer } from '../turn-buffer';
import { admissionOf, admitArgs, type Admission, type ReserveOptions } from './reservations';

/** ADMIT takes 9 keys, then 11 values, per admission. */
const KEYS_PER_ADMISSION = 9;
/** At most this many admissions per script call (a call holds Redis while it runs). */
const MAX_BATCH = 100;

interface Waiting {
  args: (string | number)[];
  messageId: string;
  resolve(admission: Admission): void;
  reject(err: unknown): void;
}

/**
 * The admissions of one event-loop turn in one Redis script call (ADMIT_MANY), each decided exactly
 * as `reserve` decides it alone. A crowd's requests each arrive in an I/O callback of their own, and
 * ioredis's auto-pipelining flushes at the end of each: one write, one read and one script call per
 * request, where one per turn does.
 */
export class AdmissionBatch {
  private readonly waiting = new TurnBuffer<Waiting>((batch) => this.send(batch), MAX_BATCH);

  constructor(
    private readonly redis: Redis,
    private readonly config: Pick<Config, 'rateLimit'>,
  ) {}

  reserve(
    req: { userId: number; date: string },
    messageId: string,
    options: ReserveOptions,
  ): Promise<Admission> {
    const args = admitArgs(this.config, req, messageId, options);
    return new Promise((resolve, reject) => this.waiting.add({ args, messageId, resolve, reject }));
  }

  private send(batch: Waiting[]): void {
    // One array (ioredis flattens it): the key count, every admission's keys, then their values.
    const all: (string | number)[] = [KEYS_PER_ADMISSION * batch.length];
    for (const { args } of batch) for (let i = 0; i < KEYS_PER_ADMISSION; i++) all.push(args[i]);
    for (const { args } of batch) for (let i = KEYS_PER_ADMISSION; i < args.length; i++) all.push(args[i]);
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
