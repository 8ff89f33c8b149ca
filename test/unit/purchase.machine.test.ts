import { SimulatedClock, createActor, toPromise, type Actor } from 'xstate';

import {
  SYSTEM_ERROR_CODE,
  SYSTEM_ERROR_MESSAGE,
  TERMINAL_STATUSES,
  isTerminal,
  orderPlacer,
  purchaseMachine,
  type OrderOutcome,
  type ProcessOrderInput,
  type PurchaseMachineInput,
  type StatusReport,
} from '../../machines/purchase.machine';

type Call =
  | { action: 'report'; params: StatusReport }
  | { action: 'ack' }
  | { action: 'nak'; params: { delayMs: number } }
  | { action: 'deadLetter'; params: { errorMessage: string } };

/** One scripted placeOrder result: resolve with an outcome or reject with any value. */
type Step = OrderOutcome | { reject: unknown };

const BASE_INPUT: PurchaseMachineInput = {
  messageId: 'msg-1',
  userId: 42,
  date: '2026-02-01',
  deliveryCount: 1,
  maxDeliver: 5,
  retryAttempts: 3,
  retryBaseMs: 100,
  delayMs: 1000,
};

const OK: OrderOutcome = { kind: 'success', orderNo: 'ORD-1', ticketCode: 'TCK-1' };
const SOLD_OUT: OrderOutcome = { kind: 'rejected', errorCode: 6002, errorMessage: 'Sold out' };
const DB_DOWN = { reject: new Error('database unavailable') };

// Lets the placeOrder promise settle and its ORDER.PLACED / ORDER.FAILED event reach the actor.
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Harness {
  actor: Actor<typeof purchaseMachine>;
  clock: SimulatedClock;
  calls: Call[];
  inputs: ProcessOrderInput[];
  transientChecks: unknown[];
  reports: () => StatusReport[];
}

function harness(
  steps: Step[],
  overrides: Partial<PurchaseMachineInput> = {},
  isTransient: (error: unknown) => boolean = () => true,
): Harness {
  const calls: Call[] = [];
  const inputs: ProcessOrderInput[] = [];
  const transientChecks: unknown[] = [];
  const script = [...steps];
  const machine = purchaseMachine.provide({
    actions: {
      report: (_, params) => calls.push({ action: 'report', params }),
      ack: () => calls.push({ action: 'ack' }),
      nak: (_, params) => calls.push({ action: 'nak', params }),
      deadLetter: (_, params) => calls.push({ action: 'deadLetter', params }),
      placeOrder: orderPlacer(async (input) => {
        inputs.push(input);
        const step = script.shift();
        if (step === undefined) throw new Error('test script exhausted');
        if ('reject' in step) throw step.reject;
        return step;
      }),
    },
    guards: {
      isTransient: (_, { error }) => {
        transientChecks.push(error);
        return isTransient(error);
      },
    },
  });
  const clock = new SimulatedClock();
  const actor = createActor(machine, { input: { ...BASE_INPUT, ...overrides }, clock });
  const reports = (): StatusReport[] => calls.flatMap((c) => (c.action === 'report' ? [c.params] : []));
  return { actor, clock, calls, inputs, transientChecks, reports };
}

/** Starts the machine and lets the first placeOrder call settle. */
async function run(h: Harness): Promise<void> {
  h.actor.start();
  await flush();
}

describe('purchase machine: exported helpers', () => {
  it('treats only SUCCESS and FAILED as terminal', () => {
    expect(TERMINAL_STATUSES).toEqual(['SUCCESS', 'FAILED']);
    expect(SYSTEM_ERROR_CODE).toBe(5000);
    expect(purchaseMachine.id).toBe('purchase');
    for (const s of ['SUCCESS', 'FAILED']) expect(isTerminal(s)).toBe(true);
    for (const s of ['PENDING', 'PROCESSING', 'RETRYING', 'DELAYED', 'success', '']) {
      expect(isTerminal(s)).toBe(false);
    }
  });
});

