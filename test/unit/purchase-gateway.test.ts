import { addDays, saleDates, type SaleCalendar } from '../../lib/sale/calendar';
import { issueVerifyHash } from '../../lib/sale/verify-hash';
import { isRefusal, type Refusal } from '../../lib/errors';
import type { Admission } from '../../lib/purchase/reservations';
import {
  PurchaseGateway,
  type GatewaySettings,
  type Outcome,
  type SubmitAnswer,
} from '../../lib/purchase/gateway';
import type {
  AdmissionPort,
  GatewayPorts,
  PublisherPort,
  ResultStorePort,
} from '../../lib/purchase/gateway-ports';
import type { PurchaseMessage } from '../../lib/purchase/queue';
import type { ResultRecord } from '../../lib/purchase/results';
import { v1Claim } from '../../lib/store/keys';

/**
 * The purchase gateway alone, through in-memory fakes of its three ports (gateway-ports.ts): the
 * admission store, the queue and the result store. The real ports (Redis scripts, JetStream,
 * PostgreSQL) are exercised by the V2 integration suites; here each refusal, the duplicate and the
 * failed publish are driven directly, and every port call is visible.
 */

const SECRET = 'unit-test-secret-0123456789abcdef0123456789';
const CALENDAR: SaleCalendar = { timeZone: 'UTC', days: 2, windowStart: 0, windowEnd: 24 * 60 };
const SETTINGS: GatewaySettings = {
  calendar: CALENDAR,
  hashSecret: SECRET,
  poll: { minMs: 100, maxMs: 5000, longPollMaxMs: 30_000 },
  resultLruSize: 100,
};

type UserDay = { userId: number; date: string };

/** The admission store as the ADMIT/SETTLE scripts keep it, in memory. */
class FakeAdmissions implements AdmissionPort {
  ready = true;
  paused = false;
  readonly stock = new Map<string, number>();
  readonly claimsOf = new Map<string, Map<string, string>>();
  readonly pending = new Map<string, Set<string>>();
  readonly outbox = new Set<string>();
  readonly rateLimited = new Set<number>();
  /** Reserve calls; `down` makes the next ones throw (Redis unreachable). */
  readonly reserved: string[] = [];
  readonly released: string[] = [];
  down = false;
  /** Set: reserve waits for this promise first (an admission under way). */
  hold?: Promise<void>;
  /** The undo of a failed publish throws (a bug, not an outage). */
  releaseThrows = false;

  constructor(private readonly records: Map<string, ResultRecord>) {}

  private dayClaims(date: string): Map<string, string> {
    let claims = this.claimsOf.get(date);
    if (!claims) this.claimsOf.set(date, (claims = new Map()));
    return claims;
  }

  async reserve(req: UserDay, messageId: string, now: Date): Promise<Admission> {
    this.reserved.push(messageId);
    await this.hold;
    if (this.down) throw new Error('connect ECONNREFUSED');
    if (!this.ready || !this.stock.has(req.date)) return { outcome: 'NOT_READY' };
    if (this.paused) return { outcome: 'PAUSED' };
    if (this.rateLimited.has(req.userId)) return { outcome: 'RATE_LIMITED' };
    const claim = this.dayClaims(req.date).get(String(req.userId));
    if (claim) return { outcome: 'EXISTS', claim };
    const stock = this.stock.get(req.date)!;
    if (stock <= 0) return { outcome: 'SOLD_OUT' };
    this.stock.set(req.date, stock - 1);
    this.dayClaims(req.date).set(String(req.userId), messageId);
    this.pending.set(req.date, (this.pending.get(req.date) ?? new Set()).add(messageId));
    this.outbox.add(messageId);
    const at = now.toISOString();
    this.records.set(messageId, {
      messageId,
      userId: req.userId,
      date: req.date,
      status: 'PENDING',
      attempts: 0,
      queuedAt: at,
      updatedAt: at,
    });
    return { outcome: 'OK', remaining: stock - 1 };
  }

