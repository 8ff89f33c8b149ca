// Over 400 lines on purpose: the service's whole JetStream surface in one place (streams and
// consumer, publishing, dead letters). BulkPublisher is private to the queue: it owns the reply
// inbox of the queue's connection, where JetStream acknowledges every publish.
import {
  AckPolicy,
  connect,
  DiscardPolicy,
  createInbox,
  DeliverPolicy,
  headers as natsHeaders,
  nanos,
  RetentionPolicy,
  StorageType,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type Msg,
  type NatsConnection,
  type PubAck,
  type StoredMsg,
} from 'nats';
import type { PurchaseKey } from '../../machines/purchase.machine';
import type { Config } from '../../config';
import { natsOptions } from '../nats-options';
import { TurnBuffer } from '../turn-buffer';

/** What travels on the queue for each accepted purchase. */
export interface PurchaseMessage extends PurchaseKey {
  queuedAt: string;
}

/** The queue's figures (`PurchaseQueue.stats`). */
export type QueueStats = Awaited<ReturnType<PurchaseQueue['stats']>>;

export interface DeadLetter extends PurchaseMessage {
  error: string;
  deliveries: number;
  deadLetteredAt: string;
  seq: number;
}

/** Stream, consumer and subject names, all derived from NAMESPACE so instances never collide. */
export function queueNames(namespace: string) {
  const ns = namespace.replace(/[^A-Za-z0-9_-]/g, '_');
  return {
    stream: `${ns}_PURCHASES`,
    subjects: `${ns}.purchase.>`,
    subject: (date: string) => `${ns}.purchase.${date}`,
    consumer: `${ns}_workers`,
    dlqStream: `${ns}_PURCHASES_DLQ`,
    dlqSubjects: `${ns}.purchase-dlq.>`,
    /** One subject per message, so a resend finds its letter without reading the stream. */
    dlqSubject: (messageId: string) => `${ns}.purchase-dlq.${messageId.replace(/[^A-Za-z0-9_-]/g, '_')}`,
  };
}

/** How long a publish waits for JetStream's acknowledgement when it is not retried. */
const PUBLISH_TIMEOUT_MS = 5000;
/** How long one attempt waits before the same message is sent again (QUEUE_PUBLISH_RETRY_MS > 0). */
const ATTEMPT_TIMEOUT_MS = 1000;
/** First pause before a retry; doubled per attempt up to the last. */
const RETRY_FIRST_MS = 25;
const RETRY_MAX_MS = 400;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const encode = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));
export const decode = <T>(data: Uint8Array): T => JSON.parse(decoder.decode(data)) as T;

interface Outgoing {
  subject: string;
  data: Uint8Array;
  msgId: string;
  token: string;
}

interface AwaitedAck {
  resolve(ack: PubAck): void;
  reject(err: Error): void;
  outgoing: Outgoing;
  /** When this attempt counts as unanswered. */
  deadline: number;
  /** After this, a failed attempt is final. */
  giveUpAt: number;
  attempts: number;
}

/**
 * A failure that a later attempt may not meet: nobody answered (the stream has no leader, or the
 * connection is moving to another server) or JetStream said it is unavailable for now (503).
 */
class TransientPublishError extends Error {}

/**
 * Publishes to JetStream and awaits the acknowledgements in bulk: every publish carries a reply
 * subject under one inbox this connection subscribes to, the publishes of one event-loop turn go
 * out in one socket write, and one timer expires the acknowledgements that never came. (The
 * request path of nats.js makes a timer and an Error, stack and all, for every answered request.)
 *
 * With `retryMs` > 0, a transient failure (no answer in time, "no responders", 503, the connection
 * reconnecting) sends the same message again with the same `Nats-Msg-Id` after a short pause, until
 * `retryMs` has passed since the first attempt: JetStream's de-duplication makes a second copy of a
 * message that did arrive harmless, and a stream electing a new leader (a few seconds) is not a
 * refused purchase. Every attempt uses the same reply token: a late answer to an earlier attempt
 * that arrives while a later one is awaited settles the publish.
 */