describe('purchase machine', () => {
  it('does nothing until started, then reports PROCESSING and places the order once', async () => {
    const h = harness([OK]);
    await flush();
    expect(h.calls).toEqual([]);
    expect(h.inputs).toEqual([]);
    h.actor.start();
    expect(h.calls[0]).toEqual({ action: 'report', params: { status: 'PROCESSING', attempts: 1 } });
    expect(h.inputs).toEqual([
      { messageId: BASE_INPUT.messageId, userId: BASE_INPUT.userId, date: BASE_INPUT.date, attempt: 1 },
    ]);
  });

  it('first-try success: PROCESSING, SUCCESS, ack; output acked', async () => {
    const h = harness([OK]);
    const done = toPromise(h.actor);
    await run(h);
    await expect(done).resolves.toEqual({ status: 'SUCCESS', disposition: 'acked' });
    expect(h.calls).toEqual([
      { action: 'report', params: { status: 'PROCESSING', attempts: 1 } },
      { action: 'report', params: { status: 'SUCCESS', attempts: 1, orderNo: 'ORD-1', ticketCode: 'TCK-1' } },
      { action: 'ack' },
    ]);
    expect(h.inputs).toEqual([{ messageId: 'msg-1', userId: 42, date: '2026-02-01', attempt: 1 }]);
    expect(h.actor.getSnapshot().value).toBe('success');
  });

  it('business rejection: FAILED with its code, ack, no retry', async () => {
    const h = harness([SOLD_OUT]);
    const done = toPromise(h.actor);
    await run(h);
    await expect(done).resolves.toEqual({ status: 'FAILED', disposition: 'acked' });
    expect(h.calls).toEqual([
      { action: 'report', params: { status: 'PROCESSING', attempts: 1 } },
      {
        action: 'report',
        params: { status: 'FAILED', attempts: 1, errorCode: 6002, errorMessage: 'Sold out' },
      },
      { action: 'ack' },
    ]);
    expect(h.inputs).toHaveLength(1);
    expect(h.transientChecks).toEqual([]);
  });

  it.each([6001, 6002, 6005, 6006])('business code %i is terminal at once', async (errorCode) => {
    const h = harness([{ kind: 'rejected', errorCode, errorMessage: `code ${errorCode}` }]);
    const done = toPromise(h.actor);
    await run(h);
    await expect(done).resolves.toEqual({ status: 'FAILED', disposition: 'acked' });
    expect(h.reports().at(-1)).toEqual({
      status: 'FAILED',
      attempts: 1,
      errorCode,
      errorMessage: `code ${errorCode}`,
    });
    expect(h.calls.at(-1)).toEqual({ action: 'ack' });
  });

  it('transient errors retry with doubling backoff, only when the clock advances', async () => {
    const h = harness([DB_DOWN, DB_DOWN, OK], { retryBaseMs: 100 });
    const done = toPromise(h.actor);
    await run(h);

    expect(h.actor.getSnapshot().value).toBe('retrying');
    expect(h.reports()).toEqual([
      { status: 'PROCESSING', attempts: 1 },
      { status: 'RETRYING', attempts: 1, retryInMs: 100 },
    ]);
    h.clock.increment(99);
    await flush();
    expect(h.inputs).toHaveLength(1);
    expect(h.calls).toHaveLength(2);

    h.clock.increment(1);
    await flush();
    expect(h.inputs).toHaveLength(2);
    expect(h.reports().slice(2)).toEqual([
      { status: 'PROCESSING', attempts: 2 },
      { status: 'RETRYING', attempts: 2, retryInMs: 200 },
    ]);

    h.clock.increment(199);
    await flush();
    expect(h.inputs).toHaveLength(2);
    h.clock.increment(1);
    await flush();

    await expect(done).resolves.toEqual({ status: 'SUCCESS', disposition: 'acked' });
    expect(h.reports().slice(4)).toEqual([
      { status: 'PROCESSING', attempts: 3 },
      { status: 'SUCCESS', attempts: 3, orderNo: 'ORD-1', ticketCode: 'TCK-1' },
    ]);
    expect(h.calls.at(-1)).toEqual({ action: 'ack' });
    expect(h.inputs.map((i) => i.attempt)).toEqual([1, 2, 3]);
    expect(h.calls.some((c) => c.action === 'nak' || c.action === 'deadLetter')).toBe(false);
  });

  it('a business rejection after a retry is still terminal', async () => {
    const h = harness([DB_DOWN, SOLD_OUT]);
    const done = toPromise(h.actor);
    await run(h);
    h.clock.increment(100);
    await flush();
    await expect(done).resolves.toEqual({ status: 'FAILED', disposition: 'acked' });
    expect(h.reports().map((r) => r.status)).toEqual(['PROCESSING', 'RETRYING', 'PROCESSING', 'FAILED']);
    expect(h.reports().at(-1)?.errorCode).toBe(6002);
  });

  it('retries exhausted on a non-final delivery: DELAYED and nak with the delivery backoff', async () => {
    const h = harness([DB_DOWN, DB_DOWN, DB_DOWN], {
      deliveryCount: 2,
      maxDeliver: 5,
      retryAttempts: 2,
      retryBaseMs: 10,
      delayMs: 1000,
    });
    const done = toPromise(h.actor);
    await run(h);
    h.clock.increment(10);
    await flush();
    h.clock.increment(20);
    await flush();

    await expect(done).resolves.toEqual({ status: 'DELAYED', disposition: 'requeued' });
    expect(h.inputs.map((i) => i.attempt)).toEqual([1, 2, 3]);
    expect(h.calls.slice(-2)).toEqual([
      { action: 'report', params: { status: 'DELAYED', attempts: 6, retryInMs: 2000 } },
      { action: 'nak', params: { delayMs: 2000 } },
    ]);
    expect(h.calls.some((c) => c.action === 'ack' || c.action === 'deadLetter')).toBe(false);
    expect(h.actor.getSnapshot().value).toBe('delayed');
  });

  it.each([
    [1, 1000],
    [2, 2000],
    [3, 4000],
    [6, 32_000],
    [7, 60_000], // 64000 capped
    [9, 60_000],
  ])('nak delay on delivery %i is %i ms', async (deliveryCount, expected) => {
    const h = harness([DB_DOWN], { deliveryCount, maxDeliver: 10, retryAttempts: 0, delayMs: 1000 });
    const done = toPromise(h.actor);
    await run(h);
    await expect(done).resolves.toEqual({ status: 'DELAYED', disposition: 'requeued' });
    expect(h.calls.at(-1)).toEqual({ action: 'nak', params: { delayMs: expected } });
    expect(h.reports().at(-1)?.retryInMs).toBe(expected);
  });

  it('retries exhausted on the last delivery: deadLetter, then FAILED 5000; output deadLettered', async () => {
    const h = harness([DB_DOWN, { reject: new Error('lock timeout') }], {
      deliveryCount: 3,
      maxDeliver: 3,
      retryAttempts: 1,
    });
    const done = toPromise(h.actor);
    await run(h);
    h.clock.increment(100);
    await flush();

    await expect(done).resolves.toEqual({ status: 'FAILED', disposition: 'deadLettered' });
    expect(h.calls).toEqual([
      { action: 'report', params: { status: 'PROCESSING', attempts: 5 } },
      { action: 'report', params: { status: 'RETRYING', attempts: 5, retryInMs: 100 } },
      { action: 'report', params: { status: 'PROCESSING', attempts: 6 } },
      { action: 'deadLetter', params: { errorMessage: 'lock timeout' } },
      {
        action: 'report',
        params: {
          status: 'FAILED',
          attempts: 6,
          errorCode: SYSTEM_ERROR_CODE,
          errorMessage: SYSTEM_ERROR_MESSAGE,
        },
      },
    ]);
    expect(h.actor.getSnapshot().value).toBe('deadLettered');
  });

  it('a non-transient (poison) error dead-letters at once, even with retries and deliveries left', async () => {
    const poison = new TypeError('cannot parse message');
    const h = harness(
      [{ reject: poison }],
      { deliveryCount: 1, maxDeliver: 5, retryAttempts: 3 },
      () => false,
    );
    const done = toPromise(h.actor);
    await run(h);

    await expect(done).resolves.toEqual({ status: 'FAILED', disposition: 'deadLettered' });
    expect(h.transientChecks).toEqual([poison]);
    expect(h.inputs).toHaveLength(1);
    expect(h.calls).toEqual([
      { action: 'report', params: { status: 'PROCESSING', attempts: 1 } },
      { action: 'deadLetter', params: { errorMessage: 'cannot parse message' } },
      {
        action: 'report',
        params: { status: 'FAILED', attempts: 1, errorCode: 5000, errorMessage: SYSTEM_ERROR_MESSAGE },
      },
    ]);
  });

  it('isTransient decides per error: a transient error retries, a later poison one dead-letters', async () => {
    const poison = { reject: new Error('poison') };
    const h = harness([DB_DOWN, poison], {}, (e) => e instanceof Error && e.message !== 'poison');
    const done = toPromise(h.actor);
    await run(h);
    h.clock.increment(100);
    await flush();
    await expect(done).resolves.toEqual({ status: 'FAILED', disposition: 'deadLettered' });
    expect(h.transientChecks).toEqual([DB_DOWN.reject, poison.reject]);
    expect(h.reports().map((r) => r.status)).toEqual(['PROCESSING', 'RETRYING', 'PROCESSING', 'FAILED']);
  });

  it('retryAttempts 0: a transient error goes straight to DELAYED without RETRYING', async () => {
    const h = harness([DB_DOWN], { retryAttempts: 0, deliveryCount: 1, maxDeliver: 3 });
    const done = toPromise(h.actor);
    await run(h);
    await expect(done).resolves.toEqual({ status: 'DELAYED', disposition: 'requeued' });
    expect(h.inputs).toHaveLength(1);
    expect(h.calls).toEqual([
      { action: 'report', params: { status: 'PROCESSING', attempts: 1 } },
      { action: 'report', params: { status: 'DELAYED', attempts: 1, retryInMs: 1000 } },
      { action: 'nak', params: { delayMs: 1000 } },
    ]);
  });

  it('retryAttempts 0 on the last delivery dead-letters after one try', async () => {
    const h = harness([DB_DOWN], { retryAttempts: 0, deliveryCount: 3, maxDeliver: 3 });
    const done = toPromise(h.actor);
    await run(h);
    await expect(done).resolves.toEqual({ status: 'FAILED', disposition: 'deadLettered' });
    expect(h.inputs).toHaveLength(1);
    expect(h.reports()).toEqual([
      { status: 'PROCESSING', attempts: 3 },
      { status: 'FAILED', attempts: 3, errorCode: 5000, errorMessage: SYSTEM_ERROR_MESSAGE },
    ]);
  });

  it('counts attempts across deliveries: (deliveryCount-1)*(retryAttempts+1)+attempt', async () => {
    const h = harness([DB_DOWN, DB_DOWN, OK], { deliveryCount: 3, retryAttempts: 2, retryBaseMs: 5 });
    const done = toPromise(h.actor);
    await run(h);
    h.clock.increment(5);
    await flush();
    h.clock.increment(10);
    await flush();
    await expect(done).resolves.toEqual({ status: 'SUCCESS', disposition: 'acked' });
    expect(h.reports().map((r) => [r.status, r.attempts])).toEqual([
      ['PROCESSING', 7],
      ['RETRYING', 7],
      ['PROCESSING', 8],
      ['RETRYING', 8],
      ['PROCESSING', 9],
      ['SUCCESS', 9],
    ]);
    // The actor's attempt number restarts with each delivery.
    expect(h.inputs.map((i) => i.attempt)).toEqual([1, 2, 3]);
  });

  const circular: Record<string, unknown> = { name: 'loop' };
  circular.self = circular;
  const hostile = {
    toJSON(): never {
      throw new Error('no JSON');
    },
    toString(): never {
      throw new Error('no string');
    },
  };

  it.each<[string, unknown, string]>([
    ['a string', 'redis ECONNREFUSED', 'redis ECONNREFUSED'],
    ['a number', 503, '503'],
    ['null', null, 'null'],
    ['undefined', undefined, 'undefined'],
    ['an object with a message', { message: 'pool exhausted', code: 'E1' }, 'pool exhausted'],
    ['an object whose message is not text', { message: 42 }, '{"message":42}'],
    ['a plain object', { code: 'ETIMEDOUT' }, '{"code":"ETIMEDOUT"}'],
    ['a circular object', circular, '[object Object]'],
    ['a BigInt', 10n, '10'],
    ['an Error without message', new RangeError(''), 'RangeError'],
    ['an object whose toJSON and toString throw', hostile, '[object Object]'],
  ])('stringifies %s rejection safely', async (_label, value, expected) => {
    const h = harness([{ reject: value }], { retryAttempts: 0, deliveryCount: 1, maxDeliver: 1 });
    const done = toPromise(h.actor);
    await run(h);
    await expect(done).resolves.toEqual({ status: 'FAILED', disposition: 'deadLettered' });
    expect(h.transientChecks).toEqual([value]);
    expect(h.calls).toContainEqual({ action: 'deadLetter', params: { errorMessage: expected } });
    expect(h.reports().at(-1)).toEqual({
      status: 'FAILED',
      attempts: 1,
      errorCode: 5000,
      errorMessage: SYSTEM_ERROR_MESSAGE,
    });
  });

  it('stopping the actor while retrying cancels the backoff timer', async () => {
    const h = harness([DB_DOWN, OK]);
    await run(h);
    expect(h.actor.getSnapshot().value).toBe('retrying');
    h.actor.stop();
    h.clock.increment(10_000);
    await flush();
    expect(h.inputs).toHaveLength(1);
    expect(h.reports().map((r) => r.status)).toEqual(['PROCESSING', 'RETRYING']);
  });

  it('a placer that throws instead of rejecting fails the try like a rejection', async () => {
    const thrown = new Error('bad input');
    const machine = purchaseMachine.provide({
      actions: {
        report: () => undefined,
        deadLetter: () => undefined,
        placeOrder: orderPlacer(() => {
          throw thrown;
        }),
      },
      guards: { isTransient: () => false },
    });
    const actor = createActor(machine, { input: BASE_INPUT, clock: new SimulatedClock() });
    const done = toPromise(actor);
    actor.start();
    await flush();
    await expect(done).resolves.toEqual({ status: 'FAILED', disposition: 'deadLettered' });
  });

  it('an outcome that arrives after the actor stopped changes nothing', async () => {
    let placed!: (outcome: OrderOutcome) => void;
    const calls: string[] = [];
    const machine = purchaseMachine.provide({
      actions: {
        report: (_, params) => calls.push(params.status),
        ack: () => calls.push('ack'),
        placeOrder: orderPlacer(() => new Promise((resolve) => (placed = resolve))),
      },
    });
    const actor = createActor(machine, { input: BASE_INPUT, clock: new SimulatedClock() });
    actor.start();
    actor.stop();
    placed(OK);
    await flush();
    expect(calls).toEqual(['PROCESSING']);
    expect(actor.getSnapshot().value).toBe('processing');
  });

  it('honours a backoff delay supplied by the worker', async () => {
    const h = harness([DB_DOWN, OK]);
    const machine = purchaseMachine.provide({
      actions: {
        report: (_, params) => h.calls.push({ action: 'report', params }),
        ack: () => h.calls.push({ action: 'ack' }),
        placeOrder: orderPlacer(async (input) => {
          h.inputs.push(input);
          if (input.attempt === 1) throw new Error('flaky');
          return OK;
        }),
      },
      delays: { backoff: 7 },
    });
    const actor = createActor(machine, { input: BASE_INPUT, clock: h.clock });
    const done = toPromise(actor);
    actor.start();
    await flush();
    h.clock.increment(6);
    await flush();
    expect(h.inputs).toHaveLength(1);
    h.clock.increment(1);
    await flush();
    await expect(done).resolves.toEqual({ status: 'SUCCESS', disposition: 'acked' });
    expect(h.inputs).toHaveLength(2);
  });
});

