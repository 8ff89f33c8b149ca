import Redis, { type RedisOptions, type Result } from 'ioredis';
import type { Config } from '../../config';
import {
  ADMIT,
  ADMIT_MANY,
  ADOPT,
  PUBLISHED,
  RECORD,
  RESTOCK,
  SETTLE,
  SHIFT_STOCK,
  TAKE_OVER,
} from './scripts';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    admit(...args: (string | number)[]): Result<[string, string], Context>;
    /** Arguments as one array: a batch's thousands of values are not spread into a call. */
    admitMany(args: (string | number)[]): Result<string[], Context>;
    published(args: (string | number)[]): Result<number, Context>;
    settle(...args: (string | number)[]): Result<number[], Context>;
    settle(args: (string | number)[]): Result<number[], Context>;
    restock(...args: (string | number)[]): Result<number, Context>;
    shiftStock(ready: string, stock: string, delta: number): Result<number, Context>;
    adopt(...args: (string | number)[]): Result<number, Context>;
    record(...args: (string | number)[]): Result<number[], Context>;
    record(args: (string | number)[]): Result<number[], Context>;
    takeOver(...args: (string | number)[]): Result<number, Context>;
  }
}

export type RedisTarget = Pick<Config, 'redisUrl' | 'redisSentinels'>;

/**
 * One client per process and namespace. Auto-pipelining batches the many concurrent commands of a
 * crowd into few writes; scripts run by EVALSHA after their first load. With sentinels, the client
 * asks them for the current primary (the URL still gives the password and database) and reconnects
 * as soon as they announce a failover (`+switch-master`).
 */
export function createRedis(target: RedisTarget, namespace: string, extra: RedisOptions = {}): Redis {
  const sentinels = target.redisSentinels;
  const redis = new Redis(target.redisUrl, {
    ...(sentinels && { sentinels: sentinels.hosts, name: sentinels.name, failoverDetector: true }),
    keyPrefix: `${namespace}:`,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    connectTimeout: 5000,
    retryStrategy: (times) => Math.min(times * 100, 2000),
    ...extra,
  });
  redis.defineCommand('admit', { numberOfKeys: 9, lua: ADMIT });
  redis.defineCommand('admitMany', { lua: ADMIT_MANY }); // KEYS count first: 4 + 5 per admission
  redis.defineCommand('published', { lua: PUBLISHED }); // KEYS count first: 1 + one per entry
  redis.defineCommand('settle', { numberOfKeys: 3, lua: SETTLE });
  redis.defineCommand('restock', { numberOfKeys: 2, lua: RESTOCK });
  redis.defineCommand('shiftStock', { numberOfKeys: 2, lua: SHIFT_STOCK });
  redis.defineCommand('adopt', { numberOfKeys: 3, lua: ADOPT });
  redis.defineCommand('record', { lua: RECORD }); // KEYS count first: the transitions batched
  redis.defineCommand('takeOver', { numberOfKeys: 2, lua: TAKE_OVER });
  return redis;
}

/**
 * Deletes every key of a namespace but `keep` (names relative to the namespace). The keys go in one
 * transaction, as with a FLUSHALL or a restart: a node watching the `ready` key must not rebuild
 * while half of the namespace is still being deleted (its rebuilt keys would be deleted behind it).
 */
export async function deleteNamespace(redis: Redis, namespace: string, keep: string[] = []): Promise<void> {
  const kept = new Set(keep.map((key) => `${namespace}:${key}`));
  const raw = redis.duplicate({ keyPrefix: '' });
  try {
    const found = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await raw.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
      cursor = next;
      for (const key of batch) if (!kept.has(key)) found.add(key);
    } while (cursor !== '0');
    const all = [...found];
    if (all.length === 0) return;
    const tx = raw.multi();
    for (let i = 0; i < all.length; i += 1000) tx.unlink(...all.slice(i, i + 1000));
    await tx.exec();
  } finally {
    raw.disconnect();
  }
}