  queued(_date: string, messageId: string, seq: number): void {
    this.outbox.delete(messageId);
    const record = this.records.get(messageId);
    if (record) record.seq = seq;
  }

  async release(req: UserDay, messageId: string): Promise<void> {
    this.released.push(messageId);
    if (this.releaseThrows) throw new TypeError('release is broken');
    if (this.pending.get(req.date)?.delete(messageId)) {
      this.stock.set(req.date, this.stock.get(req.date)! + 1);
      this.dayClaims(req.date).delete(String(req.userId));
    }
    this.records.delete(messageId);
    this.outbox.delete(messageId);
  }

  async claim(date: string, userId: number): Promise<string | null> {
    return this.dayClaims(date).get(String(userId)) ?? null;
  }

  async claims(date: string): Promise<Record<string, string>> {
    return Object.fromEntries(this.dayClaims(date));
  }

  async flags(dates: string[]) {
    return {
      ready: this.ready,
      paused: this.paused,
      stocks: dates.map((d) => this.stock.get(d) ?? 0),
    };
  }
}

class FakeQueue implements PublisherPort {
  readonly messages: PurchaseMessage[] = [];
  failNext = false;
  seq = 0;
  info = { ack_floor: { stream_seq: 0 }, num_pending: 0, num_ack_pending: 0 };

  async publish(message: PurchaseMessage): Promise<{ seq: number }> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('No JetStream acknowledgement in time');
    }
    this.messages.push(message);
    return { seq: ++this.seq };
  }

  async consumerInfo() {
    return this.info;
  }
}

class FakeResults implements ResultStorePort {
  readonly records = new Map<string, ResultRecord>();
  /** The database's orders, as results, by message id (a V1 order by its claim). */
  readonly orders = new Map<string, ResultRecord>();
  readonly reads = { cached: 0, ofMessage: 0, ofUser: 0 };

  async cached(messageId: string) {
    this.reads.cached++;
    return this.records.get(messageId) ?? null;
  }

  async ofMessage(messageId: string) {
    this.reads.ofMessage++;
    return this.orders.get(messageId) ?? null;
  }

  async ofUser(userId: number, date: string) {
    this.reads.ofUser++;
    return [...this.orders.values()].find((o) => o.userId === userId && o.date === date) ?? null;
  }
}

/** Lets the promise callbacks queued so far run (the gateway's background reads). */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setup(settings: GatewaySettings = SETTINGS) {
  const results = new FakeResults();
  const admissions = new FakeAdmissions(results.records);
  const queue = new FakeQueue();
  const events = { soldOut: [] as string[], submitted: [] as Outcome[], reads: [] as string[] };
  const ports: GatewayPorts = { admissions, queue, results };
  const gateway = new PurchaseGateway(ports, settings, {
    soldOut: (date) => events.soldOut.push(date),
    submitted: (outcome) => events.submitted.push(outcome),
    resultRead: (level) => events.reads.push(level),
  });
  const [today, tomorrow] = saleDates(CALENDAR);
  for (const date of [today, tomorrow]) admissions.stock.set(date, 10);
  const request = (userId: number, date = today) => ({
    userId,
    date,
    verifyHash: issueVerifyHash(SECRET, userId, date, 600).verifyHash,
  });
  const submit = (userId: number, date = today) => gateway.submit(request(userId, date));
  return { gateway, admissions, queue, results, events, today, tomorrow, request, submit };
}

function accepted(answer: SubmitAnswer | Refusal): SubmitAnswer {
  if (isRefusal(answer)) throw new Error(`refused: ${answer.code} ${answer.message}`);
  return answer;
}

function refused(answer: SubmitAnswer | Refusal): Refusal {
  if (!isRefusal(answer)) throw new Error(`accepted: ${answer.messageId}`);
  return answer;
}