class BulkPublisher {
  private readonly inbox = `${createInbox()}.`;
  private readonly awaited = new Map<string, AwaitedAck>();
  /** Publishes pausing before their next attempt. */
  private readonly retrying = new Map<NodeJS.Timeout, AwaitedAck>();
  private readonly outgoing = new TurnBuffer<Outgoing>((batch) => batch.forEach((o) => this.send(o)));
  private readonly expiry: NodeJS.Timeout;
  private readonly attemptMs: number;
  private counter = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly retryMs: number,
  ) {
    this.attemptMs = retryMs > 0 ? Math.min(ATTEMPT_TIMEOUT_MS, retryMs) : PUBLISH_TIMEOUT_MS;
    nc.subscribe(`${this.inbox}*`, { callback: (_err, msg) => this.acknowledged(msg) });
    this.expiry = setInterval(() => this.expire(), Math.min(100, this.attemptMs)).unref();
  }

  publish(subject: string, data: Uint8Array, msgId: string): Promise<PubAck> {
    return new Promise((resolve, reject) => {
      const token = (++this.counter).toString(36);
      const outgoing = { subject, data, msgId, token };
      const now = Date.now();
      this.awaited.set(token, {
        resolve,
        reject,
        outgoing,
        deadline: now + this.attemptMs,
        giveUpAt: now + this.retryMs,
        attempts: 1,
      });
      this.outgoing.add(outgoing);
    });
  }

  close(): void {
    clearInterval(this.expiry);
    const closed = new Error('The purchase queue connection is closed');
    for (const [timer, waiter] of this.retrying) {
      clearTimeout(timer);
      waiter.reject(closed);
    }
    this.retrying.clear();
    this.fail(this.awaited.keys(), closed);
  }

  private send(outgoing: Outgoing): void {
    const h = natsHeaders();
    h.set('Nats-Msg-Id', outgoing.msgId);
    try {
      this.nc.publish(outgoing.subject, outgoing.data, { reply: this.inbox + outgoing.token, headers: h });
    } catch (err) {
      // Closed or draining: no later attempt on this connection can do better.
      this.fail([outgoing.token], err as Error);
    }
  }

  private acknowledged(msg: Msg): void {
    const token = msg.subject.slice(this.inbox.length);
    const waiter = this.awaited.get(token);
    if (!waiter) return;
    // No stream listens on the subject: the server answers "no responders" (status 503, no body).
    if (msg.data.length === 0) {
      return this.failed(token, new TransientPublishError(`No stream answered (${msg.headers?.code})`));
    }
    const ack = decode<PubAck & { error?: { code?: number; description?: string } }>(msg.data);
    if (ack.error) {
      const err = `JetStream refused the message: ${ack.error.description}`;
      if (ack.error.code === 503) return this.failed(token, new TransientPublishError(err));
      this.awaited.delete(token);
      return waiter.reject(new Error(err));
    }
    this.awaited.delete(token);
    waiter.resolve({ ...ack, duplicate: ack.duplicate === true }); // the server omits a false one
  }

  private expire(): void {
    const now = Date.now();
    const late: string[] = [];
    for (const [token, waiter] of this.awaited) if (waiter.deadline <= now) late.push(token);
    for (const token of late)
      this.failed(token, new TransientPublishError('No JetStream acknowledgement in time'));
  }

  /** A failed attempt: sent again after a pause while the bound allows, otherwise rejected. */
  private failed(token: string, err: Error): void {
    const waiter = this.awaited.get(token);
    if (!waiter) return;
    this.awaited.delete(token);
    const pause = Math.min(RETRY_FIRST_MS * 2 ** (waiter.attempts - 1), RETRY_MAX_MS);
    const retry = err instanceof TransientPublishError && Date.now() + pause < waiter.giveUpAt;
    if (!retry || this.nc.isClosed()) return waiter.reject(err);
    const timer = setTimeout(() => {
      this.retrying.delete(timer);
      waiter.attempts++;
      waiter.deadline = Date.now() + Math.min(this.attemptMs, Math.max(1, waiter.giveUpAt - Date.now()));
      this.awaited.set(token, waiter);
      this.send(waiter.outgoing);
    }, pause);
    this.retrying.set(timer, waiter);
  }

  private fail(tokens: Iterable<string>, err: Error): void {
    for (const token of [...tokens]) {
      this.awaited.get(token)?.reject(err);
      this.awaited.delete(token);
    }
  }
}

/**
 * The durable purchase queue on NATS JetStream: a work-queue stream partitioned by sale day
 * (one subject per date), one durable pull consumer shared by every worker, and a dead-letter stream.
 */
