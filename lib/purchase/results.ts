import type Redis from 'ioredis';
import type { PurchaseKey, PurchaseStatus } from '../../machines/purchase.machine';
import { claimOf, keys } from '../store/keys';
import { TurnBuffer } from '../turn-buffer';
import type { OrderView } from '../tickets/orders';

/** The result record of SPEC §3, as stored in the Redis hash `result:<messageId>`. */
export interface ResultRecord extends PurchaseKey {
  status: PurchaseStatus;
  ticketCode?: string;
  orderNo?: string;
  errorCode?: number;
  errorMessage?: string;
  attempts: number;
  queuedAt: string;
  updatedAt: string;
  completedAt?: string;
  cancelledAt?: string;
  /** JetStream sequence of the message: with the consumer's floor it gives the queue position. */
  seq?: number;
  /** Messages ahead in the queue, while the message waits. */
  position?: number;
}

const NUMERIC = new Set(['userId', 'errorCode', 'attempts', 'seq']);

export function parseRecord(hash: Record<string, string>): ResultRecord | null {
  if (!hash.messageId || !hash.status) return null;
  const record: Record<string, string | number> = {};
  for (const [field, value] of Object.entries(hash))
    record[field] = NUMERIC.has(field) ? Number(value) : value;
  return record as unknown as ResultRecord;
}

/** Flattens a (partial) record for HSET, skipping absent fields. */
export function toFields(record: Partial<ResultRecord>): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [field, value] of Object.entries(record)) {
    if (value !== undefined && value !== null && field !== 'position') fields[field] = String(value);
  }
  return fields;
}

export function fromOrder(order: OrderView): ResultRecord {
  const at = new Date(order.createdAt).toISOString();
  return {
    messageId: claimOf(order),
    userId: order.userId,
    date: order.date,
    status: 'SUCCESS',
    ticketCode: order.ticketCode,
    orderNo: order.orderNo,
    attempts: 1,
    queuedAt: at,
    updatedAt: at,
    completedAt: at,
    ...(order.cancelledAt ? { cancelledAt: new Date(order.cancelledAt).toISOString() } : {}),
  };
}

export async function readCachedResult(redis: Redis, messageId: string): Promise<ResultRecord | null> {
  return parseRecord(await redis.hgetall(keys.result(messageId)));
}

export async function writeResult(
  redis: Redis,
  record: Partial<ResultRecord> & { messageId: string },
  ttlSeconds: number,
) {
  const key = keys.result(record.messageId);
  await redis.multi().hset(key, toFields(record)).expire(key, ttlSeconds).exec();
}

/** What a transition writes: result fields by name, absent ones skipped (ioredis sends numbers as text). */
export type ResultFields = Readonly<Partial<Record<keyof ResultRecord, string | number>>>;

interface Transition {
  key: string;
  status: string;
  fields: ResultFields;
  resolve(written: boolean): void;
  reject(err: unknown): void;
}

/**
 * Writes status transitions through RECORD, batched: what is recorded during one turn of the event
 * loop goes to Redis as one script call (a worker writes two transitions per message; one call for
 * many costs Redis and the client far less than one each). Resolves true when the transition was
 * written, false when RECORD refused it.
 */
export class ResultRecorder {
  private readonly pending = new TurnBuffer<Transition>((batch) => this.write(batch), 500);

  constructor(
    private readonly redis: Redis,
    private readonly ttlSeconds: number,
  ) {}

  record(messageId: string, status: PurchaseStatus, fields: ResultFields): Promise<boolean> {
    return new Promise((resolve, reject) =>
      this.pending.add({ key: keys.result(messageId), status, fields, resolve, reject }),
    );
  }

  private write(batch: Transition[]): void {
    // One array, filled in place (ioredis flattens it): a batch is thousands of values.
    const args: (string | number)[] = [batch.length];
    for (const t of batch) args.push(t.key);
    args.push(this.ttlSeconds);
    for (const t of batch) {
      const count = args.length + 1;
      args.push(t.status, 0);
      let pairs = 0;
      for (const field in t.fields) {
        const value = t.fields[field as keyof ResultRecord];
        if (value === undefined) continue;
        args.push(field, value);
        pairs++;
      }
      args[count] = pairs;
    }
    this.redis.record(args).then(
      (written) => batch.forEach((t, i) => t.resolve(written[i] === 1)),
      (err: unknown) => batch.forEach((t) => t.reject(err)),
    );
  }
}