const success = (record: ResultRecord): ResultRecord => ({
  ...record,
  status: 'SUCCESS',
  orderNo: 'ORD-1',
  ticketCode: 'TCK-1',
  completedAt: record.updatedAt,
});

describe('PurchaseGateway with fake ports: submit', () => {
  it('accepts: reserves, publishes the message, clears its outbox entry and records its sequence', async () => {
    const { submit, admissions, queue, results, events, today } = setup();
    const answer = accepted(await submit(7));
    expect(answer).toMatchObject({ status: 'PENDING', resultUrl: expect.stringContaining(answer.messageId) });
    expect(queue.messages).toEqual([
      { messageId: answer.messageId, userId: 7, date: today, queuedAt: expect.any(String) },
    ]);
    expect(admissions.stock.get(today)).toBe(9);
    expect(admissions.outbox.size).toBe(0);
    expect(results.records.get(answer.messageId)).toMatchObject({ status: 'PENDING', seq: 1 });
    expect(events.submitted).toEqual(['accepted']);
  });

  it('refuses a day off sale, a closed window and a bad hash without asking the admission store', async () => {
    const { gateway, request, admissions, today } = setup();
    const offSale = addDays(today, 5);
    expect(refused(await gateway.submit(request(7, offSale))).code).toBe(6001);
    expect(refused(await gateway.submit({ ...request(7), verifyHash: 'nope' })).code).toBe(6003);
    const otherUsersHash = request(8).verifyHash;
    expect(refused(await gateway.submit({ ...request(7), verifyHash: otherUsersHash })).code).toBe(6003);
    const closed = setup({ ...SETTINGS, calendar: { ...CALENDAR, windowStart: 0, windowEnd: 0 } });
    expect(refused(await closed.submit(7)).code).toBe(6004);
    expect(admissions.reserved).toEqual([]);
    expect(closed.admissions.reserved).toEqual([]);
  });

  it('answers a duplicate submit with the first message, never a second publish', async () => {
    const { gateway, submit, queue, results, events } = setup();
    const first = accepted(await submit(7));
    const again = accepted(await submit(7));
    expect(again.messageId).toBe(first.messageId);
    expect(again.status).toBe('PENDING');
    expect(queue.messages).toHaveLength(1);

    gateway.onResults([success(results.records.get(first.messageId)!)]);
    const afterSuccess = accepted(await submit(7));
    expect(afterSuccess).toMatchObject({ messageId: first.messageId, status: 'SUCCESS' });
    expect(events.submitted).toEqual(['accepted', 'duplicate', 'duplicate']);
  });

  it('refuses a user who bought the day through V1', async () => {
    const { submit, admissions, queue, today } = setup();
    admissions.claimsOf.set(today, new Map([['7', v1Claim('ORD-9')]]));
    expect(refused(await submit(7)).code).toBe(6005);
    expect(queue.messages).toEqual([]);
  });

  it('a failed publish releases the reservation: the ticket, the claim and the PENDING record go back', async () => {
    const { submit, admissions, queue, results, events, today } = setup();
    admissions.stock.set(today, 1);
    queue.failNext = true;
    const answer = refused(await submit(7));
    expect(answer.code).toBe(5030);
    expect(admissions.released).toEqual(admissions.reserved);
    expect(admissions.stock.get(today)).toBe(1);
    expect(admissions.claimsOf.get(today)?.has('7')).toBe(false);
    expect(admissions.outbox.size).toBe(0);
    expect(results.records.size).toBe(0);
    expect(events.submitted).toEqual(['unavailable']);

    // Nothing of the failed attempt stays: the same user buys the last ticket on the next try.
    const retry = accepted(await submit(7));
    expect(queue.messages.map((m) => m.messageId)).toEqual([retry.messageId]);
    expect(admissions.stock.get(today)).toBe(0);
  });

  it('answers the store refusals: rate limited, cache not ready, store unreachable', async () => {
    const { submit, admissions, events } = setup();
    admissions.rateLimited.add(7);
    expect(refused(await submit(7)).code).toBe(7001);
    admissions.ready = false;
    const notReady = refused(await submit(8));
    expect(notReady).toMatchObject({ code: 5030, message: expect.stringContaining('rebuilt') });
    admissions.ready = true;
    admissions.down = true;
    expect(refused(await submit(8)).code).toBe(5030);
    expect(events.submitted).toEqual(['rate_limited', 'unavailable', 'unavailable']);
  });

  it('counts an unexpected failure as an error outcome and throws it (the door answers 5000)', async () => {
    const { submit, admissions, queue, events } = setup();
    queue.failNext = true;
    admissions.releaseThrows = true;
    await expect(submit(7)).rejects.toThrow('release is broken');
    expect(events.submitted).toEqual(['error']);
  });

  it('lets a stopping node wait for the admissions under way', async () => {
    const { gateway, request, admissions, queue } = setup();
    let open!: () => void;
    admissions.hold = new Promise((resolve) => (open = resolve));
    const answer = gateway.admit(request(7));
    let settled = false;
    const waiting = gateway.admissionsSettled(10_000).then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).toBe(false);
    open();
    accepted(await answer);
    await waiting;
    expect(queue.messages).toHaveLength(1);
    // Nothing under way: it resolves at once.
    await gateway.admissionsSettled(10_000);
  });
});

