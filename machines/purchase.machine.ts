import { assign, setup, type AnyActorRef } from 'xstate';

/**
 * The life cycle of ONE purchase message inside a worker (SPEC §4). The machine does no I/O:
 * the worker supplies every effect with `purchaseMachine.provide({ actions, guards })`. Placing the
 * order is an action whose end comes back as an event (`orderPlacer`). A worker creates the actor
 * once it owns the message, so the machine starts in `processing` (PENDING, the message on the queue,
 * is written at admission): a waiting state left at once by a START event was a third macrostep per
 * message (`npm run bench:worker`).
 */

export type PurchaseStatus = 'PENDING' | 'PROCESSING' | 'RETRYING' | 'DELAYED' | 'SUCCESS' | 'FAILED';

export const TERMINAL_STATUSES: readonly PurchaseStatus[] = Object.freeze(['SUCCESS', 'FAILED'] as const);

export function isTerminal(status: string): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/** What names one purchase everywhere (queue message, machine, order writer): message, buyer, day. */
export interface PurchaseKey {
  messageId: string;
  userId: number;
  date: string;
}

export interface PurchaseMachineInput extends PurchaseKey {
  /** 1-based JetStream delivery count of this delivery. */
  deliveryCount: number;
  /** JetStream max deliveries; on the last one, exhausted retries dead-letter. */
  maxDeliver: number;
  /** In-worker retries per delivery after the first try (0 = no retry). */
  retryAttempts: number;
  /** Backoff: retryBaseMs * 2^(retry-1). */
  retryBaseMs: number;
  /** Nak delay base: delayMs * 2^(deliveryCount-1), capped at 60000. */
  delayMs: number;
}

export type OrderOutcome =
  | { kind: 'success'; orderNo: string; ticketCode: string }
  | { kind: 'rejected'; errorCode: number; errorMessage: string };

export interface ProcessOrderInput extends PurchaseKey {
  /** 1-based try number within this delivery. */
  attempt: number;
}

/** How a try ends: the order writer's outcome, or the error it failed with. */
export type OrderEvent =
  { type: 'ORDER.PLACED'; output: OrderOutcome } | { type: 'ORDER.FAILED'; error: unknown };

export type PurchaseEvent = OrderEvent;

export interface StatusReport {
  status: PurchaseStatus;
  /** Total processing tries so far, counting earlier deliveries. */
  attempts: number;
  orderNo?: string;
  ticketCode?: string;
  errorCode?: number;
  errorMessage?: string;
  /** For RETRYING and DELAYED: when the next try happens. */
  retryInMs?: number;
}

export const SYSTEM_ERROR_CODE = 5000;
/**
 * What the public result says of a system failure: the cause (a driver error naming hosts and ports)
 * goes to the dead-letter record and the worker's log only.
 */
export const SYSTEM_ERROR_MESSAGE = 'The purchase could not be completed because of a system error';

export type PurchaseDisposition = 'acked' | 'requeued' | 'deadLettered';

export interface PurchaseMachineOutput {
  status: PurchaseStatus;
  disposition: PurchaseDisposition;
}

interface PurchaseContext extends PurchaseMachineInput {
  /** 1-based try number within this delivery. */
  attempt: number;
  outcome: OrderOutcome | null;
  lastError: string | null;
  result: PurchaseMachineOutput | null;
}

const MAX_NAK_DELAY_MS = 60_000;

function totalAttempts(ctx: PurchaseContext): number {
  return (ctx.deliveryCount - 1) * (ctx.retryAttempts + 1) + ctx.attempt;
}

// Retry number k follows failed try k, so the k-th retry waits retryBaseMs * 2^(k-1).
function backoffMs(ctx: PurchaseContext): number {
  return ctx.retryBaseMs * 2 ** (ctx.attempt - 1);
}

