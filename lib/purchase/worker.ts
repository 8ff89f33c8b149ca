import { createActor, toPromise } from 'xstate';
import { firstValueFrom, Observable, Subject, type Subscription } from 'rxjs';
import type { Consumer, ConsumerMessages, JsMsg } from 'nats';
import type Redis from 'ioredis';
import type { Sequelize } from 'sequelize';
import type { Config } from '../../config';
import {
  isTerminal,
  orderPlacer,
  purchaseMachine,
  SYSTEM_ERROR_CODE,
  type StatusReport,
} from '../../machines/purchase.machine';
import { isTransientError } from '../errors';
import { settle } from './reservations';
import { OrderWriter, orderWriterPorts } from './order-writer';
import { decode, type PurchaseMessage, type PurchaseQueue } from './queue';
import { ResultRecorder, type ResultRecord } from './results';
import { TurnBuffer } from '../turn-buffer';
import { CROWD_PAUSE_MS } from './crowd';

/** How long one fetch waits for messages when the queue is empty. */
const FETCH_EXPIRES_MS = 5000;
/** At most this many per fetch, so one worker's open request does not take a steady flow whole. */
const FETCH_BATCH = 100;
const FETCH_RETRY_MS = 500;
const PAUSE_STEP_MS = 20;

/** An ack or a nak, sent with the others of its event-loop turn. */
interface Reply {
  step(): void;
  done(): void;
  fail(err: unknown): void;
}

function sendReply({ step, done, fail }: Reply): void {
  try {
    step();
    done();
  } catch (err) {
    fail(err);
  }
}

/** One delivery of a message, while its actor runs. */
interface Delivery {
  msg: JsMsg;
  message: PurchaseMessage;
  /** Result writes and acknowledgements in flight, in order. */
  writes: Promise<unknown>[];
  /** When this delivery started here (for in-progress acknowledgements). */
  since: number;
}

/**
 * Adds a write to those the delivery awaits at its end. Marked handled now: one that fails before
 * then (Redis away during a failover) must not end the process as an unhandled rejection; the
 * delivery still sees the failure and leaves the message unacknowledged, so it is redelivered.
 */
function awaitLater(delivery: Delivery, write: Promise<unknown>): void {
  write.catch(() => undefined);
  delivery.writes.push(write);
}

export interface WorkerHooks {
  /** Batches of result transitions, to publish so waiting clients wake up. */
  publish(records: ResultRecord[]): void;
  /** One message reached a terminal state (for metrics). */
  finished?(record: ResultRecord, latencyMs: number): void;
  /** A dead letter was written (for metrics and alerts). */
  deadLettered?(record: ResultRecord): void;
  onBatch?(size: number, ms: number): void;
  /** A reservation was given back to a day's stock. */
  stockReturned?(date: string): void;
  /** True while a gateway on this machine is in a crowd: fetch at WORKER_CROWD_RATE (crowd.ts). */
  yielding?(): boolean;
  log: { warn(...args: unknown[]): void; error(...args: unknown[]): void };
}

/**
 * Consumes the purchase queue: messages fetched from the durable pull consumer only as room frees
 * up, so at most WORKER_CONCURRENCY are in flight (max_ack_pending bounds what the server hands out
 * to all workers), each handled as it arrives; one XState actor per message, whose effects are
 * supplied here; order writes batched by the OrderWriter; result writes and acks batched per
 * event-loop turn.
 */
export class PurchaseWorker {
  private readonly writer: OrderWriter;
  private readonly recorder: ResultRecorder;
  private readonly replies = new TurnBuffer<Reply>((batch) => batch.forEach(sendReply));
  /** Result transitions published together, 20 ms at most after the first. */
  private readonly transitions = new TurnBuffer<ResultRecord>(
    (records) => {
      if (!this.stopped) this.hooks.publish(records);
    },
    500,
    20,
  );
  private stopped = false;
  private readonly deliveries = new Map<string, Delivery>();
  private readonly machine: ReturnType<PurchaseWorker['provideEffects']>;
  private subscriptions: Subscription[] = [];
  private stopping = false;
  private fetching?: ConsumerMessages;
  private heartbeat?: NodeJS.Timeout;
  private readonly freed$ = new Subject<void>();
  /** Since when the oldest message still in the queue has waited, as far as this worker's fetches tell. */
  private waitingSince = Date.now();
  inFlight = 0;

  constructor(
    private readonly config: Config,
    private readonly db: Sequelize,
    private readonly redis: Redis,
    private readonly queue: PurchaseQueue,
    private readonly hooks: WorkerHooks,
  ) {
    this.writer = new OrderWriter(orderWriterPorts(db, redis), {
      batchSize: config.worker.batchSize,
      batchMs: config.worker.batchMs,
      lockTimeoutMs: config.db.lockTimeoutMs,
      onBatch: hooks.onBatch,
      onStockReturned: hooks.stockReturned,
    });
    this.recorder = new ResultRecorder(redis, config.resultTtlSeconds);
    this.machine = this.provideEffects();
  }