describe('PurchaseGateway with fake ports: local flags', () => {
  it('after a sell-out answers the crowd alone, and a buyer with the first message', async () => {
    const { gateway, submit, admissions, queue, events, today, tomorrow } = setup();
    admissions.stock.set(today, 1);
    const buyer = accepted(await submit(7));
    expect(refused(await submit(8)).code).toBe(6002);
    expect(events.soldOut).toEqual([today]);
    await settled(); // the day's claims snapshot is loaded

    const asked = admissions.reserved.length;
    expect(refused(await submit(9)).code).toBe(6002);
    expect(accepted(await submit(7)).messageId).toBe(buyer.messageId);
    expect(accepted(await submit(9, tomorrow)).status).toBe('PENDING'); // another day is not sold out
    expect(admissions.reserved.length).toBe(asked + 1);
    expect(queue.messages).toHaveLength(2);

    // Stock came back (a cancel, a release): the store is asked again.
    admissions.stock.set(today, 1);
    gateway.stockChanged(today);
    expect(accepted(await submit(9)).status).toBe('PENDING');
  });

  it('forgets a sold-out day when the shared stock says otherwise (a missed broadcast)', async () => {
    const { gateway, submit, admissions, today } = setup();
    admissions.stock.set(today, 0);
    expect(refused(await submit(8)).code).toBe(6002);
    await settled();
    admissions.stock.set(today, 3);
    await gateway.checkFlags();
    expect(accepted(await submit(8)).status).toBe('PENDING');
  });

  it('remembers a pause, and takes the shared flag back only from a ready cache', async () => {
    const { gateway, submit, admissions } = setup();
    admissions.paused = true;
    expect(refused(await submit(7)).code).toBe(6007);
    admissions.paused = false;
    const asked = admissions.reserved.length;
    expect(refused(await submit(7)).code).toBe(6007); // answered from the local flag
    expect(admissions.reserved.length).toBe(asked);

    admissions.ready = false; // being rebuilt: its pause key says nothing
    await gateway.checkFlags();
    expect(refused(await submit(7)).code).toBe(6007);
    admissions.ready = true;
    await gateway.checkFlags();
    expect(accepted(await submit(7)).status).toBe('PENDING');
  });
});

