import type Redis from 'ioredis';
import type { PurchaseStatus } from '../../machines/purchase.machine';
import { keys } from '../store/keys';
import type { OrderView } from '../tickets/orders';

/** The result record of SPEC §3, as stored in the Redis hash `result:<messageId>`. */
export interface ResultRecord {
  messageId: string;
  userId: number;
  date: string;
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
    messageId: order.messageId ?? `v1:${order.orderNo}`,
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
