import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { filter, map, merge, take, timer } from 'rxjs';
import type { Config } from '../../config';
import { isTerminal, type PurchaseStatus } from '../../machines/purchase.machine';
import {
  appCodeOf,
  appError,
  ERRORS,
  refusalFrom,
  refusalOf,
  type AppError,
  type ErrorName,
  type Refusal,
} from '../errors';
import type { SaleCalendar } from '../sale/calendar';
import { isV1Claim } from '../store/keys';
import { checkHash, checkSaleWindow, type PurchaseRequest } from './checks';
import type { AdmissionPort, GatewayPorts, PublisherPort, ResultStorePort } from './gateway-ports';
import { refusal } from './reservations';
import { ResultHub } from './result-hub';
import type { ResultRecord } from './results';

export interface SubmitAnswer {
  messageId: string;
  status: PurchaseStatus;
  pollIntervalMs: number;
  resultUrl: string;
  position?: number;
}

export type Outcome =
  'accepted' | 'duplicate' | 'sold_out' | 'rejected' | 'rate_limited' | 'paused' | 'unavailable' | 'error';

export interface GatewayEvents {
  soldOut(date: string): void;
  /** How a submit ended; an accepted one with the stock its admission left on the day (NaN: unknown). */
  submitted(outcome: Outcome, stockLeft?: number): void;
  /** Where a result read was answered: the gateway's LRU, Redis, the database, or nowhere. */
  resultRead(level: 'lru' | 'redis' | 'database' | 'miss'): void;
}

/** The configuration the gateway reads: the sale calendar, the hash secret, poll bounds, its LRU's size. */
export type GatewaySettings = Pick<Config, 'hashSecret' | 'poll'> & {
  calendar: SaleCalendar;
  resultLruSize: number;
};

/**
 * The gateway side of the V2 purchase: admission in one Redis round trip, the publish to JetStream,
 * local sold-out and pause flags, and the result queries (LRU → Redis → database).
 */
export class PurchaseGateway {
  readonly hub = new ResultHub();
  private readonly terminal: LRUCache<string, ResultRecord>;
  /**
   * Message ids found nowhere, for a second: a flood of polls for unknown ids costs the database one
   * read per id and second. (A real message is in Redis before its id is handed out.)
   */
  private readonly unknown = new LRUCache<string, true>({ max: 10_000, ttl: 1000 });
  private readonly admissions: AdmissionPort;
  private readonly queue: PublisherPort;
  private readonly resultStore: ResultStorePort;
  /** Days this gateway knows are sold out, with the claims snapshot that keeps resubmits idempotent. */
  private readonly soldOut = new Map<string, { claims: Map<string, string>; loaded: boolean }>();
  private paused = false;
  /** Admissions under way (see admissionsSettled). */
  private admitting = 0;
  private backlog = { ackFloor: 0, waiting: 0, drainPerSec: 2000, at: 0 };

  constructor(
    ports: GatewayPorts,
    private readonly settings: GatewaySettings,
    private readonly events: GatewayEvents,
  ) {
    this.admissions = ports.admissions;
    this.queue = ports.queue;
    this.resultStore = ports.results;
    this.terminal = new LRUCache({ max: Math.max(1, settings.resultLruSize) });
  }

  /**
   * The refusals this gateway decides alone, without I/O: the sale calendar, the pause flag and a
   * day it knows is sold out. The crowd after a sell-out is answered before the hash is even
   * checked: a user with no claim learns only what the ticket list already says. Until the day's
   * claims snapshot is loaded the flag cannot tell buyers from the crowd, so Redis is asked.
   * Undefined: the request needs the full admission.
   */
  refuseLocally(req: PurchaseRequest, now = new Date()): Refusal | undefined {
    try {
      checkSaleWindow(this.settings.calendar, req.date, now);
    } catch (err) {
      return this.refuse('rejected', err as AppError);
    }
    if (this.paused) return this.refuse('paused', 'PAUSED');
    const known = this.soldOut.get(req.date);
    if (known?.loaded && !known.claims.has(String(req.userId))) return this.refuse('sold_out', 'SOLD_OUT');
    return undefined;
  }

  /** The whole V2 submit: the local refusals, then the admission. */
  submit(req: PurchaseRequest): Promise<SubmitAnswer | Refusal> {
    const refused = this.refuseLocally(req);
    return refused ? Promise.resolve(refused) : this.admit(req);
  }

  /**
   * A submit that `refuseLocally` let through: the verify hash, the Redis admission, the publish.
   * An unexpected failure (answered 5000) is counted as an outcome too: the monitor's error-rate
   * alert needs it.
   */
  async admit(req: PurchaseRequest): Promise<SubmitAnswer | Refusal> {
    this.admitting++;
    try {
      return await this.admitOnce(req, new Date());
    } catch (err) {
      if (appCodeOf(err) === undefined) this.events.submitted('error');
      throw err;
    } finally {
      this.admitting--;
    }
  }