describe('PurchaseGateway with fake ports: results', () => {
  it('a long poll wakes with the terminal result, which later polls read from memory', async () => {
    const { gateway, submit, results, events } = setup();
    const { messageId } = accepted(await submit(7));
    const waiting = gateway.result(messageId, 20_000);
    await settled(); // it has read PENDING and waits
    gateway.onResults([success(results.records.get(messageId)!)]);
    expect(await waiting).toMatchObject({ messageId, status: 'SUCCESS', ticketCode: 'TCK-1' });

    const reads = results.reads.cached;
    expect(await gateway.result(messageId)).toMatchObject({ status: 'SUCCESS' });
    expect(gateway.terminalResult(messageId)?.status).toBe('SUCCESS');
    expect(results.reads.cached).toBe(reads);
    expect(events.reads).toContain('lru');
  });

  it("hides another user's message, and an unknown one, behind 6008", async () => {
    const { gateway, submit } = setup();
    const { messageId } = accepted(await submit(7));
    await expect(gateway.result(messageId, 0, 8)).rejects.toMatchObject({ data: { appCode: 6008 } });
    await expect(gateway.result(messageId, 0, 7)).resolves.toMatchObject({ status: 'PENDING' });
    await expect(gateway.result('no-such-message')).rejects.toMatchObject({ data: { appCode: 6008 } });
    expect(await gateway.results([messageId, 'no-such-message'])).toEqual([
      expect.objectContaining({ messageId, status: 'PENDING' }),
      { messageId: 'no-such-message', code: 6008, message: 'No such message' },
    ]);
  });

  it('reads an order the cache no longer holds from the database, once', async () => {
    const { gateway, results, events, today } = setup();
    const order = success({
      messageId: 'm-old',
      userId: 7,
      date: today,
      status: 'PENDING',
      attempts: 1,
      queuedAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    });
    results.orders.set('m-old', order);
    expect(await gateway.result('m-old')).toEqual(order);
    expect(await gateway.result('m-old')).toEqual(order);
    expect(results.reads.ofMessage).toBe(1);
    expect(events.reads).toEqual(['database', 'lru']);
  });

  it('drops a cached terminal answer when the message runs again (a resent dead letter)', async () => {
    const { gateway, submit, results } = setup();
    const { messageId } = accepted(await submit(7));
    const pending = results.records.get(messageId)!;
    gateway.onResults([{ ...pending, status: 'FAILED', errorCode: 5030 }]);
    expect(gateway.terminalResult(messageId)?.status).toBe('FAILED');
    gateway.onResults([{ ...pending, status: 'PROCESSING' }]);
    expect(gateway.terminalResult(messageId)).toBeUndefined();
  });

  it("finds a user's purchase of a day by its claim, a V1 order in the database, or 6008", async () => {
    const { gateway, submit, admissions, results, today, tomorrow } = setup();
    const { messageId } = accepted(await submit(7));
    expect(await gateway.resultByUser(7, today)).toMatchObject({ messageId, status: 'PENDING' });

    const v1 = success({
      messageId: v1Claim('ORD-5'),
      userId: 8,
      date: today,
      status: 'PENDING',
      attempts: 1,
      queuedAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    });
    admissions.claimsOf.get(today)!.set('8', v1.messageId);
    results.orders.set(v1.messageId, v1);
    expect(await gateway.resultByUser(8, today)).toEqual(v1);
    await expect(gateway.resultByUser(7, tomorrow)).rejects.toMatchObject({ data: { appCode: 6008 } });
  });

  it('gives the queue position from the consumer floor, and a poll interval within bounds', async () => {
    const { gateway, submit, queue } = setup();
    queue.seq = 40; // the next message is number 41
    queue.info = { ack_floor: { stream_seq: 10 }, num_pending: 30, num_ack_pending: 0 };
    await gateway.refreshBacklog();
    const answer = accepted(await submit(7));
    expect(answer.position).toBe(30);
    expect(answer.pollIntervalMs).toBeGreaterThanOrEqual(SETTINGS.poll.minMs);
    expect(answer.pollIntervalMs).toBeLessThanOrEqual(SETTINGS.poll.maxMs);
    expect(await gateway.result(answer.messageId)).toMatchObject({ status: 'PENDING', position: 30 });
  });
});