  async start(): Promise<void> {
    this.heartbeat = setInterval(() => this.keepAlive(), this.config.queue.ackWaitMs / 3);
    const consumer = await this.queue.js.consumers.get(this.queue.names.stream, this.queue.names.consumer);
    this.subscriptions.push(
      // No mergeMap: the fetch already bounds what is in flight, and an inner subscription per
      // message (removed from an array of up to WORKER_CONCURRENCY on completion) cost more than
      // the bound it repeated.
      this.pulled(consumer).subscribe({
        next: (msg) => void this.handle(msg),
        error: (err) => this.hooks.log.error('Queue consumption stopped', err),
      }),
    );
  }

  /**
   * The queue's messages, fetched only as fast as this worker has room for them (a free quarter of
   * its concurrency at least), so one worker never hoards a backlog the others could be working on.
   */
  private pulled(consumer: Consumer): Observable<JsMsg> {
    const { concurrency, crowdRate, crowdMaxWaitMs } = this.config.worker;
    const minPull = Math.max(1, Math.floor(concurrency / 4));
    const crowdPull = Math.max(1, Math.round((crowdRate * CROWD_PAUSE_MS) / 1000));
    // A crowd that lasts must not hold its orders for as long: once the oldest has waited
    // WORKER_CROWD_MAX_WAIT_MS the worker catches up at full size, crowd or not.
    const behind = () => crowdMaxWaitMs > 0 && Date.now() - this.waitingSince >= crowdMaxWaitMs;
    const yielding = () => crowdRate > 0 && this.hooks.yielding?.() === true && !behind();
    return new Observable<JsMsg>((subscriber) => {
      const pulling = async () => {
        while (!this.stopping && !subscriber.closed) {
          const room = concurrency - this.inFlight;
          if (room < minPull) {
            await firstValueFrom(this.freed$);
            continue;
          }
          // A crowd on this machine: its admissions get the cores, the orders a trickle until it
          // passes. The pause ends with the crowd, and the backlog is then fetched at full size.
          for (let paused = 0; paused < CROWD_PAUSE_MS && yielding(); paused += PAUSE_STEP_MS)
            await new Promise((r) => setTimeout(r, PAUSE_STEP_MS));
          const crowd = yielding();
          const max = Math.min(room, crowd ? crowdPull : FETCH_BATCH);
          try {
            this.fetching = await consumer.fetch({ max_messages: max, expires: FETCH_EXPIRES_MS });
            let received = 0;
            let lastPublished = 0;
            for await (const msg of this.fetching) {
              received++;
              lastPublished = msg.info.timestampNanos / 1e6;
              subscriber.next(msg);
            }
            // A full fetch leaves a backlog about as old as its last message; any other emptied the queue.
            this.waitingSince = received === max ? lastPublished : Date.now();
          } catch (err) {
            // NATS away or the consumer being recreated: JetStream redelivers what was not acked.
            if (this.stopping) break;
            this.hooks.log.warn('Fetching purchase messages failed; retrying', (err as Error).message);
            await new Promise((r) => setTimeout(r, FETCH_RETRY_MS));
          }
        }
      };
      pulling().then(
        () => subscriber.complete(),
        (err: unknown) => subscriber.error(err),
      );
      return () => this.fetching?.stop();
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.fetching?.stop();
    // Let in-flight messages finish (their acks must go out) before closing.
    const deadline = Date.now() + 10_000;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.subscriptions) s.unsubscribe();
    this.stopped = true;
    clearInterval(this.heartbeat);
    this.writer.close();
  }

  /** Drives one delivery through the machine; resolves once the message is acked, naked or dead-lettered. */
  private async handle(msg: JsMsg): Promise<void> {
    if (this.stopping) return;
    this.inFlight++;
    try {
      let message: PurchaseMessage;
      try {
        message = decode<PurchaseMessage>(msg.data);
        if (!message.messageId || !Number.isSafeInteger(message.userId) || !message.date)
          throw new Error('bad payload');
      } catch {
        await this.deadLetterUnreadable(msg);
        return;
      }
      await this.run(msg, message);
    } catch (err) {
      this.hooks.log.error('Message handling failed; it will be redelivered', err);
    } finally {
      this.inFlight--;
      this.freed$.next();
    }
  }

  private async run(msg: JsMsg, message: PurchaseMessage): Promise<void> {
    const { worker, queue } = this.config;
    const actor = createActor(this.machine, {
      input: {
        messageId: message.messageId,
        userId: message.userId,
        date: message.date,
        deliveryCount: msg.info.deliveryCount,
        maxDeliver: queue.maxDeliver,
        retryAttempts: worker.retryAttempts,
        retryBaseMs: worker.retryBaseMs,
        delayMs: queue.delayMs,
      },
    });
    const delivery: Delivery = { msg, message, writes: [], since: Date.now() };
    this.deliveries.set(actor.sessionId, delivery);
    try {
      const done = toPromise(actor);
      actor.start();
      await done;
      await Promise.all(delivery.writes);
    } finally {
      this.deliveries.delete(actor.sessionId);
    }
  }

  /** The machine with this worker's effects, built once; each actor finds its delivery by session. */
  private provideEffects() {
    const of = (self: { sessionId: string }): Delivery => {
      const delivery = this.deliveries.get(self.sessionId);
      if (!delivery) throw new Error(`No delivery for actor ${self.sessionId}`);
      return delivery;
    };
    // Acks and naks wait for the result writes before them, so a client never sees an older status;
    // those of one turn go out together (one socket write).
    const after = (d: Delivery, step: () => void) =>
      awaitLater(
        d,
        Promise.all(d.writes).then(
          () => new Promise<void>((done, fail) => this.replies.add({ step, done, fail })),
        ),
      );
    return purchaseMachine.provide({
      actions: {
        report: ({ self }, params: StatusReport) => this.report(of(self), params),
        ack: ({ self }) => {
          const d = of(self);
          after(d, () => d.msg.ack());
        },
        nak: ({ self }, { delayMs }: { delayMs: number }) => {
          const d = of(self);
          after(d, () => d.msg.nak(delayMs));
        },
        deadLetter: ({ self }, { errorMessage }: { errorMessage: string }) => {
          const d = of(self);
          const { msg, message } = d;
          this.hooks.log.warn('Purchase dead-lettered', message.messageId, errorMessage);
          awaitLater(
            d,
            this.queue
              .deadLetter(message, errorMessage, msg.info.deliveryCount, msg.seq)
              .then(() => settle(this.redis, message, message.messageId, true, 'drop'))
              .then((released) => released && this.hooks.stockReturned?.(message.date))
              .then(() => msg.term()),
          );
        },
        placeOrder: orderPlacer((input) => this.writer.submit(input)),
      },
      guards: {
        isTransient: (_, { error }: { error: unknown }) => isTransientError(error),
      },
    });
  }

  /** Writes a transition to the result hash (never stepping back) and queues it for publishing. */
  private report(delivery: Delivery, r: StatusReport): void {
    const { msg, message } = delivery;
    const now = new Date().toISOString();
    const terminal = isTerminal(r.status);
    const record: ResultRecord = {
      messageId: message.messageId,
      userId: message.userId,
      date: message.date,
      queuedAt: message.queuedAt,
      status: r.status,
      attempts: r.attempts,
      updatedAt: now,
      seq: msg.seq,
    };
    if (r.orderNo) {
      record.orderNo = r.orderNo;
      record.ticketCode = r.ticketCode;
    }
    if (r.errorCode) {
      record.errorCode = r.errorCode;
      record.errorMessage = r.errorMessage;
    }
    if (terminal) record.completedAt = now;
    // A waiting status changes three fields of the record admission wrote; a final one writes it whole.
    const written = this.recorder.record(
      message.messageId,
      r.status,
      terminal ? record : { status: r.status, attempts: r.attempts, updatedAt: now },
    );
    awaitLater(delivery, written);
    // Only what the result store took is told: a late failure of a message that succeeded meanwhile
    // (RECORD refuses it) must not show FAILED anywhere.
    written.then(
      (ok) => {
        if (!ok) return;
        this.transitions.add(record);
        if (!terminal) return;
        this.hooks.finished?.(record, Date.now() - Date.parse(message.queuedAt));
        if (r.errorCode === SYSTEM_ERROR_CODE) this.hooks.deadLettered?.(record);
      },
      () => undefined, // the delivery fails on it and is redelivered
    );
  }

  /**
   * Tells JetStream that the deliveries still in flight after a third of the ack wait are being
   * worked on, so the ack wait can be short: a crashed worker's messages come back within seconds,
   * while a slow one (retrying, a long batch) keeps its own.
   */
  private keepAlive(): void {
    const due = Date.now() - this.config.queue.ackWaitMs / 3;
    for (const d of this.deliveries.values()) {
      if (d.since > due) continue;
      try {
        d.msg.working();
      } catch {
        // The connection is away: JetStream redelivers after the ack wait, the order stays idempotent.
      }
    }
  }

  /** A payload nobody can read is kept for a human in the dead-letter stream, then dropped. */
  private async deadLetterUnreadable(msg: JsMsg): Promise<void> {
    const raw = new TextDecoder().decode(msg.data).slice(0, 1000);
    this.hooks.log.warn('Unreadable purchase message dead-lettered', msg.subject, raw);
    await this.queue.deadLetter(
      { messageId: `unreadable-${msg.seq}`, userId: 0, date: 'unknown', queuedAt: new Date().toISOString() },
      `unreadable payload: ${raw}`,
      msg.info.deliveryCount,
    );
    msg.term();
  }
}
