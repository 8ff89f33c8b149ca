/**
 * Redis key names, relative to the `NAMESPACE:` prefix the client adds. Lua scripts receive every
 * key they touch through KEYS so the prefix and a future cluster slotting stay correct.
 */
export const keys = {
  ready: 'ready',
  /** The run id of the Redis server the cache was last rebuilt on (see lib/tickets/cache.ts). */
  generation: 'generation',
  paused: 'paused',
  rebuildLock: 'rebuild-lock',
  stock: (date: string) => `day:${date}:stock`,
  claims: (date: string) => `day:${date}:claims`,
  pending: (date: string) => `day:${date}:pending`,
  result: (messageId: string) => `result:${messageId}`,
  userRate: (userId: number) => `rl:u:${userId}`,
  globalRate: 'rl:g',
};
