import type { OrderOutcome, PurchaseKey } from '../../machines/purchase.machine';
import type { Settlement } from '../../lib/purchase/reservations';
import {
  OrderWriter,
  type OrderWriterOptions,
  type OrderWriterPorts,
  type PlacedRow,
} from '../../lib/purchase/order-writer';

/**
 * The order writer alone, through in-memory fakes of its two ports: `place_orders` (one call per
 * day and group) and the admission store it settles. The real function and scripts run in the V2
 * integration and fault suites; here the grouping, the batch bound, the isolation of a failing
 * message and the settlements are driven directly.
 */

type Place = (date: string, requests: PurchaseKey[]) => Promise<PlacedRow[]>;

/** `place_orders` over in-memory days and orders: idempotent on message id and on (user, day). */
class FakeOrders {
  readonly remaining = new Map<string, number>();
  readonly users = new Set<number>([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  readonly byMessage = new Map<
    string,
    { orderNo: string; ticketCode: string; userId: number; date: string }
  >();
  /** Each call's date and message ids, in call order. */
  readonly calls: { date: string; ids: string[] }[] = [];
  /** Calls wait for this while it is set (a slow commit). */
  hold?: Promise<void>;
  /** Throws instead of answering, for groups this picks. */
  failure?: (ids: string[]) => Error | undefined;
  private orders = 0;

  readonly place: Place = async (date, requests) => {
    const ids = requests.map((r) => r.messageId);
    this.calls.push({ date, ids });
    await this.hold;
    const err = this.failure?.(ids);
    if (err) throw err;
    return requests.map((r, i): PlacedRow => {
      const row = (outcome: PlacedRow['outcome'], order?: { orderNo: string; ticketCode: string }) => ({
        n: i + 1,
        outcome,
        orderNo: order?.orderNo ?? null,
        ticketCode: order?.ticketCode ?? null,
      });
      const known = this.byMessage.get(r.messageId);
      if (known) return row('exists', known);
      if (!this.remaining.has(date)) return row('no_such_day');
      if (!this.users.has(r.userId)) return row('unknown_user');
      if ([...this.byMessage.values()].some((o) => o.userId === r.userId && o.date === date))
        return row('already_purchased');
      const left = this.remaining.get(date)!;
      if (left <= 0) return row('sold_out');
      this.remaining.set(date, left - 1);
      const order = {
        orderNo: `ORD-${++this.orders}`,
        ticketCode: `TCK-${this.orders}`,
        userId: r.userId,
        date,
      };
      this.byMessage.set(r.messageId, order);
      return row('inserted', order);
    });
  };
}

/** The reservations SETTLE and ADOPT end, in memory. */
class FakeReservations {
  readonly pending = new Set<string>();
  readonly settlements: Settlement[] = [];
  readonly adopted: string[] = [];
  down = false;

  async settleMany(_date: string, items: Settlement[]): Promise<boolean[]> {
    if (this.down) throw new Error('connect ECONNREFUSED');
    this.settlements.push(
      ...items.map(({ userId, messageId, giveBack, claim }) => ({ userId, messageId, giveBack, claim })),
    );
    return items.map((item) => this.pending.delete(item.messageId));
  }

  async adoptOrder(key: PurchaseKey): Promise<boolean> {
    this.adopted.push(key.messageId);
    return true;
  }
}

const D1 = '2026-03-01';
const D2 = '2026-03-02';

function setup(opts: Partial<OrderWriterOptions> = {}) {
  const orders = new FakeOrders();
  orders.remaining.set(D1, 100).set(D2, 100);
  const reservations = new FakeReservations();
  const batches: number[] = [];
  const returned: string[] = [];
  const ports: OrderWriterPorts = {
    placeOrders: (date, requests) => orders.place(date, requests),
    settleMany: (date, items) => reservations.settleMany(date, items),
    adoptOrder: (key) => reservations.adoptOrder(key),
  };
  const writer = new OrderWriter(ports, {
    batchSize: 50,
    batchMs: 1,
    lockTimeoutMs: 1000,
    onBatch: (size) => batches.push(size),
    onStockReturned: (date) => returned.push(date),
    ...opts,
  });
  /** Submits a purchase whose reservation is pending, as the worker does after an admission. */
  const submit = (messageId: string, userId: number, date = D1) => {
    reservations.pending.add(messageId);
    return writer.submit({ messageId, userId, date });
  };
  return { writer, orders, reservations, batches, returned, submit };
}

/** Waits (on the event loop, without a clock bound) until `check` holds. */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 10_000 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 1));
  if (!check()) throw new Error('condition never held');
}

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

