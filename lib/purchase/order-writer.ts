import { QueryTypes, type Sequelize } from 'sequelize';
import type Redis from 'ioredis';
import type { OrderOutcome, PurchaseKey } from '../../machines/purchase.machine';
import { ERRORS, isTransientError } from '../errors';
import { TurnBuffer } from '../turn-buffer';
import { adoptOrder, settleMany, type Settlement } from './reservations';

/** One row of `place_orders` (migration 002), in the order of the requests. */
export interface PlacedRow {
  n: number;
  outcome: 'inserted' | 'exists' | 'no_such_day' | 'unknown_user' | 'already_purchased' | 'sold_out';
  orderNo: string | null;
  ticketCode: string | null;
}

/**
 * The order writer's two ports: the database function that places one day's orders, and the
 * admission store whose reservations it settles. The real ones are `orderWriterPorts` below; its
 * unit test uses in-memory fakes.
 */
export interface OrderWriterPorts {
  /** One `place_orders` call (one statement, its own transaction) for requests of one sale day. */
  placeOrders(date: string, requests: PurchaseKey[], lockTimeoutMs: number): Promise<PlacedRow[]>;
  /** Ends reservations of one day in one call; true for each that was still pending. */
  settleMany(date: string, items: Settlement[]): Promise<boolean[]>;
  /** Counts an order whose reservation the cache no longer holds. */
  adoptOrder(key: PurchaseKey): Promise<boolean>;
}

/** The ports on PostgreSQL (the writer's own pool) and Redis. */
export function orderWriterPorts(db: Sequelize, redis: Redis): OrderWriterPorts {
  return {
    placeOrders: (date, requests, lockTimeoutMs) =>
      db.query<PlacedRow>(
        'SELECT n, outcome, order_no AS "orderNo", ticket_code AS "ticketCode" FROM place_orders($1, $2, $3, $4)',
        {
          bind: [
            date,
            requests.map((p) => p.messageId),
            requests.map((p) => p.userId),
            Math.floor(lockTimeoutMs),
          ],
          type: QueryTypes.SELECT,
        },
      ),
    settleMany: (date, items) => settleMany(redis, date, items),
    adoptOrder: (key) => adoptOrder(redis, key, key.messageId),
  };
}

interface Pending extends PurchaseKey {
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

function outcomeOf(row: PlacedRow): OrderOutcome {
  switch (row.outcome) {
    case 'inserted':
    case 'exists':
      return { kind: 'success', orderNo: row.orderNo!, ticketCode: row.ticketCode! };
    case 'no_such_day':
      return rejected(ERRORS.NO_SUCH_DAY);
    case 'unknown_user':
      return rejected(ERRORS.UNKNOWN_USER);
    case 'already_purchased':
      return rejected(ERRORS.ALREADY_PURCHASED);
    case 'sold_out':
      return rejected(ERRORS.SOLD_OUT);
  }
}

/**
 * Turns purchase messages into orders in batches: requests that arrive together are buffered
 * (WORKER_BATCH_MS from the first one) and written in one statement per sale day, the database function
 * `place_orders` (one round trip): one row lock, one multi-row insert that is idempotent on message
 * id and (user, day), one stock decrement.
 * Each day is a lane that commits one batch at a time (its row lock serializes them anyway); what
 * arrives while a batch commits is written together next (group commit), so batches grow with the
 * load instead of queueing up as many small transactions.
 * Each request's promise settles after the commit, so its message is acked only once durable.
 */
export class OrderWriter {
  private readonly requests: TurnBuffer<Pending>;
  private readonly lanes = new Map<string, { pending: Pending[]; busy: boolean }>();
  private closed = false;

  constructor(
    private readonly ports: OrderWriterPorts,
    private readonly opts: OrderWriterOptions,
  ) {
    this.requests = new TurnBuffer<Pending>(
      (batch) => {
        for (const p of batch) this.lane(p.date).pending.push(p);
        for (const date of new Set(batch.map((p) => p.date))) this.flush(date);
      },
      opts.batchSize,
      opts.batchMs,
    );
  }

  submit(request: PurchaseKey): Promise<OrderOutcome> {
    if (this.closed) return Promise.reject(new Error('The order writer is closed'));
    return new Promise((resolve, reject) => this.requests.add({ ...request, resolve, reject }));
  }

  close(): void {
    this.closed = true;
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

  /** One statement (its own transaction) for one day's requests; returns each request's outcome in order. */
  private async commit(group: Pending[]): Promise<OrderOutcome[]> {
    const rows = await this.ports.placeOrders(group[0].date, group, this.opts.lockTimeoutMs);
    if (rows.length !== group.length)
      throw new Error(`place_orders answered ${rows.length} rows for ${group.length} requests`);
    return group.map((p, i) => {
      const row = rows[i];
      p.inserted = row.outcome === 'inserted';
      return outcomeOf(row);
    });
  }

  /** Brings each admission reservation to its end now that the database has decided. */
  private async settleReservations(group: Pending[], outcomes: OrderOutcome[]): Promise<void> {
    // Built field by field: a spread of the pending request (with its callbacks) cost a worker ~3 % of its drain.
    const items: Settlement[] = group.map(({ userId, messageId }, i) => {
      const outcome = outcomes[i];
      if (outcome.kind === 'success') return { userId, messageId, giveBack: false, claim: 'keep' };
      // Sold out in the database: the Redis reservation was a phantom, so nothing goes back.
      const giveBack = outcome.errorCode !== ERRORS.SOLD_OUT.code;
      return { userId, messageId, giveBack, claim: 'drop' };
    });
    try {
      // One call for the whole group (one sale day).
      const settled = await this.ports.settleMany(group[0].date, items);
      // Announced once the ticket is really back in Redis, so a gateway told "stock returned" finds it.
      if (items.some((item, i) => item.giveBack && settled[i])) this.opts.onStockReturned?.(group[0].date);
      // A new order whose reservation the cache no longer holds (Redis lost it, or a gateway undid
      // it after a publish that looked failed) is counted now, or the cache would keep offering its
      // ticket and forget the user's claim.
      await Promise.all(
        group.map((p, i) =>
          !settled[i] && p.inserted && outcomes[i].kind === 'success' ? this.ports.adoptOrder(p) : undefined,
        ),
      );
    } catch {
      // Redis only admits: a missed settle is repaired by reconcile.
    }
  }
}