  /** Resolves once no admission is under way, or after `timeoutMs`: a stopping node lets them finish. */
  async admissionsSettled(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.admitting > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  private async admitOnce(req: PurchaseRequest, now: Date): Promise<SubmitAnswer | Refusal> {
    const known = this.soldOut.get(req.date);
    const claim = known?.loaded ? known.claims.get(String(req.userId)) : undefined;
    try {
      checkHash(this.settings, req, now);
    } catch (err) {
      return this.refuse('rejected', err as AppError);
    }
    if (claim) {
      if (!isV1Claim(claim)) return this.existing(claim);
      return this.refuse('sold_out', 'ALREADY_PURCHASED');
    }
    const messageId = randomUUID();
    const queuedAt = now;
    let admission;
    try {
      admission = await this.admissions.reserve(req, messageId, queuedAt);
    } catch {
      return this.refuse('unavailable', 'UNAVAILABLE');
    }
    switch (admission.outcome) {
      case 'OK':
        break;
      case 'EXISTS':
        if (isV1Claim(admission.claim)) return this.refuse('rejected', 'ALREADY_PURCHASED');
        return this.existing(admission.claim);
      case 'SOLD_OUT':
        this.markSoldOut(req.date);
        this.events.soldOut(req.date);
        return this.refuse('sold_out', 'SOLD_OUT');
      case 'PAUSED':
        this.paused = true;
        return this.refuse('paused', 'PAUSED');
      case 'RATE_LIMITED':
        return this.refuse('rate_limited', 'RATE_LIMITED');
      default:
        return this.refuse('unavailable', refusal(admission)); // the cache is being rebuilt
    }
    let seq: number;
    try {
      const ack = await this.queue.publish({
        messageId,
        userId: req.userId,
        date: req.date,
        queuedAt: queuedAt.toISOString(),
      });
      seq = ack.seq;
    } catch {
      // Never an accepted message that is not on the queue: undo the reservation and say so.
      // (Should this process die before the undo, the outbox entry lets another gateway finish it.)
      await this.admissions.release(req, messageId);
      return this.refuse(
        'unavailable',
        appError('UNAVAILABLE', 'The purchase queue is unavailable, try again'),
      );
    }
    this.admissions.queued(req.date, messageId, seq);
    this.events.submitted('accepted', admission.remaining);
    const position = this.positionOf(seq);
    return {
      messageId,
      status: 'PENDING',
      pollIntervalMs: this.pollInterval(position),
      resultUrl: resultUrl(messageId),
      position,
    };
  }

  /** A terminal result this gateway holds in memory (its LRU), or undefined. */
  terminalResult(messageId: string): ResultRecord | undefined {
    const cached = this.terminal.get(messageId);
    if (cached) this.events.resultRead('lru');
    return cached;
  }

  /**
   * The result record; with `waitMs` it waits for a terminal status (long poll). With `owner` (the
   * signed-in user) another user's message answers 6008 like a missing one: its existence never shows.
   */
  async result(
    messageId: string,
    waitMs = 0,
    owner?: number,
  ): Promise<ResultRecord & { pollIntervalMs?: number }> {
    const cached = this.terminalResult(messageId);
    if (cached) return ownedBy(cached, owner);
    if (waitMs <= 0) return this.decorate(ownedBy(await this.read(messageId), owner));
    // Watch before reading, so a transition between the two cannot be missed.
    let wake!: (record: ResultRecord | null) => void;
    const woken = new Promise<ResultRecord | null>((resolve) => (wake = resolve));
    const watching = merge(
      this.hub.watch(messageId).pipe(filter((r) => isTerminal(r.status))),
      timer(Math.min(waitMs, this.settings.poll.longPollMaxMs)).pipe(map(() => null)),
    )
      .pipe(take(1))
      .subscribe(wake);
    try {
      const now = ownedBy(await this.read(messageId), owner);
      if (isTerminal(now.status)) return now;
      return (await woken) ?? this.decorate(await this.read(messageId));
    } finally {
      watching.unsubscribe();
    }
  }

  async resultByUser(userId: number, date: string): Promise<ResultRecord> {
    const claim = await this.admissions.claim(date, userId);
    if (claim && !isV1Claim(claim)) {
      const record = await this.lookup(claim);
      if (record) return this.decorate(record);
    }
    const order = await this.resultStore.ofUser(userId, date);
    if (order) return order;
    throw appError('NOT_FOUND', 'No purchase for this user and day');
  }

  async results(
    messageIds: string[],
    owner?: number,
  ): Promise<(ResultRecord | { messageId: string; code: number; message: string })[]> {
    return Promise.all(
      messageIds.map(async (messageId) => {
        try {
          return await this.result(messageId, 0, owner);
        } catch (err) {
          if (appCodeOf(err) !== ERRORS.NOT_FOUND.code) throw err;
          return { messageId, code: ERRORS.NOT_FOUND.code, message: 'No such message' };
        }
      }),
    );
  }

  /** Result transitions from the workers (broker event). */
  onResults(records: ResultRecord[]): void {
    for (const record of records) {
      if (isTerminal(record.status)) {
        this.terminal.set(record.messageId, record);
        if (record.status === 'SUCCESS')
          this.soldOut.get(record.date)?.claims.set(String(record.userId), record.messageId);
      } else {
        // Running again (a resent dead letter): a cached terminal answer is stale now.
        this.terminal.delete(record.messageId);
      }
      this.hub.emit(record);
    }
  }

  markSoldOut(date: string): void {
    if (this.soldOut.has(date)) return;
    const flag = { claims: new Map<string, string>(), loaded: false };
    this.soldOut.set(date, flag);
    this.admissions
      .claims(date)
      .then((all) => {
        for (const [userId, claim] of Object.entries(all))
          if (!flag.claims.has(userId)) flag.claims.set(userId, claim);
        flag.loaded = true;
      })
      .catch(() => {
        if (this.soldOut.get(date) === flag) this.soldOut.delete(date); // the next sell-out tries again
      });
  }

  stockChanged(date: string): void {
    this.soldOut.delete(date);
  }

  setPaused(paused: boolean): void {
    this.paused = paused;
  }

  /**
   * The in-memory flags against Redis, the shared truth: a gateway that missed a broadcast (a NATS
   * blip) must not refuse a resumed sale or a day with stock again forever. Run periodically and
   * when the broker reconnects. While Redis is being rebuilt (no `ready`) its pause key says nothing.
   */
  async checkFlags(): Promise<void> {
    const dates = [...this.soldOut.keys()];
    const flags = await this.admissions.flags(dates);
    if (!flags) return;
    if (flags.ready) this.paused = flags.paused;
    dates.forEach((date, i) => {
      if (flags.stocks[i] > 0) this.soldOut.delete(date);
    });
  }

  /** Consumer progress, for queue positions and adaptive poll intervals. */
  async refreshBacklog(): Promise<void> {
    const info = await this.queue.consumerInfo();
    const now = Date.now();
    const floor = info.ack_floor.stream_seq;
    const prev = this.backlog;
    if (prev.at > 0 && floor > prev.ackFloor) {
      const rate = ((floor - prev.ackFloor) * 1000) / Math.max(1, now - prev.at);
      this.backlog.drainPerSec = 0.7 * prev.drainPerSec + 0.3 * rate;
    }
    this.backlog = {
      ...this.backlog,
      ackFloor: floor,
      waiting: info.num_pending + info.num_ack_pending,
      at: now,
    };
  }

  private positionOf(seq: number | undefined): number | undefined {
    if (!seq || this.backlog.at === 0) return undefined;
    return Math.max(0, seq - this.backlog.ackFloor - 1);
  }

  /** Smart polling: wait about as long as the queue ahead needs to drain, within bounds. */
  private pollInterval(position: number | undefined): number {
    const { minMs, maxMs } = this.settings.poll;
    const ahead = position ?? this.backlog.waiting;
    const estimate = (ahead * 1000) / Math.max(1, this.backlog.drainPerSec);
    return Math.round(Math.min(maxMs, Math.max(minMs, estimate)));
  }

  private decorate(record: ResultRecord): ResultRecord & { pollIntervalMs?: number } {
    if (isTerminal(record.status)) return record;
    const position = record.status === 'PENDING' ? this.positionOf(record.seq) : undefined;
    return {
      ...record,
      ...(position !== undefined ? { position } : {}),
      pollIntervalMs: this.pollInterval(position),
    };
  }

  private async read(messageId: string): Promise<ResultRecord> {
    const record = await this.lookup(messageId);
    if (!record) throw appError('NOT_FOUND', 'No such message');
    return record;
  }

  /** Redis, then the database (a successful order outlives its cached result); terminal ones go to the LRU. */
  private async lookup(messageId: string): Promise<ResultRecord | null> {
    let record = await this.resultStore.cached(messageId);
    if (record) this.events.resultRead('redis');
    else if (this.unknown.has(messageId)) {
      this.events.resultRead('miss');
    } else {
      record = await this.resultStore.ofMessage(messageId);
      if (!record) this.unknown.set(messageId, true);
      this.events.resultRead(record ? 'database' : 'miss');
    }
    if (record && isTerminal(record.status)) this.terminal.set(messageId, record);
    return record;
  }

  private async existing(messageId: string): Promise<SubmitAnswer> {
    this.events.submitted('duplicate');
    const record = this.terminal.get(messageId) ?? (await this.lookup(messageId));
    const status = record?.status ?? 'PENDING';
    const position = status === 'PENDING' ? this.positionOf(record?.seq) : undefined;
    return {
      messageId,
      status,
      pollIntervalMs: this.pollInterval(position),
      resultUrl: resultUrl(messageId),
      position,
    };
  }

  private refuse(outcome: Outcome, why: ErrorName | AppError): Refusal {
    this.events.submitted(outcome);
    return typeof why === 'string' ? refusalOf(why) : refusalFrom(why);
  }
}

function ownedBy<T extends ResultRecord>(record: T, owner: number | undefined): T {
  if (owner !== undefined && record.userId !== owner) throw appError('NOT_FOUND', 'No such message');
  return record;
}

const resultUrl = (messageId: string) => `/api/tickets/v2/purchase/result?messageId=${messageId}`;