const ok = (outcome: OrderOutcome) => expect(outcome).toMatchObject({ kind: 'success' });

describe('OrderWriter with fake ports', () => {
  let writer: OrderWriter | undefined;
  afterEach(() => writer?.close());

  it('commits each day in its own lane, and groups what arrives during a commit (group commit)', async () => {
    const t = setup();
    writer = t.writer;
    const slow = gate();
    t.orders.hold = slow.opened;
    let firstDone = false;
    const first = t.submit('a1', 1).then((o) => ((firstDone = true), o));
    await until(() => t.orders.calls.length === 1);

    // Arrive together while day 1 commits: day 2 does not wait for it; day 1's two go as one group.
    const rest = [t.submit('a2', 2), t.submit('a3', 3), t.submit('b1', 1, D2)];
    await until(() => t.orders.calls.length === 2);
    expect(t.orders.calls[1]).toEqual({ date: D2, ids: ['b1'] });
    expect(firstDone).toBe(false); // its promise waits for its commit

    slow.open();
    for (const outcome of await Promise.all([first, ...rest])) ok(outcome);
    expect(t.orders.calls).toEqual([
      { date: D1, ids: ['a1'] },
      { date: D2, ids: ['b1'] },
      { date: D1, ids: ['a2', 'a3'] },
    ]);
    expect(t.batches.sort()).toEqual([1, 1, 2]);
  });

  it('never writes more than a batch in one call', async () => {
    const t = setup({ batchSize: 3 });
    writer = t.writer;
    const slow = gate();
    t.orders.hold = slow.opened;
    const all = [1, 2, 3, 4, 5, 6, 7].map((u) => t.submit(`m${u}`, u));
    // Submitted with the last one: once day 2's call is made, all seven are in day 1's lane.
    all.push(t.submit('other-day', 1, D2));
    await until(() => t.orders.calls.length === 2);
    slow.open();
    for (const outcome of await Promise.all(all)) ok(outcome);
    expect(t.orders.calls.map((c) => c.ids.length).every((n) => n <= 3)).toBe(true);
    const day1 = t.orders.calls.filter((c) => c.date === D1).flatMap((c) => c.ids);
    expect(day1.sort()).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
  });

  it('maps each row to its outcome and settles each reservation accordingly', async () => {
    const t = setup();
    writer = t.writer;
    t.orders.remaining.set(D1, 2);
    const outcomes = await Promise.all([
      t.submit('buy', 1),
      t.submit('twice', 1), // the same user and day: already purchased
      t.submit('stranger', 99), // no such user
      t.submit('last', 2),
      t.submit('late', 3), // sold out in the database
      t.submit('nowhere', 4, '2026-04-01'),
    ]);
    expect(outcomes).toEqual([
      { kind: 'success', orderNo: 'ORD-1', ticketCode: 'TCK-1' },
      { kind: 'rejected', errorCode: 6005, errorMessage: expect.any(String) },
      { kind: 'rejected', errorCode: 6006, errorMessage: expect.any(String) },
      { kind: 'success', orderNo: 'ORD-2', ticketCode: 'TCK-2' },
      { kind: 'rejected', errorCode: 6002, errorMessage: expect.any(String) },
      { kind: 'rejected', errorCode: 6001, errorMessage: expect.any(String) },
    ]);
    const byId = new Map(t.reservations.settlements.map((s) => [s.messageId, s]));
    expect(byId.get('buy')).toMatchObject({ giveBack: false, claim: 'keep' });
    expect(byId.get('last')).toMatchObject({ giveBack: false, claim: 'keep' });
    // A database sell-out means the reservation was a phantom: nothing goes back.
    expect(byId.get('late')).toMatchObject({ giveBack: false, claim: 'drop' });
    for (const id of ['twice', 'stranger', 'nowhere'])
      expect(byId.get(id)).toMatchObject({ giveBack: true, claim: 'drop' });
    // Tickets went back to both days' stock, each announced once it is back.
    expect(t.returned.sort()).toEqual([D1, '2026-04-01']);
    expect(t.reservations.adopted).toEqual([]);
  });

  it('a redelivered message is answered from its order and not counted twice', async () => {
    const t = setup();
    writer = t.writer;
    const first = await t.submit('m1', 1);
    const again = await t.writer.submit({ messageId: 'm1', userId: 1, date: D1 }); // settled already
    expect(again).toEqual(first);
    expect(t.orders.remaining.get(D1)).toBe(99);
    // Its reservation was settled by the first delivery: an existing order is not adopted.
    expect(t.reservations.adopted).toEqual([]);
  });

  it('adopts a new order whose reservation the cache no longer holds', async () => {
    const t = setup();
    writer = t.writer;
    const lost = t.writer.submit({ messageId: 'lost', userId: 1, date: D1 }); // no pending reservation
    const [lostOutcome, keptOutcome] = await Promise.all([lost, t.submit('kept', 2)]);
    ok(lostOutcome);
    ok(keptOutcome);
    expect(t.reservations.adopted).toEqual(['lost']);
  });

  it('isolates a message that fails its group: the others are written alone and succeed', async () => {
    const t = setup();
    writer = t.writer;
    t.orders.failure = (ids) => (ids.includes('poison') ? new Error('invalid input syntax') : undefined);
    const slow = gate();
    t.orders.hold = slow.opened;
    const warm = t.submit('warm', 9);
    await until(() => t.orders.calls.length === 1);
    const group = [t.submit('a', 1), t.submit('poison', 2), t.submit('b', 3)];
    const settledGroup = Promise.allSettled(group);
    slow.open();
    ok(await warm);
    const [a, poison, b] = await settledGroup;
    expect(a).toMatchObject({ status: 'fulfilled', value: { kind: 'success' } });
    expect(b).toMatchObject({ status: 'fulfilled', value: { kind: 'success' } });
    expect(poison).toMatchObject({ status: 'rejected', reason: { message: 'invalid input syntax' } });
    expect(t.orders.calls.slice(1).map((c) => c.ids)).toEqual([
      ['a', 'poison', 'b'],
      ['a'],
      ['poison'],
      ['b'],
    ]);
  });

  it('fails the whole group at once when the database is unreachable (no one-by-one retries)', async () => {
    const t = setup();
    writer = t.writer;
    const down = Object.assign(new Error('connect ECONNREFUSED'), {
      name: 'SequelizeConnectionRefusedError',
    });
    t.orders.failure = () => down;
    const results = await Promise.allSettled([t.submit('a', 1), t.submit('b', 2)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(t.orders.calls).toHaveLength(1);
    expect(t.reservations.settlements).toEqual([]);
  });

  it('distrusts an answer with the wrong number of rows and writes each request alone', async () => {
    const t = setup();
    writer = t.writer;
    const place = t.orders.place;
    const ports: OrderWriterPorts = {
      placeOrders: async (date, requests) => {
        const rows = await place(date, requests);
        return requests.length > 1 ? [...rows, rows[0]] : rows; // one row too many
      },
      settleMany: (date, items) => t.reservations.settleMany(date, items),
      adoptOrder: (key) => t.reservations.adoptOrder(key),
    };
    writer.close();
    writer = new OrderWriter(ports, { batchSize: 50, batchMs: 1, lockTimeoutMs: 1000 });
    const outcomes = await Promise.all([
      writer.submit({ messageId: 'x', userId: 1, date: D1 }),
      writer.submit({ messageId: 'y', userId: 2, date: D1 }),
    ]);
    // The first call's rows were not used: the calls alone find those orders and answer them.
    for (const outcome of outcomes) ok(outcome);
    expect(t.orders.calls.map((c) => c.ids)).toEqual([['x', 'y'], ['x'], ['y']]);
  });

  it('answers once the order is durable even when the admission store is away (reconcile repairs it)', async () => {
    const t = setup();
    writer = t.writer;
    t.reservations.down = true;
    ok(await t.submit('m1', 1));
    expect(t.orders.byMessage.has('m1')).toBe(true);
    expect(t.returned).toEqual([]);
  });
});
