import pg from 'pg';
import type Redis from 'ioredis';
import { connect, type NatsConnection } from 'nats';
import type { Config } from '../../config';
import { natsOptions } from '../../lib/nats-options';
import { queueNames } from '../../lib/purchase/queue';
import { keys } from '../../lib/store/keys';
import { createRedis } from '../../lib/store/redis';

/** What the audit reads from: its own read-only connections and the readers they share. */

export interface Connections {
  db: pg.Client;
  redis: Redis;
  raw: Redis;
  nc: NatsConnection | null;
  natsError: string | null;
}

export interface OrderRow {
  orderNo: string;
  messageId: string | null;
  /** As text: a bigint column. */
  userId: string;
  date: string;
  status: string;
}

export interface CachedResult {
  messageId: string;
  status: string;
  userId: string | undefined;
  date: string | undefined;
  orderNo: string | undefined;
  updatedAt: string | undefined;
  cancelledAt: string | undefined;
}

export const CHUNK = 2000;

export async function open(config: Config): Promise<Connections> {
  const db = new pg.Client({
    connectionString: config.databaseUrl,
    application_name: 'miaosha-audit',
    connectionTimeoutMillis: 5000,
    statement_timeout: 60_000,
  });
  const redis = createRedis(config, config.namespace, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  const raw = redis.duplicate({ keyPrefix: '' });
  raw.on('error', () => undefined);
  try {
    await db.connect();
    await redis.connect();
    await raw.connect();
  } catch (err) {
    await db.end().catch(() => undefined);
    redis.disconnect();
    raw.disconnect();
    throw err;
  }
  let nc: NatsConnection | null = null;
  let natsError: string | null = null;
  try {
    nc = await connect({
      ...natsOptions(config),
      name: 'miaosha-audit',
      timeout: 5000,
      maxReconnectAttempts: 0,
    });
  } catch (err) {
    natsError = err instanceof Error ? err.message : String(err);
  }
  return { db, redis, raw, nc, natsError };
}

export async function close(c: Connections): Promise<void> {
  await c.db.end().catch(() => undefined);
  c.redis.disconnect();
  c.raw.disconnect();
  await c.nc?.close().catch(() => undefined);
}

/** Every key of the namespace matching `pattern` (relative to the prefix), without the prefix. */
async function scanKeys(raw: Redis, namespace: string, pattern: string): Promise<string[]> {
  const prefix = `${namespace}:`;
  const found = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = await raw.scan(cursor, 'MATCH', prefix + pattern, 'COUNT', 1000);
    cursor = next;
    for (const key of batch) found.add(key.slice(prefix.length));
  } while (cursor !== '0');
  return [...found];
}

export async function cachedResults(c: Connections, namespace: string): Promise<CachedResult[]> {
  const names = await scanKeys(c.raw, namespace, `${keys.result('')}*`);
  const out: CachedResult[] = [];
  for (let i = 0; i < names.length; i += CHUNK) {
    const slice = names.slice(i, i + CHUNK);
    const answers = await c.redis.pipeline(slice.map((key) => ['hgetall', key])).exec();
    slice.forEach((key, j) => {
      const hash = (answers?.[j]?.[1] ?? {}) as Record<string, string>;
      // A key that expired between SCAN and HGETALL is simply gone.
      if (Object.keys(hash).length === 0) return;
      out.push({
        messageId: hash.messageId ?? key.slice(keys.result('').length),
        status: hash.status ?? '(none)',
        userId: hash.userId,
        date: hash.date,
        orderNo: hash.orderNo,
        updatedAt: hash.updatedAt,
        cancelledAt: hash.cancelledAt,
      });
    });
  }
  return out;
}

export async function queueFigures(
  c: Connections,
  namespace: string,
): Promise<{
  backlog: number | null;
  waiting: number | null;
  unacked: number | null;
  deadLetters: number | null;
  error: string | null;
}> {
  if (!c.nc) return { backlog: null, waiting: null, unacked: null, deadLetters: null, error: c.natsError };
  const names = queueNames(namespace);
  try {
    const jsm = await c.nc.jetstreamManager({ timeout: 5000 });
    let backlog: number | null = null;
    let waiting: number | null = null;
    let unacked: number | null = null;
    let deadLetters: number | null = null;
    let error: string | null = null;
    try {
      const info = await jsm.consumers.info(names.stream, names.consumer);
      waiting = info.num_pending;
      unacked = info.num_ack_pending;
      backlog = waiting + unacked;
    } catch (err) {
      error = `consumer ${names.consumer}: ${err instanceof Error ? err.message : String(err)}`;
    }
    try {
      deadLetters = (await jsm.streams.info(names.dlqStream)).state.messages;
    } catch (err) {
      error ??= `stream ${names.dlqStream}: ${err instanceof Error ? err.message : String(err)}`;
    }
    return { backlog, waiting, unacked, deadLetters, error };
  } catch (err) {
    return {
      backlog: null,
      waiting: null,
      unacked: null,
      deadLetters: null,
      error: err instanceof Error ? err.message : String(err),
    };
  }
}
