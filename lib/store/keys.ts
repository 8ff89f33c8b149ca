/**
 * Redis key names, relative to the `NAMESPACE:` prefix the client adds. Lua scripts receive every
 * key they touch through KEYS so the prefix and a future cluster slotting stay correct.
 */
export const keys = {
  ready: 'ready',
  /** The run id of the Redis server the cache was last rebuilt on (see lib/purchase/cache.ts). */
  generation: 'generation',
  paused: 'paused',
  rebuildLock: 'rebuild-lock',
  /** Sorted set of admissions not yet on the queue (V2) or not yet committed (V1), by admission time. */
  outbox: 'outbox',
  outboxLock: 'outbox-lock',
  /** Present while the process that owns outbox entries lives (its heartbeat). */
  admitter: (id: string) => `admitter:${id}`,
  stock: (date: string) => `day:${date}:stock`,
  claims: (date: string) => `day:${date}:claims`,
  pending: (date: string) => `day:${date}:pending`,
  result: (messageId: string) => `result:${messageId}`,
  userRate: (userId: number) => `rl:u:${userId}`,
  globalRate: 'rl:g',
};

/**
 * Claim values: a V2 message id, or for a synchronous purchase `v1:<orderNo>` once its order is made
 * and its reservation id `v1-<uuid>` while it is in flight (never a V2 message id to hand out).
 */
export const v1Claim = (orderNo: string) => `v1:${orderNo}`;
export const isV1Claim = (claim: string) => claim.startsWith('v1:') || claim.startsWith('v1-');
/** The claim a committed order holds: its message id (V2) or its V1 claim. */
export const claimOf = (order: { messageId: string | null; orderNo: string }) =>
  order.messageId ?? v1Claim(order.orderNo);

/** One admission in the outbox: its sale day, its message (or V1 reservation) id, and its admitter. */
export interface OutboxEntry {
  date: string;
  messageId: string;
  admitter: string;
}

export const outboxEntry = ({ date, messageId, admitter }: OutboxEntry): string =>
  `${date}/${messageId}/${admitter}`;

export function parseOutboxEntry(entry: string): OutboxEntry | undefined {
  const [date, messageId, admitter, ...rest] = entry.split('/');
  if (!date || !messageId || !admitter || rest.length) return undefined;
  return { date, messageId, admitter };
}