describe('purchase machine: defaults make a missing provide obvious', () => {
  it('the default placeOrder fails with a "not provided" error, which ends in the dead letter', async () => {
    const calls: Call[] = [];
    const machine = purchaseMachine.provide({
      actions: {
        report: (_, params) => calls.push({ action: 'report', params }),
        deadLetter: (_, params) => calls.push({ action: 'deadLetter', params }),
      },
    });
    const actor = createActor(machine, {
      input: { ...BASE_INPUT, retryAttempts: 0, maxDeliver: 1 },
      clock: new SimulatedClock(),
    });
    const done = toPromise(actor);
    actor.start();
    await flush();
    await expect(done).resolves.toEqual({ status: 'FAILED', disposition: 'deadLettered' });
    const dead = calls.find((c) => c.action === 'deadLetter');
    expect(dead).toEqual({
      action: 'deadLetter',
      params: { errorMessage: expect.stringContaining('"placeOrder" was not provided') },
    });
  });

  /** Runs the machine once; what its actor failed with (null when it finished) and its status. */
  async function failureOf(machine: typeof purchaseMachine, input: PurchaseMachineInput) {
    const actor = createActor(machine, { input, clock: new SimulatedClock() });
    // Handle the rejection at once so Node does not flag it as unhandled.
    const failure = toPromise(actor).then(
      () => null,
      (e: unknown) => e,
    );
    actor.start();
    await flush();
    return { error: await failure, status: actor.getSnapshot().status };
  }

  const notProvided = (action: string) =>
    new Error(`purchaseMachine: action "${action}" was not provided (use purchaseMachine.provide)`);

  it.each<[string, Partial<PurchaseMachineInput>]>([
    ['nak', { retryAttempts: 0, deliveryCount: 1, maxDeliver: 2 }],
    ['deadLetter', { retryAttempts: 0, deliveryCount: 1, maxDeliver: 1 }],
  ])('a missing %s makes the actor fail too', async (action, input) => {
    const machine = purchaseMachine.provide({
      actions: {
        ack: () => undefined,
        placeOrder: orderPlacer(async () => {
          throw new Error('database unavailable');
        }),
      },
    });
    expect(await failureOf(machine, { ...BASE_INPUT, ...input })).toEqual({
      error: notProvided(action),
      status: 'error',
    });
  });

  it('a missing ack makes the actor fail instead of silently leaving the message un-acked', async () => {
    const machine = purchaseMachine.provide({
      actions: { placeOrder: orderPlacer(async () => OK) },
    });
    expect(await failureOf(machine, BASE_INPUT)).toEqual({ error: notProvided('ack'), status: 'error' });
  });
});
