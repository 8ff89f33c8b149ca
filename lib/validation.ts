import { isValidDate } from './sale/calendar';

/** fastest-validator rules shared by the actions (query strings are converted, bodies are not). */

type Errors = { type: string; actual: unknown; expected?: unknown }[];

export const userIdRule = {
  type: 'number',
  integer: true,
  positive: true,
  max: Number.MAX_SAFE_INTEGER,
} as const;
/**
 * An integer in a query string: decimal digits only. (The number rule's `convert` would take
 * `userId[]=7` — an array — as 7, and `0x10` or `1e3` as numbers.)
 */
const queryInteger = (min: number, max: number, optional = false) =>
  ({
    type: 'any',
    optional,
    custom: (value: unknown, errors: Errors) => {
      if (value === undefined && optional) return value;
      const n = typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) {
        errors.push({ type: 'queryInteger', actual: value, expected: `${min}..${max}` });
        return value;
      }
      return n;
    },
    messages: {
      queryInteger: "The '{field}' field must be an integer from {expected}, written in decimal digits.",
    },
  }) as const;

export const userIdQueryRule = queryInteger(1, Number.MAX_SAFE_INTEGER);
export const waitMsRule = queryInteger(0, 30_000, true);
export const limitRule = queryInteger(1, 1000, true);

export const dateRule = {
  type: 'string',
  max: 10,
  custom: (value: unknown, errors: Errors) => {
    if (!isValidDate(value)) errors.push({ type: 'date', actual: value, expected: 'YYYY-MM-DD' });
    return value;
  },
  messages: { date: "The '{field}' field must be a real date written YYYY-MM-DD." },
} as const;

/** Missing or empty is not a format error: the SPEC answers it 6003 like a wrong hash. */
export const verifyHashRule = { type: 'string', max: 128, optional: true } as const;
export const messageIdRule = { type: 'string', min: 1, max: 64, pattern: /^[A-Za-z0-9_-]+$/ } as const;
export const orderNoRule = { type: 'string', min: 1, max: 32, pattern: /^[A-Za-z0-9-]+$/ } as const;
export const totalRule = { type: 'number', integer: true, min: 0, max: 10_000_000 } as const;

export const resultParams = { $$strict: true, messageId: messageIdRule, waitMs: waitMsRule } as const;

export const purchaseParams = {
  $$strict: true,
  userId: userIdRule,
  date: dateRule,
  verifyHash: verifyHashRule,
} as const;
