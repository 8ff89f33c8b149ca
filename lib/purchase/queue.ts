import {
  AckPolicy,
  connect,
  DeliverPolicy,
  headers as natsHeaders,
  nanos,
  RetentionPolicy,
  StorageType,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  type PubAck,
  type StoredMsg,
} from 'nats';
import type { Config } from '../../config';

/** What travels on the queue for each accepted purchase. */
export interface PurchaseMessage {
  messageId: string;
  userId: number;
  date: string;
  queuedAt: string;
}

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
    dlqSubject: (date: string) => `${ns}.purchase-dlq.${date}`,
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const encode = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));
export const decode = <T>(data: Uint8Array): T => JSON.parse(decoder.decode(data)) as T;

/**
 * The durable purchase queue on NATS JetStream: a work-queue stream partitioned by sale day
 * (one subject per date), one durable pull consumer shared by every worker, and a dead-letter stream.
 */
export class PurchaseQueue {
  readonly names: ReturnType<typeof queueNames>;
  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    private readonly config: Config,
  ) {
    this.names = queueNames(config.namespace);
  }

  static async open(config: Config, name: string): Promise<PurchaseQueue> {
    const nc = await connect({
      servers: config.natsUrl.split(','),
      name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: 5000,
      // No Error object (and stack capture) per publish: the crowd publishes thousands a second.
      noAsyncTraces: true,
    });
    const jsm = await nc.jetstreamManager({ timeout: 5000 });
    const queue = new PurchaseQueue(nc, nc.jetstream({ timeout: 5000 }), jsm, config);
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
    return this.js.publish(this.names.subject(message.date), encode(message), { msgID: msgId });
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
    await this.js.publish(this.names.dlqSubject(message.date), encode(letter), {
      msgID: `${message.messageId}:dlq:${sourceSeq}:${deliveries}`,
      headers: h,
    });
  }

  consumerInfo(): Promise<ConsumerInfo> {
    return this.jsm.consumers.info(this.names.stream, this.names.consumer);
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

  async findDeadLetter(messageId: string): Promise<DeadLetter | undefined> {
    const info = await this.jsm.streams.info(this.names.dlqStream);
    for (let seq = info.state.last_seq; seq >= info.state.first_seq && seq > 0; seq--) {
      const stored = await this.getDeadLetter(seq);
      if (!stored) continue;
      const letter = decode<DeadLetter>(stored.data);
      if (letter.messageId === messageId) return { ...letter, seq };
    }
    return undefined;
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
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: string; api_error?: { code?: number; err_code?: number }; message?: string };
  return e?.code === '404' || e?.api_error?.code === 404 || /not found/i.test(e?.message ?? '');
}
