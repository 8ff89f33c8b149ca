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
 * A user id in a query string: decimal digits only. (The number rule's `convert` would take
 * `userId[]=7` — an array — as 7, and `0x10` or `1e3` as numbers.)
 */
export const userIdQueryRule = {
  type: 'any',
  custom: (value: unknown, errors: Errors) => {
    const id = typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : value;
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) {
      errors.push({ type: 'userId', actual: value });
      return value;
    }
    return id;
  },
  messages: { userId: "The '{field}' field must be a positive integer written in decimal digits." },
} as const;

export const dateRule = {
  type: 'string',
  max: 10,
  custom: (value: unknown, errors: Errors) => {
    if (!isValidDate(value)) errors.push({ type: 'date', actual: value, expected: 'YYYY-MM-DD' });
    return value;
  },
  messages: { date: "The '{field}' field must be a real date written YYYY-MM-DD." },
} as const;

export const verifyHashRule = { type: 'string', min: 1, max: 128 } as const;
export const messageIdRule = { type: 'string', min: 1, max: 64, pattern: /^[A-Za-z0-9_-]+$/ } as const;
export const orderNoRule = { type: 'string', min: 1, max: 32, pattern: /^[A-Za-z0-9-]+$/ } as const;
export const totalRule = { type: 'number', integer: true, min: 0, max: 10_000_000 } as const;

export const purchaseParams = {
  $$strict: true,
  userId: userIdRule,
  date: dateRule,
  verifyHash: verifyHashRule,
} as const;
