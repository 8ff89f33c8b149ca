import type Redis from 'ioredis';
import type { Config } from '../../config';
import type { PurchaseKey } from '../../machines/purchase.machine';
import { appError, type AppError } from '../errors';
import { keys, outboxEntry } from '../store/keys';

/**
 * The Redis reservation store: a ticket reserved at admission (ADMIT), and the reservation ended when
 * the order is made or refused (SETTLE), or adopted by an order the cache lost (ADOPT).
 */

export type Admission =
  | { outcome: 'OK'; /** NaN when unknown (an admission sent twice) */ remaining: number }
  | { outcome: 'EXISTS'; claim: string }
  | { outcome: 'SOLD_OUT' | 'PAUSED' | 'RATE_LIMITED' | 'NOT_READY' };

export interface ReserveOptions {
  /** > 0: the PENDING result record is written in the same step, with this TTL. */
  resultTtlSeconds: number;
  /** The process that finishes this admission (see purchase/outbox.ts). */
  admitter: string;
  now?: Date;
  /** False for an operator's resend: the user's and global limits do not apply. */
  rateLimited?: boolean;
}

/**
 * One Redis round trip: pause, rate limits, the user's claim for the day, a reserved ticket and the
 * admission's outbox entry; with `resultTtlSeconds` > 0 the PENDING result record too.
 */
export async function reserve(
  redis: Redis,
  config: Pick<Config, 'rateLimit'>,
  req: { userId: number; date: string },
  messageId: string,
  options: ReserveOptions,
): Promise<Admission> {
  const [outcome, value] = await redis.admit(...admitArgs(config, req, messageId, options));
  return admissionOf(outcome, value, messageId);
}

/** ADMIT's keys and arguments for one admission (store/scripts.ts), in the script's order. */
function admitArgs(
  config: Pick<Config, 'rateLimit'>,
  { userId, date }: { userId: number; date: string },
  messageId: string,
  { resultTtlSeconds, admitter, now = new Date(), rateLimited = true }: ReserveOptions,
): (string | number)[] {
  const rl = rateLimited
    ? config.rateLimit
    : { userMax: 0, userWindowMs: 1, globalMax: 0, globalWindowMs: 1 };
  return [
    keys.ready,
    keys.paused,
    keys.userRate(userId),
    keys.globalRate,
    keys.stock(date),
    keys.claims(date),
    keys.pending(date),
    keys.result(messageId),
    keys.outbox,
    userId,
    messageId,
    rl.userMax,
    rl.userWindowMs,
    rl.globalMax,
    rl.globalWindowMs,
    resultTtlSeconds,
    date,
    now.toISOString(),
    now.getTime(),
    outboxEntry({ date, messageId, admitter }),
  ];
}

/** ADMIT's answer for the admission of `messageId`. */
export function admissionOf(outcome: string, value: string, messageId: string): Admission {
  if (outcome === 'OK') return { outcome, remaining: Number(value) };
  // The claim names this very admission: the client sent ADMIT again after a dropped connection
  // (ioredis re-sends what was in flight), and the first run did everything.
  if (outcome === 'EXISTS' && value === messageId) return { outcome: 'OK', remaining: NaN };
  if (outcome === 'EXISTS') return { outcome, claim: value };
  return { outcome: outcome as 'SOLD_OUT' | 'PAUSED' | 'RATE_LIMITED' | 'NOT_READY' };
}

/** Turns a refusal into its SPEC error. */
export function refusal(admission: Exclude<Admission, { outcome: 'OK' }>): AppError {
  switch (admission.outcome) {
    case 'SOLD_OUT':
      return appError('SOLD_OUT');
    case 'PAUSED':
      return appError('PAUSED');
    case 'RATE_LIMITED':
      return appError('RATE_LIMITED');
    case 'NOT_READY':
      return appError('UNAVAILABLE', 'The sale cache is being rebuilt, try again shortly');
    case 'EXISTS':
      return appError('ALREADY_PURCHASED');
  }
}

export type ClaimMode = 'keep' | 'drop' | 'set';

/** Ends a reservation (see SETTLE in store/scripts.ts). */
export async function settle(
  redis: Redis,
  req: { userId: number; date: string },
  messageId: string,
  giveBack: boolean,
  claim: ClaimMode,
  claimValue = '',
): Promise<boolean> {
  const [done] = await settleMany(redis, req.date, [
    { userId: req.userId, messageId, giveBack, claim, claimValue },
  ]);
  return done;
}

export interface Settlement extends Pick<PurchaseKey, 'userId' | 'messageId'> {
  giveBack: boolean;
  claim: ClaimMode;
  claimValue?: string;
}

/** Ends several reservations of one sale day in one Redis call; true for each that was pending. */
export async function settleMany(redis: Redis, date: string, items: Settlement[]): Promise<boolean[]> {
  if (items.length === 0) return [];
  // One array (ioredis flattens it): a batch's values are not spread into the call.
  const args: (string | number)[] = [keys.stock(date), keys.claims(date), keys.pending(date)];
  for (const i of items) args.push(i.userId, i.messageId, i.giveBack ? 1 : 0, i.claim, i.claimValue ?? '');
  const done = await redis.settle(args);
  return done.map((d) => d === 1);
}

/** Counts a just-inserted order whose reservation the cache lost (see ADOPT in store/scripts.ts). */
export async function adoptOrder(
  redis: Redis,
  req: { userId: number; date: string },
  messageId: string,
): Promise<boolean> {
  const done = await redis.adopt(
    keys.stock(req.date),
    keys.claims(req.date),
    keys.pending(req.date),
    req.userId,
    messageId,
  );
  return done === 1;
}
