import type Redis from 'ioredis';
import { loadConfig } from '../../config';
import { AdmissionBatch } from '../../lib/purchase/admit-batch';
import { OutboxAcks } from '../../lib/purchase/outbox';
import { ResultRecorder } from '../../lib/purchase/results';
import { keys, outboxEntry } from '../../lib/store/keys';
import { createRedis, deleteNamespace } from '../../lib/store/redis';
import { eventually, uniqueNamespace } from '../helpers/app';

/** The contracts of lib/store/scripts.ts, run on the real Redis under a namespace of their own. */

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DATE = '2025-03-01';
const NOW = '2025-03-01T10:00:00.000Z';

interface AdmitArgs {
  userId: number;
  messageId: string;
  userMax?: number;
  userWindowMs?: number;
  globalMax?: number;
  globalWindowMs?: number;
  resultTtl?: number;
}

describe('Lua scripts', () => {
  const namespace = uniqueNamespace('lua');
  let redis: Redis;

  /** ADMIT's keys and values for one admission, in the script's order. */
  const admitCall = (a: AdmitArgs): (string | number)[] => [
    keys.ready,
    keys.paused,
    keys.userRate(a.userId),
    keys.globalRate,
    keys.stock(DATE),
    keys.claims(DATE),
    keys.pending(DATE),
    keys.result(a.messageId),
    keys.outbox,
    a.userId,
    a.messageId,
    a.userMax ?? 0,
    a.userWindowMs ?? 1000,
    a.globalMax ?? 0,
    a.globalWindowMs ?? 1000,
    a.resultTtl ?? 0,
    DATE,
    NOW,
    Date.parse(NOW),
    outboxEntry({ date: DATE, messageId: a.messageId, admitter: 'test' }),
  ];

  const admit = (a: AdmitArgs) => redis.admit(...admitCall(a));

  const settle = async (userId: number, messageId: string, delta: 0 | 1, mode: string, value = '') =>
    (
      await redis.settle(
        keys.stock(DATE),
        keys.claims(DATE),
        keys.pending(DATE),
        userId,
        messageId,
        delta,
        mode,
        value,
      )
    )[0];

  const restock = (remaining: number) => redis.restock(keys.stock(DATE), keys.pending(DATE), remaining);
  const stock = async () => redis.get(keys.stock(DATE));

  /** Ready, not paused, `n` tickets. */
  const open = async (n: number) => {
    await redis.set(keys.ready, NOW);
    await redis.set(keys.stock(DATE), n);
  };

  beforeAll(() => {
    redis = createRedis({ redisUrl: REDIS_URL, redisSentinels: null }, namespace);
  });
  beforeEach(async () => {
    await deleteNamespace(redis, namespace);
  });
  afterAll(async () => {
    await deleteNamespace(redis, namespace).catch(() => undefined);
    redis.disconnect();
  });

  describe('ADMIT', () => {
    it('answers NOT_READY without the ready key, even with stock', async () => {
      await redis.set(keys.stock(DATE), 5);
      expect(await admit({ userId: 1, messageId: 'm1' })).toEqual(['NOT_READY', '']);
      expect(await stock()).toBe('5');
      expect(await redis.exists(keys.claims(DATE), keys.pending(DATE))).toBe(0);
    });

    it('answers NOT_READY when the day has no stock key', async () => {
      await redis.set(keys.ready, NOW);
      expect(await admit({ userId: 1, messageId: 'm1' })).toEqual(['NOT_READY', '']);
      expect(await redis.exists(keys.stock(DATE), keys.claims(DATE), keys.pending(DATE))).toBe(0);
    });

    it('answers PAUSED while the pause key exists, and admits after it is removed', async () => {
      await open(5);
      await redis.set(keys.paused, NOW);
      expect(await admit({ userId: 1, messageId: 'm1' })).toEqual(['PAUSED', '']);
      expect(await stock()).toBe('5');
      await redis.del(keys.paused);
      expect(await admit({ userId: 1, messageId: 'm1' })).toEqual(['OK', '4']);
    });

    it('admits, decrements and writes the claim, the pending entry and the PENDING result with its TTL', async () => {
      await open(3);
      expect(await admit({ userId: 7, messageId: 'msg-7', resultTtl: 600 })).toEqual(['OK', '2']);
      expect(await stock()).toBe('2');
      expect(await redis.hgetall(keys.claims(DATE))).toEqual({ '7': 'msg-7' });
      expect(await redis.hgetall(keys.pending(DATE))).toEqual({ 'msg-7': '7' });
      expect(await redis.hgetall(keys.result('msg-7'))).toEqual({
        messageId: 'msg-7',
        userId: '7',
        date: DATE,
        status: 'PENDING',
        attempts: '0',
        queuedAt: NOW,
        updatedAt: NOW,
      });
      const ttl = await redis.ttl(keys.result('msg-7'));
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(600);
      // The admission waits in the outbox, by its time, until the queue acknowledges it.
      expect(await redis.zrange(keys.outbox, 0, -1, 'WITHSCORES')).toEqual([
        outboxEntry({ date: DATE, messageId: 'msg-7', admitter: 'test' }),
        String(Date.parse(NOW)),
      ]);
    });

    it('writes no result record when resultTtl is 0', async () => {
      await open(3);
      expect(await admit({ userId: 7, messageId: 'v1-x', resultTtl: 0 })).toEqual(['OK', '2']);
      expect(await redis.exists(keys.result('v1-x'))).toBe(0);
      expect(await redis.hget(keys.claims(DATE), '7')).toBe('v1-x');
    });

    it('returns the existing claim for a user who already has one, without taking another ticket', async () => {
      await open(3);
      await admit({ userId: 7, messageId: 'first', resultTtl: 60 });
      expect(await admit({ userId: 7, messageId: 'second', resultTtl: 60 })).toEqual(['EXISTS', 'first']);
      expect(await stock()).toBe('2');
      expect(await redis.hgetall(keys.pending(DATE))).toEqual({ first: '7' });
      expect(await redis.exists(keys.result('second'))).toBe(0);
      expect(await redis.zcard(keys.outbox)).toBe(1);
      // A V1 claim is returned as it is.
      await redis.hset(keys.claims(DATE), '8', 'v1:O123');
      expect(await admit({ userId: 8, messageId: 'third' })).toEqual(['EXISTS', 'v1:O123']);
    });

    it('answers SOLD_OUT at 0 (and below) and writes nothing', async () => {
      await open(1);
      expect(await admit({ userId: 1, messageId: 'a' })).toEqual(['OK', '0']);
      expect(await admit({ userId: 2, messageId: 'b', resultTtl: 60 })).toEqual(['SOLD_OUT', '']);
      expect(await stock()).toBe('0');
      await redis.set(keys.stock(DATE), -3);
      expect(await admit({ userId: 3, messageId: 'c' })).toEqual(['SOLD_OUT', '']);
      expect(await stock()).toBe('-3');
      expect(Object.keys(await redis.hgetall(keys.claims(DATE)))).toEqual(['1']);
      expect(await redis.hlen(keys.pending(DATE))).toBe(1);
      expect(await redis.exists(keys.result('b'))).toBe(0);
      expect(await redis.zcard(keys.outbox)).toBe(1);
    });

    it('never admits more than the stock', async () => {
      await open(10);
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, i) => admit({ userId: 100 + i, messageId: `m${i}` })),
      );
      expect(answers.filter(([o]) => o === 'OK')).toHaveLength(10);
      expect(answers.filter(([o]) => o === 'SOLD_OUT')).toHaveLength(40);
      expect(await stock()).toBe('0');
      expect(await redis.hlen(keys.pending(DATE))).toBe(10);
    });

    it('limits each user to userMax calls per window, then lets them in again', async () => {
      await open(10);
      const limited = { userMax: 3, userWindowMs: 60_000 };
      expect((await admit({ userId: 5, messageId: 'a', ...limited }))[0]).toBe('OK');
      expect((await admit({ userId: 5, messageId: 'b', ...limited }))[0]).toBe('EXISTS');
      expect((await admit({ userId: 5, messageId: 'c', ...limited }))[0]).toBe('EXISTS');
      expect(await admit({ userId: 5, messageId: 'd', ...limited })).toEqual(['RATE_LIMITED', '']);
      // Another user has a counter of their own.
      expect((await admit({ userId: 6, messageId: 'e', ...limited }))[0]).toBe('OK');
      const pttl = await redis.pttl(keys.userRate(5));
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(60_000);
      expect(await stock()).toBe('8');

      // A short window: limited at once, admitted again once the window has passed.
      const short = { userMax: 1, userWindowMs: 300 };
      await open(10);
      expect((await admit({ userId: 9, messageId: 'f', ...short }))[0]).toBe('OK');
      expect((await admit({ userId: 9, messageId: 'g', ...short }))[0]).toBe('RATE_LIMITED');
      const again = await eventually(async () => {
        const [outcome, value] = await admit({ userId: 9, messageId: 'h', ...short });
        return outcome === 'RATE_LIMITED' ? undefined : [outcome, value];
      }, 10_000);
      expect(again).toEqual(['EXISTS', 'f']);
    });

    it('limits all users together to globalMax calls per window', async () => {
      await open(10);
      const limited = { globalMax: 3, globalWindowMs: 60_000 };
      const answers = [];
      for (let i = 0; i < 5; i++)
        answers.push((await admit({ userId: 20 + i, messageId: `g${i}`, ...limited }))[0]);
      expect(answers).toEqual(['OK', 'OK', 'OK', 'RATE_LIMITED', 'RATE_LIMITED']);
      expect(await stock()).toBe('7');
      const pttl = await redis.pttl(keys.globalRate);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(60_000);
      // Without a global limit the counter is not even touched.
      expect((await admit({ userId: 30, messageId: 'g9' }))[0]).toBe('OK');
      expect(await redis.get(keys.globalRate)).toBe('5');
    });

    it('keeps no rate counter when the limits are 0', async () => {
      await open(10);
      await admit({ userId: 40, messageId: 'z' });
      expect(await redis.exists(keys.userRate(40), keys.globalRate)).toBe(0);
    });
  });

  describe('ADMIT_MANY', () => {
    type Shared = Pick<AdmitArgs, 'userMax' | 'userWindowMs' | 'globalMax' | 'globalWindowMs' | 'resultTtl'>;
    /** The keys and values the batch shares once, then each admission's own. */
    const admitMany = (batch: AdmitArgs[], shared: Shared = {}) =>
      redis.admitMany([
        4 + 5 * batch.length,
        keys.ready,
        keys.paused,
        keys.globalRate,
        keys.outbox,
        ...batch.flatMap((a) => [
          keys.userRate(a.userId),
          keys.stock(DATE),
          keys.claims(DATE),
          keys.pending(DATE),
          keys.result(a.messageId),
        ]),
        shared.userMax ?? 0,
        shared.userWindowMs ?? 1000,
        shared.globalMax ?? 0,
        shared.globalWindowMs ?? 1000,
        shared.resultTtl ?? 0,
        Date.parse(NOW),
        ...batch.flatMap((a) => [
          a.userId,
          a.messageId,
          DATE,
          NOW,
          outboxEntry({ date: DATE, messageId: a.messageId, admitter: 'test' }),
        ]),
      ]);

    it('decides each admission of a batch in order, as ADMIT one after the other would', async () => {
      await open(2);
      const shared = { resultTtl: 60, userMax: 2, userWindowMs: 60_000 };
      const batch = [
        { userId: 1, messageId: 'a' },
        { userId: 1, messageId: 'b' }, // the same user again: finds the claim just made
        { userId: 2, messageId: 'c' },
        { userId: 3, messageId: 'd' }, // the last ticket went to c
        { userId: 4, messageId: 'e' },
        { userId: 1, messageId: 'f' }, // the user's third request in the window: over the shared limit
      ];
      const answers = await admitMany(batch, shared);
      expect(answers).toEqual([
        'OK',
        '1',
        'EXISTS',
        'a',
        'OK',
        '0',
        'SOLD_OUT',
        '',
        'SOLD_OUT',
        '',
        'RATE_LIMITED',
        '',
      ]);
      expect(await redis.hgetall(keys.claims(DATE))).toEqual({ 1: 'a', 2: 'c' });
      expect(await redis.hgetall(keys.pending(DATE))).toEqual({ a: '1', c: '2' });
      expect(await redis.hgetall(keys.result('c'))).toMatchObject({
        status: 'PENDING',
        userId: '2',
        date: DATE,
        queuedAt: NOW,
      });
      expect(await redis.exists(keys.result('b'), keys.result('d'))).toBe(0);
      expect(await redis.zrange(keys.outbox, 0, -1, 'WITHSCORES')).toEqual([
        outboxEntry({ date: DATE, messageId: 'a', admitter: 'test' }),
        String(Date.parse(NOW)),
        outboxEntry({ date: DATE, messageId: 'c', admitter: 'test' }),
        String(Date.parse(NOW)),
      ]);
      expect(await redis.get(keys.userRate(4))).toBe('1');

      // The same admissions alone, on a fresh namespace, answer the same.
      await deleteNamespace(redis, namespace);
      await open(2);
      const alone = [];
      for (const a of batch) alone.push(...(await admit({ ...a, ...shared })));
      expect(alone).toEqual(answers);
    });

    it('answers NOT_READY and PAUSED for every admission of the batch', async () => {
      expect(
        await admitMany([
          { userId: 1, messageId: 'a' },
          { userId: 2, messageId: 'b' },
        ]),
      ).toEqual(['NOT_READY', '', 'NOT_READY', '']);
      await open(5);
      await redis.set(keys.paused, NOW);
      expect(await admitMany([{ userId: 1, messageId: 'a' }])).toEqual(['PAUSED', '']);
      expect(await stock()).toBe('5');
    });

    it('AdmissionBatch sends the admissions of one turn as one call, each answered as reserve answers', async () => {
      await open(2);
      const config = loadConfig({ ...process.env, RATE_LIMIT_USER_MAX: '0', RATE_LIMIT_GLOBAL_MAX: '0' });
      const batch = new AdmissionBatch(redis, { ...config, resultTtlSeconds: 60, admitter: 'test' });
      const calls = jest.spyOn(redis, 'admitMany');
      const now = new Date(NOW);
      const answers = await Promise.all([
        batch.reserve({ userId: 1, date: DATE }, 'a', now),
        batch.reserve({ userId: 1, date: DATE }, 'b', now),
        batch.reserve({ userId: 2, date: DATE }, 'c', now),
        batch.reserve({ userId: 3, date: DATE }, 'd', now),
      ]);
      expect(calls.mock.contexts.filter((self) => self === redis)).toHaveLength(1);
      calls.mockRestore();
      expect(answers).toEqual([
        { outcome: 'OK', remaining: 1 },
        { outcome: 'EXISTS', claim: 'a' },
        { outcome: 'OK', remaining: 0 },
        { outcome: 'SOLD_OUT' },
      ]);
      // An admission sent again (a dropped connection) finds its own claim: admitted.
      await expect(batch.reserve({ userId: 1, date: DATE }, 'a', now)).resolves.toEqual({
        outcome: 'OK',
        remaining: NaN,
      });
    });
  });

  describe('SETTLE', () => {
    it('gives the ticket back and drops the claim once; a second call returns 0 and changes nothing', async () => {
      await open(5);
      await admit({ userId: 1, messageId: 'm1' });
      expect(await stock()).toBe('4');
      expect(await settle(1, 'm1', 1, 'drop')).toBe(1);
      expect(await stock()).toBe('5');
      expect(await redis.hexists(keys.claims(DATE), '1')).toBe(0);
      expect(await redis.hexists(keys.pending(DATE), 'm1')).toBe(0);
      expect(await settle(1, 'm1', 1, 'drop')).toBe(0);
      expect(await stock()).toBe('5');
    });

    it('returns 0 for a message that was never pending', async () => {
      await open(5);
      await redis.hset(keys.claims(DATE), '1', 'other');
      expect(await settle(1, 'ghost', 1, 'set', 'x')).toBe(0);
      expect(await stock()).toBe('5');
      expect(await redis.hget(keys.claims(DATE), '1')).toBe('other');
    });

    it('keeps the claim and the ticket on success with "keep"', async () => {
      await open(5);
      await admit({ userId: 1, messageId: 'm1' });
      expect(await settle(1, 'm1', 0, 'keep')).toBe(1);
      expect(await stock()).toBe('4');
      expect(await redis.hget(keys.claims(DATE), '1')).toBe('m1');
      expect(await redis.hlen(keys.pending(DATE))).toBe(0);
    });

    it('replaces the claim with "set"', async () => {
      await open(5);
      await admit({ userId: 1, messageId: 'v1-abc' });
      expect(await settle(1, 'v1-abc', 0, 'set', 'v1:O42')).toBe(1);
      expect(await redis.hget(keys.claims(DATE), '1')).toBe('v1:O42');
      expect(await stock()).toBe('4');
    });

    it('drops the claim only when it belongs to this message', async () => {
      await open(5);
      await admit({ userId: 1, messageId: 'm1' });
      // Meanwhile the user's claim became another order's (e.g. rebuilt from the database).
      await redis.hset(keys.claims(DATE), '1', 'v1:O7');
      expect(await settle(1, 'm1', 1, 'drop')).toBe(1);
      expect(await redis.hget(keys.claims(DATE), '1')).toBe('v1:O7');
      expect(await stock()).toBe('5');
    });

    it('does not recreate a lost stock key when giving back', async () => {
      await open(5);
      await admit({ userId: 1, messageId: 'm1' });
      await redis.del(keys.stock(DATE));
      expect(await settle(1, 'm1', 1, 'drop')).toBe(1);
      expect(await redis.exists(keys.stock(DATE))).toBe(0);
    });
  });

  describe('ADOPT', () => {
    const adopt = (userId: number, messageId: string) =>
      redis.adopt(keys.stock(DATE), keys.claims(DATE), keys.pending(DATE), userId, messageId);

    it('counts an order whose reservation the cache lost: one ticket, and the claim', async () => {
      await open(5);
      expect(await adopt(1, 'm1')).toBe(1);
      expect(await stock()).toBe('4');
      expect(await redis.hget(keys.claims(DATE), '1')).toBe('m1');
    });

    it('leaves a pending reservation to settle', async () => {
      await open(5);
      await admit({ userId: 1, messageId: 'm1' });
      expect(await adopt(1, 'm1')).toBe(0);
      expect(await stock()).toBe('4');
    });

    it('does not count twice an order settled once already (its settle sent again after a lost answer)', async () => {
      await open(5);
      await admit({ userId: 1, messageId: 'm1' });
      expect(await settle(1, 'm1', 0, 'keep')).toBe(1);
      expect(await settle(1, 'm1', 0, 'keep')).toBe(0); // the resend: nothing pending any more
      expect(await adopt(1, 'm1')).toBe(0);
      expect(await stock()).toBe('4');
    });
  });

  describe('SHIFT_STOCK', () => {
    const shift = (delta: number) => redis.shiftStock(keys.ready, keys.stock(DATE), delta);

    it('moves a live stock by the delta, never below 0, beside the reservations in flight', async () => {
      await open(3);
      await admit({ userId: 1, messageId: 'a' });
      expect(await shift(1)).toBe(3);
      expect(await stock()).toBe('3');
      expect(await shift(-5)).toBe(0);
      expect(await stock()).toBe('0');
    });

    it('leaves the stock to a rebuild while the cache is not ready, and a missing day to restock', async () => {
      await redis.set(keys.stock(DATE), 4);
      expect(await shift(1)).toBe(-1);
      expect(await stock()).toBe('4');
      await redis.set(keys.ready, NOW);
      await redis.del(keys.stock(DATE));
      expect(await shift(1)).toBe(-2);
      expect(await redis.exists(keys.stock(DATE))).toBe(0);
    });
  });

  describe('RESTOCK', () => {
    it('sets the stock to the database remaining minus the pending reservations', async () => {
      await open(10);
      await admit({ userId: 1, messageId: 'a' });
      await admit({ userId: 2, messageId: 'b' });
      await admit({ userId: 3, messageId: 'c' });
      expect(await restock(10)).toBe(7);
      expect(await stock()).toBe('7');
    });

    it('never goes below 0', async () => {
      await open(10);
      await admit({ userId: 1, messageId: 'a' });
      await admit({ userId: 2, messageId: 'b' });
      expect(await restock(1)).toBe(0);
      expect(await stock()).toBe('0');
      expect(await restock(0)).toBe(0);
    });

    it('does not take off twice a pending reservation whose order is already committed', async () => {
      await open(10);
      await admit({ userId: 1, messageId: 'a' });
      await admit({ userId: 2, messageId: 'b' });
      await admit({ userId: 3, messageId: 'c' });
      // 'b' is committed: the database's remaining (9) already lacks its ticket. 'gone' is not pending.
      expect(await redis.restock(keys.stock(DATE), keys.pending(DATE), 9, 'b', 'gone')).toBe(7);
      expect(await stock()).toBe('7');
    });

    it('creates the stock key when it is missing and nothing is pending', async () => {
      expect(await restock(12)).toBe(12);
      expect(await stock()).toBe('12');
    });
  });

  it('SETTLE settles several items in one call, each on its own', async () => {
    await open(5);
    await admit({ userId: 1, messageId: 'a' });
    await admit({ userId: 2, messageId: 'b' });
    const results = await redis.settle(
      keys.stock(DATE),
      keys.claims(DATE),
      keys.pending(DATE),
      ...[1, 'a', 0, 'keep', ''],
      ...[2, 'b', 1, 'drop', ''],
      ...[3, 'never-admitted', 1, 'drop', ''],
    );
    expect(results).toEqual([1, 1, 0]);
    expect(await stock()).toBe('4');
    expect(await redis.hgetall(keys.claims(DATE))).toEqual({ 1: 'a' });
    expect(await redis.hlen(keys.pending(DATE))).toBe(0);
  });

  describe('RECORD', () => {
    const key = keys.result('rec1');
    const transition = (status: string, fields: Record<string, string> = {}) => {
      const pairs = Object.entries({ status, ...fields }).flat();
      return [status, pairs.length / 2, ...pairs];
    };
    const record = async (status: string, fields: Record<string, string> = {}) =>
      (await redis.record(1, key, 60, ...transition(status, fields)))[0];
    const status = () => redis.hget(key, 'status');

    it('writes a transition into the existing record, with the TTL', async () => {
      await redis.hset(key, { messageId: 'rec1', status: 'PENDING', attempts: '0' });
      expect(await record('PROCESSING', { attempts: '1' })).toBe(1);
      expect(await redis.hgetall(key)).toEqual({ messageId: 'rec1', status: 'PROCESSING', attempts: '1' });
      expect(await redis.ttl(key)).toBeGreaterThan(0);
    });

    it('skips a non-terminal transition when the record is gone, and rewrites it whole when terminal', async () => {
      expect(await record('PROCESSING', { attempts: '1' })).toBe(0);
      expect(await redis.exists(key)).toBe(0);
      expect(await record('SUCCESS', { messageId: 'rec1', ticketCode: 'T9' })).toBe(1);
      expect(await redis.hgetall(key)).toEqual({ status: 'SUCCESS', messageId: 'rec1', ticketCode: 'T9' });
    });

    it('never steps back from a terminal status', async () => {
      await record('SUCCESS', { ticketCode: 'T1' });
      expect(await record('PROCESSING')).toBe(0);
      expect(await record('FAILED', { errorCode: '5000' })).toBe(0);
      expect(await status()).toBe('SUCCESS');
      expect(await redis.hget(key, 'errorCode')).toBeNull();
      await redis.del(key);
      await record('FAILED', { errorCode: '6002' });
      expect(await record('RETRYING')).toBe(0);
      expect(await status()).toBe('FAILED');
    });

    it('applies several transitions in one call, in order, each with its own answer', async () => {
      const other = keys.result('rec2');
      await redis.hset(key, { messageId: 'rec1', status: 'PENDING' });
      const written = await redis.record(
        3,
        key,
        other,
        key,
        60,
        ...transition('PROCESSING', { attempts: '1' }),
        ...transition('RETRYING'), // rec2 has no record: skipped
        ...transition('SUCCESS', { ticketCode: 'T3' }),
      );
      expect(written).toEqual([1, 0, 1]);
      expect(await redis.hgetall(key)).toEqual({
        messageId: 'rec1',
        status: 'SUCCESS',
        attempts: '1',
        ticketCode: 'T3',
      });
      expect(await redis.exists(other)).toBe(0);
    });

    it('ResultRecorder sends what is recorded in one turn as one call, in order', async () => {
      const recorder = new ResultRecorder(redis, 60);
      const calls = jest.spyOn(redis, 'record');
      await redis.hset(key, { messageId: 'rec1', status: 'PENDING' });
      const answers = await Promise.all([
        recorder.record('rec1', 'PROCESSING', { status: 'PROCESSING', attempts: '1' }),
        recorder.record('rec9', 'PROCESSING', { status: 'PROCESSING', attempts: '1' }),
        recorder.record('rec1', 'SUCCESS', { status: 'SUCCESS', ticketCode: 'T4' }),
      ]);
      // Calls on the client itself (its auto-pipeline calls the same function once more).
      expect(calls.mock.contexts.filter((self) => self === redis)).toHaveLength(1);
      calls.mockRestore();
      expect(answers).toEqual([true, false, true]);
      expect(await redis.hgetall(key)).toMatchObject({ status: 'SUCCESS', attempts: '1', ticketCode: 'T4' });
    });

    it('lets a success replace a failure and clears its error', async () => {
      await record('FAILED', { errorCode: '5000', errorMessage: 'boom' });
      expect(await record('SUCCESS', { ticketCode: 'T2' })).toBe(1);
      expect(await redis.hgetall(key)).toMatchObject({ status: 'SUCCESS', ticketCode: 'T2' });
      expect(await redis.hget(key, 'errorMessage')).toBeNull();
    });
  });

  describe('PUBLISHED', () => {
    const entry = (messageId: string) => outboxEntry({ date: DATE, messageId, admitter: 'test' });

    it('takes entries out of the outbox and writes the sequence into waiting records only', async () => {
      await redis.zadd(keys.outbox, 1, entry('p1'), 2, entry('p2'), 3, entry('p3'), 4, entry('p4'));
      await redis.hset(keys.result('p1'), { messageId: 'p1', status: 'PENDING' });
      await redis.hset(keys.result('p2'), { messageId: 'p2', status: 'SUCCESS', seq: '7' });
      await redis.hset(keys.result('p4'), { messageId: 'p4', status: 'PROCESSING' });
      const removed = await redis.published([
        6,
        keys.outbox,
        keys.result('p1'),
        keys.result('p2'),
        keys.result('p3'),
        keys.result('p4'),
        keys.result('gone'),
        entry('p1'),
        11,
        entry('p2'),
        12,
        entry('p3'),
        13, // p3's record is gone: not written back
        entry('p4'),
        '', // no sequence: only leaves the outbox
        entry('gone'),
        15,
      ]);
      expect(removed).toBe(4);
      expect(await redis.zcard(keys.outbox)).toBe(0);
      expect(await redis.hget(keys.result('p1'), 'seq')).toBe('11');
      expect(await redis.hget(keys.result('p2'), 'seq')).toBe('7');
      expect(await redis.exists(keys.result('p3'), keys.result('gone'))).toBe(0);
      expect(await redis.hget(keys.result('p4'), 'seq')).toBeNull();
    });

    it('OutboxAcks sends the acknowledgements of one turn as one call', async () => {
      await redis.zadd(keys.outbox, 1, entry('q1'), 2, entry('q2'));
      await redis.hset(keys.result('q1'), { messageId: 'q1', status: 'PENDING' });
      const acks = new OutboxAcks(redis);
      const calls = jest.spyOn(redis, 'published');
      acks.remove({ date: DATE, messageId: 'q1', admitter: 'test' }, 21);
      acks.remove({ date: DATE, messageId: 'q2', admitter: 'test' });
      await eventually(async () => ((await redis.zcard(keys.outbox)) === 0 ? true : undefined), 5000);
      expect(calls.mock.contexts.filter((self) => self === redis)).toHaveLength(1);
      calls.mockRestore();
      expect(await redis.hget(keys.result('q1'), 'seq')).toBe('21');
    });
  });

  describe('TAKE_OVER', () => {
    const takeOver = (holder: string, by: string) =>
      redis.takeOver(keys.outboxLock, keys.admitter(holder), holder, by, 30_000);

    it("takes the pass lock of a holder whose heartbeat lapsed, not a live holder's", async () => {
      await redis.set(keys.outboxLock, 'dead', 'PX', 30_000);
      expect(await takeOver('dead', 'me')).toBe(1);
      expect(await redis.get(keys.outboxLock)).toBe('me');
      expect(await redis.pttl(keys.outboxLock)).toBeGreaterThan(25_000);

      await redis.set(keys.admitter('me'), '1', 'PX', 30_000);
      expect(await takeOver('me', 'other')).toBe(0);
      expect(await redis.get(keys.outboxLock)).toBe('me');
    });

    it('takes nothing once the lock names another holder or is gone', async () => {
      await redis.set(keys.outboxLock, 'newer', 'PX', 30_000);
      expect(await takeOver('dead', 'me')).toBe(0);
      expect(await redis.get(keys.outboxLock)).toBe('newer');
      await redis.del(keys.outboxLock);
      expect(await takeOver('dead', 'me')).toBe(0);
      expect(await redis.exists(keys.outboxLock)).toBe(0);
    });
  });

  it('keeps every key under its namespace prefix', async () => {
    await open(2);
    await admit({ userId: 1, messageId: 'm1', resultTtl: 60, userMax: 5 });
    const raw = redis.duplicate({ keyPrefix: '' });
    try {
      const expected = [
        keys.ready,
        keys.stock(DATE),
        keys.claims(DATE),
        keys.pending(DATE),
        keys.result('m1'),
        keys.userRate(1),
      ];
      expect(await raw.exists(...expected.map((k) => `${namespace}:${k}`))).toBe(expected.length);
    } finally {
      raw.disconnect();
    }
  });
});
