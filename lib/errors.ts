import { Errors } from 'moleculer';

/** The SPEC §3 error codes with their HTTP status and default message. */
export const ERRORS = {
  INVALID_PARAM: { code: 1001, http: 400, message: 'Invalid parameter' },
  NO_SUCH_DAY: {
    code: 6001,
    http: 404,
    message: 'No such ticket day, or the date is outside the sale window',
  },
  SOLD_OUT: { code: 6002, http: 409, message: 'Sold out' },
  BAD_HASH: { code: 6003, http: 403, message: 'Verify hash missing, wrong or expired' },
  OUTSIDE_HOURS: { code: 6004, http: 403, message: 'Outside the daily sale time window' },
  ALREADY_PURCHASED: { code: 6005, http: 409, message: 'Already purchased: one ticket per user per day' },
  UNKNOWN_USER: { code: 6006, http: 404, message: 'Unknown user' },
  PAUSED: { code: 6007, http: 503, message: 'The sale is paused' },
  NOT_FOUND: { code: 6008, http: 404, message: 'No such message or order' },
  RATE_LIMITED: { code: 7001, http: 429, message: 'Too many requests, slow down' },
  UNAUTHORIZED: { code: 4001, http: 401, message: 'Admin authorization missing or wrong' },
  UNAUTHENTICATED: { code: 4002, http: 401, message: 'Sign-in token missing, invalid or expired' },
  FORBIDDEN: { code: 4003, http: 403, message: 'Not allowed for this user' },
  INTERNAL: { code: 5000, http: 500, message: 'Internal error' },
  UNAVAILABLE: { code: 5030, http: 503, message: 'A dependency is unavailable, try again shortly' },
} as const;

export type ErrorName = keyof typeof ERRORS;

const BY_CODE = new Map<number, (typeof ERRORS)[ErrorName]>(Object.values(ERRORS).map((e) => [e.code, e]));

export function httpStatusOf(code: number): number {
  return BY_CODE.get(code)?.http ?? 500;
}

export function messageOf(code: number): string {
  return BY_CODE.get(code)?.message ?? ERRORS.INTERNAL.message;
}

/**
 * A refusal answered as a value rather than thrown: the crowd's hottest answers (sold out, paused,
 * rate limited) then cost no exception, no error middleware and no error metrics. The gateway turns
 * it into the envelope with its HTTP status.
 */
export interface Refusal {
  readonly $refusal: true;
  readonly code: number;
  readonly http: number;
  readonly message: string;
}

const REFUSALS = Object.fromEntries(
  Object.entries(ERRORS).map(([name, e]) => [
    name,
    Object.freeze({ $refusal: true as const, code: e.code, http: e.http, message: e.message }),
  ]),
) as Record<ErrorName, Refusal>;

export const refusalOf = (name: ErrorName): Refusal => REFUSALS[name];

/** The refusal an AppError stands for (its own message kept). */
export const refusalFrom = (err: AppError): Refusal => ({
  $refusal: true,
  code: err.data.appCode,
  http: err.code,
  message: err.message,
});

export const isRefusal = (value: unknown): value is Refusal =>
  typeof value === 'object' && value !== null && (value as { $refusal?: unknown }).$refusal === true;

/**
 * A business error with its SPEC code. It travels between nodes as a MoleculerClientError
 * (`code` = HTTP status, `type` = "E<spec code>", `data.appCode` = spec code) so the gateway
 * can rebuild the envelope whichever node threw it.
 */
export class AppError extends Errors.MoleculerClientError {
  declare data: { appCode: number; details?: unknown };

  constructor(name: ErrorName, message?: string, details?: unknown) {
    const def = ERRORS[name];
    // A refusal is an answer, not a fault: no stack trace to capture (a crowd gets thousands a second).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(message ?? def.message, def.http, `E${def.code}`, { appCode: def.code, details });
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}

export const appError = (name: ErrorName, message?: string, details?: unknown): AppError =>
  new AppError(name, message, details);

/** The SPEC code carried by an error, if it is one of ours. */
export function appCodeOf(err: unknown): number | undefined {
  const data = (err as { data?: { appCode?: unknown } } | null)?.data;
  return typeof data?.appCode === 'number' ? data.appCode : undefined;
}

const NETWORK_CODES = ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTCONN', 'EAI_AGAIN'];
const CONNECTION_LOST = /Connection terminated|connection error|not queryable|ECONNRESET|EPIPE/i;

/** Errors caused by an unreachable dependency: worth a retry, and answered 5030 at the edge. */
export function isTransientError(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { name?: string; code?: string; message?: string; parent?: unknown; original?: unknown };
  const name = e.name ?? '';
  if (
    /Sequelize(Connection\w*|HostNotReachable|HostNotFound|Timeout|AccessDenied)Error/.test(name) ||
    name === 'SequelizeDatabaseError' // deadlock, lock timeout, serialization: retried below by code
  ) {
    const parent = e.parent as { code?: string; message?: string } | undefined;
    const pgCode = parent?.code ?? '';
    if (name !== 'SequelizeDatabaseError') return true;
    // A connection that broke in the middle of a query surfaces as a "database" error whose
    // cause is the socket (read ECONNRESET, Connection terminated unexpectedly): transient too.
    const sqlState = /^[0-9A-Z]{5}$/.test(pgCode); // the server answered: not a lost connection
    if (
      !sqlState &&
      (NETWORK_CODES.includes(pgCode) || CONNECTION_LOST.test(parent?.message ?? e.message ?? ''))
    )
      return true;
    return ['40001', '40P01', '55P03', '57014', '57P01', '08006', '08003', '08001'].includes(pgCode);
  }
  if (NETWORK_CODES.includes(e.code ?? '')) {
    return true;
  }
  if (
    name === 'MaxRetriesPerRequestError' ||
    /Connection is closed|connect ETIMEDOUT/.test(e.message ?? '')
  ) {
    return true;
  }
  if (e.code === 'TIMEOUT' || e.code === 'CONNECTION_CLOSED' || e.code === 'DISCONNECT') return true; // nats
  return false;
}