export class PurchaseQueue {
  readonly names: ReturnType<typeof queueNames>;
  private readonly publisher: BulkPublisher;
  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    private readonly config: Config,
  ) {
    this.names = queueNames(config.namespace);
    this.publisher = new BulkPublisher(nc, config.queue.publishRetryMs);
  }

  static async open(config: Config, name: string): Promise<PurchaseQueue> {
    const nc = await connect({
      ...natsOptions(config),
      name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: 5000,
      // No Error object (and stack capture) per publish: the crowd publishes thousands a second.
      noAsyncTraces: true,
    });
    const jsm = await nc.jetstreamManager({ timeout: 5000 });
    const queue = new PurchaseQueue(nc, nc.jetstream({ timeout: PUBLISH_TIMEOUT_MS }), jsm, config);
    await queue.ensure();
    return queue;
  }

  /** Creates or updates the streams and the consumer (idempotent; safe from several nodes). */
  async ensure(): Promise<void> {
    const { queue } = this.config;
    const storage = queue.storage === 'memory' ? StorageType.Memory : StorageType.File;
    const streams = [
      {
        name: this.names.stream,
        subjects: [this.names.subjects],
        retention: RetentionPolicy.Workqueue,
        duplicate_window: nanos(queue.duplicateWindowMs),
      },
      {
        name: this.names.dlqStream,
        subjects: [this.names.dlqSubjects],
        retention: RetentionPolicy.Limits,
        duplicate_window: nanos(queue.duplicateWindowMs),
        // Bounded: past either limit the oldest letters go (their results stay FAILED).
        max_age: nanos(queue.dlqMaxAgeHours * 3_600_000),
        max_msgs: queue.dlqMaxMessages,
        discard: DiscardPolicy.Old,
      },
    ];
    for (const stream of streams) {
      const config = { ...stream, storage, num_replicas: queue.replicas };
      try {
        await this.jsm.streams.info(stream.name);
        await this.jsm.streams.update(stream.name, config);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        await this.jsm.streams.add(config).catch((e) => {
          if (!/already in use|exists/i.test(String(e))) throw e;
        });
      }
    }
    const consumer = {
      durable_name: this.names.consumer,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(queue.ackWaitMs),
      // Unlimited here: the worker itself dead-letters past QUEUE_MAX_DELIVER, so a crash during
      // the last delivery still gets one more delivery instead of a message stuck forever.
      max_deliver: -1,
      max_ack_pending: queue.maxAckPending,
      filter_subject: this.names.subjects,
    };
    try {
      await this.jsm.consumers.info(this.names.stream, this.names.consumer);
      await this.jsm.consumers.update(this.names.stream, this.names.consumer, consumer);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await this.jsm.consumers.add(this.names.stream, consumer);
    }
  }

  /** Publishes and waits for JetStream's acknowledgement; the message id de-duplicates republishes. */
  publish(message: PurchaseMessage, msgId = message.messageId): Promise<PubAck> {
    return this.publisher.publish(this.names.subject(message.date), encode(message), msgId);
  }

  /** `sourceSeq` (purchase stream sequence): a resent message's next letter is not de-duplicated. */
  async deadLetter(
    message: PurchaseMessage,
    error: string,
    deliveries: number,
    sourceSeq = 0,
  ): Promise<void> {
    const h = natsHeaders();
    h.set('Miaosha-Error', error.slice(0, 200).replace(/[\r\n]/g, ' '));
    const letter = { ...message, error, deliveries, deadLetteredAt: new Date().toISOString() };
    await this.js.publish(this.names.dlqSubject(message.messageId), encode(letter), {
      msgID: `${message.messageId}:dlq:${sourceSeq}:${deliveries}`,
      headers: h,
    });
  }

  consumerInfo(): Promise<ConsumerInfo> {
    return this.jsm.consumers.info(this.names.stream, this.names.consumer);
  }

  /** The queue's figures: the worker service's `queueStats`, and the monitor's when no worker answers. */
  async stats() {
    const [consumer, dlq] = await Promise.all([
      this.consumerInfo(),
      this.jsm.streams.info(this.names.dlqStream),
    ]);
    return {
      backlog: consumer.num_pending + consumer.num_ack_pending,
      waiting: consumer.num_pending,
      inProgress: consumer.num_ack_pending,
      redelivered: consumer.num_redelivered,
      consumers: consumer.num_waiting,
      ackFloor: consumer.ack_floor.stream_seq,
      deadLetters: dlq.state.messages,
    };
  }

  /** Dead letters, oldest first (at most `limit`). */
  async deadLetters(limit = 100): Promise<{ total: number; letters: DeadLetter[] }> {
    const info = await this.jsm.streams.info(this.names.dlqStream);
    const letters: DeadLetter[] = [];
    // An empty stream reports first_seq 0, and asking JetStream for sequence 0 is a "bad request".
    const first = Math.max(1, info.state.first_seq);
    for (let seq = first; seq <= info.state.last_seq && letters.length < limit; seq++) {
      const stored = await this.getDeadLetter(seq);
      if (stored) letters.push({ ...decode<DeadLetter>(stored.data), seq });
    }
    return { total: info.state.messages, letters };
  }

  /** The newest letter of a message: one lookup by its subject, whatever the stream's size. */
  async findDeadLetter(messageId: string): Promise<DeadLetter | undefined> {
    let stored: StoredMsg;
    try {
      stored = await this.jsm.streams.getMessage(this.names.dlqStream, {
        last_by_subj: this.names.dlqSubject(messageId),
      });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const letter = decode<DeadLetter>(stored.data);
    return letter.messageId === messageId ? { ...letter, seq: stored.seq } : undefined;
  }

  async removeDeadLetter(seq: number): Promise<void> {
    await this.jsm.streams.deleteMessage(this.names.dlqStream, seq, false);
  }

  private async getDeadLetter(seq: number): Promise<StoredMsg | undefined> {
    try {
      return await this.jsm.streams.getMessage(this.names.dlqStream, { seq });
    } catch (err) {
      if (isNotFound(err)) return undefined; // deleted (resent) letters leave gaps
      throw err;
    }
  }

  /** Removes the streams (tests and benchmarks clean up after themselves). */
  async destroy(): Promise<void> {
    for (const stream of [this.names.stream, this.names.dlqStream]) {
      await this.jsm.streams.delete(stream).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => this.nc.close());
    this.publisher.close();
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: string; api_error?: { code?: number; err_code?: number }; message?: string };
  return e?.code === '404' || e?.api_error?.code === 404 || /not found/i.test(e?.message ?? '');
}