function nakDelayMs(ctx: PurchaseContext): number {
  return Math.min(ctx.delayMs * 2 ** (ctx.deliveryCount - 1), MAX_NAK_DELAY_MS);
}

/** A readable message for any rejection value; never throws (it runs inside an action). */
function describeError(error: unknown): string {
  try {
    if (error instanceof Error) return error.message || error.name;
    if (typeof error === 'string') return error;
    if (error === undefined || typeof error === 'function' || typeof error === 'symbol') return String(error);
    if (
      typeof error === 'object' &&
      error !== null &&
      'message' in error &&
      typeof error.message === 'string'
    ) {
      return error.message;
    }
    const json = JSON.stringify(error);
    return json === undefined ? String(error) : json;
  } catch {
    // Circular objects, BigInt, hostile toString: fall back to something that cannot throw.
    try {
      return String(error);
    } catch {
      return Object.prototype.toString.call(error);
    }
  }
}

function outcomeReport(ctx: PurchaseContext): StatusReport {
  const attempts = totalAttempts(ctx);
  const o = ctx.outcome;
  if (o?.kind === 'success') {
    return { status: 'SUCCESS', attempts, orderNo: o.orderNo, ticketCode: o.ticketCode };
  }
  if (o?.kind === 'rejected') {
    return { status: 'FAILED', attempts, errorCode: o.errorCode, errorMessage: o.errorMessage };
  }
  // Unreachable: success/failed are only entered with an outcome.
  return { status: 'FAILED', attempts, errorCode: SYSTEM_ERROR_CODE, errorMessage: SYSTEM_ERROR_MESSAGE };
}

function notProvided(what: string): Error {
  return new Error(`purchaseMachine: ${what} was not provided (use purchaseMachine.provide)`);
}

/**
 * The `placeOrder` action for a function that places one order: it starts the try and sends its end
 * back to the actor as ORDER.PLACED or ORDER.FAILED. An action rather than an invoked promise actor:
 * a child actor per try (created, registered in the actor system, started, stopped) was a sizeable
 * share of a worker's CPU per order, and the machine still decides everything that follows.
 */
export function orderPlacer(place: (input: ProcessOrderInput) => Promise<OrderOutcome>) {
  return ({ self }: { self: AnyActorRef }, input: ProcessOrderInput): void => {
    let placing: Promise<OrderOutcome>;
    try {
      placing = place(input);
    } catch (error) {
      placing = Promise.reject(error);
    }
    placing.then(
      (output) => self.send({ type: 'ORDER.PLACED', output } satisfies OrderEvent),
      (error: unknown) => self.send({ type: 'ORDER.FAILED', error } satisfies OrderEvent),
    );
  };
}

