import { bufferTime, filter, Subject, type Subscription } from 'rxjs';
import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';
import type Redis from 'ioredis';
import type { OrderOutcome } from '../../machines/purchase.machine';
import { ERRORS, isTransientError } from '../errors';
import { adoptOrder, settleMany, type Settlement } from './admission';

export interface OrderRequest {
  messageId: string;
  userId: number;
  date: string;
}

interface Pending extends OrderRequest {
  resolve(outcome: OrderOutcome): void;
  reject(err: unknown): void;
  /** Its order was inserted by the commit that decided it (not found from an earlier delivery). */
  inserted?: boolean;
}

export interface OrderWriterOptions {
  batchSize: number;
  batchMs: number;
  lockTimeoutMs: number;
  onBatch?: (size: number, ms: number) => void;
  /** A reserved ticket went back to the admission stock (gateways may have marked the day sold out). */
  onStockReturned?: (date: string) => void;
}

const rejected = (err: (typeof ERRORS)[keyof typeof ERRORS], message?: string): OrderOutcome => ({
  kind: 'rejected',
  errorCode: err.code,
  errorMessage: message ?? err.message,
});

/**
 * Turns purchase messages into orders in batches: requests that arrive together are buffered
 * (RxJS, by time and count) and written in one transaction per sale day — one row lock, one
 * conditional stock decrement, one multi-row insert that is idempotent on message id and (user, day).
 * Each day is a lane that commits one batch at a time (its row lock serializes them anyway); what
 * arrives while a batch commits is written together next (group commit), so batches grow with the
 * load instead of queueing up as many small transactions.
 * Each request's promise settles after the commit, so its message is acked only once durable.
 */
export class OrderWriter {
  private readonly requests$ = new Subject<Pending>();
  private readonly subscription: Subscription;
  private readonly lanes = new Map<string, { pending: Pending[]; busy: boolean }>();

  constructor(
    private readonly db: Sequelize,
    private readonly redis: Redis,
    private readonly opts: OrderWriterOptions,
  ) {
    this.subscription = this.requests$
      .pipe(
        bufferTime(opts.batchMs, null, opts.batchSize),
        filter((batch) => batch.length > 0),
      )
      .subscribe((batch) => {
        for (const p of batch) this.lane(p.date).pending.push(p);
        for (const date of new Set(batch.map((p) => p.date))) this.flush(date);
      });
  }

  submit(request: OrderRequest): Promise<OrderOutcome> {
    return new Promise((resolve, reject) => this.requests$.next({ ...request, resolve, reject }));
  }

  close(): void {
    this.requests$.complete();
    this.subscription.unsubscribe();
  }

  private lane(date: string) {
    let lane = this.lanes.get(date);
    if (!lane) {
      lane = { pending: [], busy: false };
      this.lanes.set(date, lane);
    }
    return lane;
  }

  private flush(date: string): void {
    const lane = this.lane(date);
    if (lane.busy || lane.pending.length === 0) return;
    lane.busy = true;
    const group = lane.pending.splice(0, this.opts.batchSize);
    void this.writeDay(group).finally(() => {
      lane.busy = false;
      this.flush(date);
    });
  }

  /** Commits one day's group; resolves when the lane may commit the next one. */
  private async writeDay(group: Pending[]): Promise<void> {
    const started = Date.now();
    let outcomes: OrderOutcome[];
    try {
      outcomes = await this.commit(group);
    } catch (err) {
      if (group.length > 1 && !isTransientError(err)) {
        // One bad message must not fail its neighbours: write each alone to isolate it.
        for (const p of group) await this.writeDay([p]);
        return;
      }
      for (const p of group) p.reject(err);
      return;
    }
    this.opts.onBatch?.(group.length, Date.now() - started);
    void this.settleReservations(group, outcomes).then(() => group.forEach((p, i) => p.resolve(outcomes[i])));
  }

