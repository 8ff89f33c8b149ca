import Redis, { type RedisOptions, type Result } from 'ioredis';
import { ADMIT, RESTOCK, SETTLE } from './scripts';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    admit(...args: (string | number)[]): Result<[string, string], Context>;
    settle(...args: (string | number)[]): Result<number, Context>;
    restock(...args: (string | number)[]): Result<number, Context>;
  }
}

/**
 * One client per process and namespace. Auto-pipelining batches the many concurrent commands of a
 * crowd into few writes; scripts run by EVALSHA after their first load.
 */
export function createRedis(url: string, namespace: string, extra: RedisOptions = {}): Redis {
  const redis = new Redis(url, {
    keyPrefix: `${namespace}:`,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    connectTimeout: 5000,
    retryStrategy: (times) => Math.min(times * 100, 2000),
    ...extra,
  });
  redis.defineCommand('admit', { numberOfKeys: 8, lua: ADMIT });
  redis.defineCommand('settle', { numberOfKeys: 3, lua: SETTLE });
  redis.defineCommand('restock', { numberOfKeys: 2, lua: RESTOCK });
  return redis;
}

/** Deletes every key of a namespace (tests, benchmarks). */
export async function deleteNamespace(redis: Redis, namespace: string): Promise<void> {
  const raw = redis.duplicate({ keyPrefix: '' });
  try {
    let cursor = '0';
    do {
      const [next, found] = await raw.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
      cursor = next;
      if (found.length) await raw.unlink(...found);
    } while (cursor !== '0');
  } finally {
    raw.disconnect();
  }
}