export const purchaseMachine = setup({
  types: {} as {
    context: PurchaseContext;
    events: PurchaseEvent;
    input: PurchaseMachineInput;
    output: PurchaseMachineOutput;
  },
  actions: {
    // Reporting is optional for tools and tests; the queue effects are not.
    report: (_, _params: StatusReport) => {},
    ack: () => {
      throw notProvided('action "ack"');
    },
    nak: (_, _params: { delayMs: number }) => {
      throw notProvided('action "nak"');
    },
    deadLetter: (_, _params: { errorMessage: string }) => {
      throw notProvided('action "deadLetter"');
    },
    // A missing order placer fails each try, which ends in the dead letter like any failure.
    placeOrder: orderPlacer(() => Promise.reject(notProvided('action "placeOrder"'))),
  },
  guards: {
    // Default: every error is transient, so an unknown failure is retried rather than lost.
    isTransient: (_, _params: { error: unknown }) => true,
    hasRetryLeft: ({ context }) => context.attempt <= context.retryAttempts,
    hasDeliveryLeft: ({ context }) => context.deliveryCount < context.maxDeliver,
  },
  delays: {
    backoff: ({ context }) => backoffMs(context),
  },
}).createMachine({
  id: 'purchase',
  // Field by field: spreading the input showed as ~4 % of the worker's per-message JS in a profile.
  context: ({ input }) => ({
    messageId: input.messageId,
    userId: input.userId,
    date: input.date,
    deliveryCount: input.deliveryCount,
    maxDeliver: input.maxDeliver,
    retryAttempts: input.retryAttempts,
    retryBaseMs: input.retryBaseMs,
    delayMs: input.delayMs,
    attempt: 1,
    outcome: null,
    lastError: null,
    result: null,
  }),
  initial: 'processing',
  output: ({ context }) => context.result ?? { status: 'FAILED', disposition: 'deadLettered' },
  states: {
    processing: {
      entry: [
        {
          type: 'report',
          params: ({ context }) => ({ status: 'PROCESSING', attempts: totalAttempts(context) }),
        },
        {
          type: 'placeOrder',
          params: ({ context }) => ({
            messageId: context.messageId,
            userId: context.userId,
            date: context.date,
            attempt: context.attempt,
          }),
        },
      ],
      on: {
        'ORDER.PLACED': [
          {
            guard: ({ event }) => event.output.kind === 'success',
            target: 'success',
            actions: assign({
              outcome: ({ event }) => event.output,
              result: { status: 'SUCCESS', disposition: 'acked' },
            }),
          },
          {
            target: 'failed',
            actions: assign({
              outcome: ({ event }) => event.output,
              result: { status: 'FAILED', disposition: 'acked' },
            }),
          },
        ],
        'ORDER.FAILED': [
          {
            guard: { type: 'isTransient', params: ({ event }) => ({ error: event.error }) },
            target: 'transientError',
            actions: assign({ lastError: ({ event }) => describeError(event.error) }),
          },
          // Poison message: retrying cannot help.
          {
            target: 'deadLettered',
            actions: assign({ lastError: ({ event }) => describeError(event.error) }),
          },
        ],
      },
    },
    // Eventless choice point, so the worker's isTransient guard stays a single positive check.
    transientError: {
      always: [
        { guard: 'hasRetryLeft', target: 'retrying' },
        { guard: 'hasDeliveryLeft', target: 'delayed' },
        // Last delivery: give up.
        { target: 'deadLettered' },
      ],
    },
    retrying: {
      entry: {
        type: 'report',
        params: ({ context }) => ({
          status: 'RETRYING',
          attempts: totalAttempts(context),
          retryInMs: backoffMs(context),
        }),
      },
      after: {
        backoff: {
          target: 'processing',
          actions: assign({ attempt: ({ context }) => context.attempt + 1 }),
        },
      },
    },
    delayed: {
      type: 'final',
      entry: [
        {
          type: 'report',
          params: ({ context }) => ({
            status: 'DELAYED',
            attempts: totalAttempts(context),
            retryInMs: nakDelayMs(context),
          }),
        },
        { type: 'nak', params: ({ context }) => ({ delayMs: nakDelayMs(context) }) },
        assign({ result: { status: 'DELAYED', disposition: 'requeued' } }),
      ],
    },
    deadLettered: {
      type: 'final',
      entry: [
        {
          type: 'deadLetter',
          params: ({ context }) => ({ errorMessage: context.lastError ?? 'Unknown error' }),
        },
        {
          type: 'report',
          params: ({ context }) => ({
            status: 'FAILED',
            attempts: totalAttempts(context),
            errorCode: SYSTEM_ERROR_CODE,
            errorMessage: SYSTEM_ERROR_MESSAGE,
          }),
        },
        assign({ result: { status: 'FAILED', disposition: 'deadLettered' } }),
      ],
    },
    success: {
      type: 'final',
      entry: [{ type: 'report', params: ({ context }) => outcomeReport(context) }, 'ack'],
    },
    failed: {
      type: 'final',
      entry: [{ type: 'report', params: ({ context }) => outcomeReport(context) }, 'ack'],
    },
  },
});
