import type Redis from 'ioredis';
import type { Config } from '../../config';
import { appError } from '../errors';
import { refusal, reserve } from './reservations';
import type { PurchaseQueue } from './queue';
import { keys, outboxEntry } from '../store/keys';

/**
 * Sends a dead-lettered message through the queue (and the machine) again: its reservation is
 * taken anew, the publish is de-duplicated per dead letter, and the letter leaves the DLQ.
 */
export async function resendDeadLetter(
  queue: PurchaseQueue,
  redis: Redis,
  config: Config,
  admitter: string,
  messageId: string,
) {
  const letter = await queue.findDeadLetter(messageId);
  if (!letter || letter.userId === 0) throw appError('NOT_FOUND', 'No dead letter with this message id');
  const admission = await reserve(redis, config, letter, messageId, {
    resultTtlSeconds: config.resultTtlSeconds,
    admitter,
    rateLimited: false,
  });
  if (admission.outcome !== 'OK') {
    throw refusal(admission);
  }
  // The record is PENDING again: the failed run's error and completion no longer apply.
  await redis.hdel(keys.result(messageId), 'errorCode', 'errorMessage', 'completedAt');
  const ack = await queue.publish(
    { messageId, userId: letter.userId, date: letter.date, queuedAt: new Date().toISOString() },
    `${messageId}:resend:${letter.seq}`,
  );
  await redis
    .multi()
    .hset(keys.result(messageId), 'seq', ack.seq)
    .zrem(keys.outbox, outboxEntry({ date: letter.date, messageId, admitter }))
    .exec();
  await queue.removeDeadLetter(letter.seq);
  return { messageId, status: 'PENDING' as const, seq: ack.seq };
}