  /** One transaction for one day's requests; returns each request's outcome in order. */
  private commit(group: Pending[]): Promise<OrderOutcome[]> {
    const date = group[0].date;
    for (const p of group) p.inserted = false;
    return this.db.transaction(async (transaction) => {
      const q = <T extends object>(sql: string, bind: unknown[]) =>
        this.db.query<T>(sql, { bind, type: QueryTypes.SELECT, transaction });
      await this.db.query(`SET LOCAL lock_timeout = ${Math.floor(this.opts.lockTimeoutMs)}`, { transaction });
      const [day] = await q<{ remaining: number; status: string }>(
        'SELECT remaining, status FROM ticket_days WHERE date = $1 FOR UPDATE',
        [date],
      );
      if (!day || day.status !== 'on_sale') return group.map(() => rejected(ERRORS.NO_SUCH_DAY));

      const messageIds = group.map((p) => p.messageId);
      const userIds = [...new Set(group.map((p) => p.userId))];
      // One connection per transaction: its queries run one after another.
      const done = await q<{ messageId: string; orderNo: string; ticketCode: string; status: string }>(
        `SELECT message_id AS "messageId", order_no AS "orderNo", ticket_code AS "ticketCode", status
         FROM orders WHERE message_id = ANY($1::varchar[])`,
        [messageIds],
      );
      const holders = await q<{ userId: number; messageId: string | null }>(
        `SELECT user_id AS "userId", message_id AS "messageId" FROM orders
         WHERE date = $1 AND status = 'valid' AND user_id = ANY($2::bigint[])`,
        [date, userIds],
      );
      const known = await q<{ id: number }>('SELECT id FROM users WHERE id = ANY($1::bigint[])', [userIds]);
      const doneById = new Map(done.map((o) => [o.messageId, o]));
      const holderOf = new Map(holders.map((h) => [h.userId, h.messageId]));
      const knownUsers = new Set(known.map((u) => u.id));

      const outcomes: (OrderOutcome | null)[] = group.map(() => null);
      const candidates: number[] = [];
      const claimed = new Set<number>();
      const firstOf = new Map<string, number>();
      group.forEach((p, i) => {
        // A second copy of a message in this batch (a redelivery racing the original) shares its outcome.
        if (firstOf.has(p.messageId)) return;
        firstOf.set(p.messageId, i);
        const existing = doneById.get(p.messageId);
        if (existing) {
          // A redelivery of a message whose order is already committed: same ticket.
          outcomes[i] = { kind: 'success', orderNo: existing.orderNo, ticketCode: existing.ticketCode };
        } else if (!knownUsers.has(p.userId)) {
          outcomes[i] = rejected(ERRORS.UNKNOWN_USER);
        } else if (holderOf.has(p.userId) || claimed.has(p.userId)) {
          outcomes[i] = rejected(ERRORS.ALREADY_PURCHASED);
        } else {
          claimed.add(p.userId);
          candidates.push(i);
        }
      });

      const granted = candidates.slice(0, Math.max(0, day.remaining));
      for (const i of candidates.slice(granted.length)) outcomes[i] = rejected(ERRORS.SOLD_OUT);
      if (granted.length > 0) {
        const inserted = await this.insertOrders(
          date,
          granted.map((i) => group[i]),
          transaction,
        );
        for (const i of granted) {
          const row = inserted.get(group[i].messageId);
          outcomes[i] = row ? { kind: 'success', ...row } : rejected(ERRORS.ALREADY_PURCHASED);
          group[i].inserted = row !== undefined;
        }
        if (inserted.size > 0) {
          await this.db.query(
            `UPDATE ticket_days SET remaining = remaining - $2, sold = sold + $2, version = version + 1,
               updated_at = now() WHERE date = $1`,
            { bind: [date, inserted.size], transaction },
          );
        }
      }
      group.forEach((p, i) => (outcomes[i] ??= outcomes[firstOf.get(p.messageId)!]));
      return outcomes as OrderOutcome[];
    });
  }

  private async insertOrders(
    date: string,
    requests: OrderRequest[],
    transaction: Transaction,
  ): Promise<Map<string, { orderNo: string; ticketCode: string }>> {
    const rows = await this.db.query<{ messageId: string; orderNo: string; ticketCode: string }>(
      `INSERT INTO orders (message_id, user_id, date, ticket_code)
       SELECT m, u, $1::date, make_ticket_code($1::date)
       FROM unnest($2::varchar[], $3::bigint[]) WITH ORDINALITY AS x(m, u, n) ORDER BY n
       ON CONFLICT DO NOTHING
       RETURNING message_id AS "messageId", order_no AS "orderNo", ticket_code AS "ticketCode"`,
      {
        bind: [date, requests.map((r) => r.messageId), requests.map((r) => r.userId)],
        type: QueryTypes.SELECT,
        transaction,
      },
    );
    return new Map(rows.map((r) => [r.messageId, { orderNo: r.orderNo, ticketCode: r.ticketCode }]));
  }

  /** Brings each admission reservation to its end now that the database has decided. */
  private async settleReservations(group: Pending[], outcomes: OrderOutcome[]): Promise<void> {
    const items: Settlement[] = group.map((p, i) => {
      const outcome = outcomes[i];
      if (outcome.kind === 'success') return { ...p, giveBack: false, claim: 'keep' };
      // Sold out in the database: the Redis reservation was a phantom, so nothing goes back.
      const giveBack = outcome.errorCode !== ERRORS.SOLD_OUT.code;
      if (giveBack) this.opts.onStockReturned?.(p.date);
      return { ...p, giveBack, claim: 'drop' };
    });
    try {
      // One call for the whole group (one sale day).
      const settled = await settleMany(this.redis, group[0].date, items);
      // A new order whose reservation the cache no longer holds (Redis lost it, or a gateway undid
      // it after a publish that looked failed) is counted now, or the cache would keep offering its
      // ticket and forget the user's claim.
      await Promise.all(
        group.map((p, i) =>
          !settled[i] && p.inserted && outcomes[i].kind === 'success'
            ? adoptOrder(this.redis, p, p.messageId)
            : undefined,
        ),
      );
    } catch {
      // Redis only admits: a missed settle is repaired by reconcile.
    }
  }
}
