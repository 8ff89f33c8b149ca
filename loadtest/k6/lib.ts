/**
 * Shared building blocks of the k6 scenarios in this directory: configuration from `__ENV`, the API
 * envelope checks, verify-hash handling, the submit → poll purchase flow, custom metrics, and the stock
 * invariants asserted through `/api/tickets/stats`.
 *
 * Everything at module level runs in k6's init context (once per VU, plus once for setup/teardown):
 * metrics must be created here, and nothing here may issue HTTP requests.
 */
import http from 'k6/http';
import type { Response } from 'k6/http';
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import type { Options } from 'k6/options';

// ---------------------------------------------------------------------------------------------------------
// API contract
// ---------------------------------------------------------------------------------------------------------

/** Business codes carried in the `code` field of every answer. */
export const CODES = {
  OK: 200,
  INVALID_PARAM: 1001,
  UNAUTHORIZED: 4001,
  NO_SUCH_DAY: 6001,
  SOLD_OUT: 6002,
  BAD_HASH: 6003,
  OUTSIDE_HOURS: 6004,
  ALREADY_PURCHASED: 6005,
  UNKNOWN_USER: 6006,
  PAUSED: 6007,
  NOT_FOUND: 6008,
  RATE_LIMITED: 7001,
  INTERNAL: 5000,
  DEPENDENCY_DOWN: 5030,
} as const;

/** HTTP status the gateway pairs with each business code (lib/errors.ts). */
const HTTP_STATUS_OF_CODE: Readonly<Record<number, number>> = {
  [CODES.OK]: 200,
  [CODES.INVALID_PARAM]: 400,
  [CODES.UNAUTHORIZED]: 401,
  [CODES.NO_SUCH_DAY]: 404,
  [CODES.SOLD_OUT]: 409,
  [CODES.BAD_HASH]: 403,
  [CODES.OUTSIDE_HOURS]: 403,
  [CODES.ALREADY_PURCHASED]: 409,
  [CODES.UNKNOWN_USER]: 404,
  [CODES.PAUSED]: 503,
  [CODES.NOT_FOUND]: 404,
  [CODES.RATE_LIMITED]: 429,
  [CODES.INTERNAL]: 500,
  [CODES.DEPENDENCY_DOWN]: 503,
};

/**
 * Submit answers that are legitimate outcomes of a flash sale, as opposed to errors: accepted, sold out,
 * already purchased (a user id reused after USERS wrapped around), rate limited (admission control).
 */
export const BUSINESS_CODES: readonly number[] = [
  CODES.OK,
  CODES.SOLD_OUT,
  CODES.ALREADY_PURCHASED,
  CODES.RATE_LIMITED,
];

export const RESULT_STATUSES = ['PENDING', 'PROCESSING', 'RETRYING', 'DELAYED', 'SUCCESS', 'FAILED'] as const;
export type ResultStatus = (typeof RESULT_STATUSES)[number];
const TERMINAL_STATUSES: readonly ResultStatus[] = ['SUCCESS', 'FAILED'];

export interface Envelope {
  code: number;
  message: string;
  data: unknown;
}

// ---------------------------------------------------------------------------------------------------------
// Metrics (init context)
// ---------------------------------------------------------------------------------------------------------

/** Submit request start → terminal result received (ms). Timed-out purchases count with their elapsed time. */
export const purchaseTerminalLatency = new Trend('purchase_terminal_latency', true);
/** Result requests needed per accepted purchase (shows what adaptive polling / long-polling buys). */
export const resultPolls = new Trend('result_polls');
export const purchaseSuccess = new Counter('purchase_success');
/** Terminal FAILED results, tagged `errorCode`. */
export const purchaseFailed = new Counter('purchase_failed');
/** Submits answered with a code other than 200, tagged `code`. */
export const purchaseRejected = new Counter('purchase_rejected');
/** Accepted purchases still not terminal after TERMINAL_TIMEOUT_MS. */
export const purchaseTimeout = new Counter('purchase_timeout');
/** Stock invariant violations found through /api/tickets/stats (setup and teardown). */
export const invariantViolations = new Counter('invariant_violations');

// ---------------------------------------------------------------------------------------------------------
// Shared option fragments
// ---------------------------------------------------------------------------------------------------------

/**
 * System tags kept on samples. `url` is left out on purpose: every result URL carries a unique messageId,
 * and one time series per URL makes k6 itself grow in memory (fatal for the soak). Requests are grouped
 * by their `name` tag instead.
 */
export const SYSTEM_TAGS = [
  'proto',
  'subproto',
  'status',
  'method',
  'name',
  'group',
  'check',
  'error',
  'error_code',
  'scenario',
  'expected_response',
];

export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'];

/**
 * Always-true thresholds whose only purpose is to make the end-of-test summary list `purchase_rejected`
 * per business code (k6 prints sub-metrics only when a threshold references them).
 */
export const REJECTION_DISPLAY_THRESHOLDS: Record<string, string[]> = {};
for (const code of [
  CODES.SOLD_OUT,
  CODES.ALREADY_PURCHASED,
  CODES.RATE_LIMITED,
  CODES.BAD_HASH,
  CODES.OUTSIDE_HOURS,
  CODES.PAUSED,
  CODES.DEPENDENCY_DOWN,
]) {
  REJECTION_DISPLAY_THRESHOLDS[`purchase_rejected{code:${code}}`] = ['count>=0'];
}

// ---------------------------------------------------------------------------------------------------------
// Configuration from __ENV (init context: a bad value throws and k6 refuses to start)
// ---------------------------------------------------------------------------------------------------------

function rawEnv(name: string): string | undefined {
  const value = __ENV[name];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

export function envString(name: string, fallback: string): string {
  return rawEnv(name) ?? fallback;
}

export function envOptional(name: string): string | undefined {
  return rawEnv(name);
}

export function envInt(name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = rawEnv(name);
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw)) throw new Error(`${name} must be an integer, got "${raw}"`);
  const value = parseInt(raw, 10);
  if (value < min || value > max) throw new Error(`${name} must be within [${min}, ${max}], got ${value}`);
  return value;
}

export function envNumber(name: string, fallback: number, min = 0): number {
  const raw = rawEnv(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!isFinite(value) || value < min) throw new Error(`${name} must be a number >= ${min}, got "${raw}"`);
  return value;
}

export function envFlag(name: string, fallback = false): boolean {
  const raw = rawEnv(name);
  if (raw === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new Error(`${name} must be a boolean (1/0, true/false), got "${raw}"`);
}

const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
const DURATION_UNIT_SECONDS: Readonly<Record<string, number>> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/** Seconds in a k6 duration string such as "90s", "1m30s", "500ms", "2h". */
export function durationSeconds(duration: string): number {
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(duration)) throw new Error(`invalid duration "${duration}"`);
  let total = 0;
  DURATION_PART.lastIndex = 0;
  for (let match = DURATION_PART.exec(duration); match !== null; match = DURATION_PART.exec(duration)) {
    total += parseFloat(match[1]) * DURATION_UNIT_SECONDS[match[2]];
  }
  return total;
}

/** A k6 duration from the environment, validated. */
export function envDuration(name: string, fallback: string): string {
  const value = envString(name, fallback);
  try {
    durationSeconds(value);
  } catch {
    throw new Error(`${name} must be a k6 duration like 30s, 5m, 1h30m; got "${value}"`);
  }
  return value;
}

export interface K6Config {
  /** Gateway origin without trailing slash (BASE_URL). */
  baseUrl: string;
  /** Admin bearer token (ADMIN_TOKEN); without it the scenarios use the sale days as they are. */
  adminToken: string | undefined;
  /** Sale day to hit (DATE, YYYY-MM-DD); chosen from /api/tickets/list when unset. */
  date: string | undefined;
  /** Users USER_OFFSET+1 .. USER_OFFSET+USERS take part; iteration i uses user USER_OFFSET+1+(i mod USERS). */
  userOffset: number;
  users: number;
  /** How many verify hashes setup() fetches up front (HASH_BATCH); the rest are fetched per iteration. */
  hashBatch: number;
  /** Parallel requests per http.batch() when fetching hashes in setup (HASH_PARALLEL). */
  hashParallel: number;
  /** Give up waiting for a terminal result after this long (TERMINAL_TIMEOUT_MS). */
  terminalTimeoutMs: number;
  /** How long setup/teardown wait for the invariants to converge, e.g. for the queue to drain (SETTLE_TIMEOUT_MS). */
  settleTimeoutMs: number;
  /** Interval polling: floor / ceiling for the poll interval, growth factor while the status is unchanged. */
  minPollMs: number;
  maxPollMs: number;
  pollBackoff: number;
  /** waitMs sent on long-poll requests (LONG_POLL_WAIT_MS, server maximum 30000). */
  longPollWaitMs: number;
}

export interface ConfigDefaults {
  users: number;
  userOffset: number;
  /** Default for HASH_BATCH; capped at USERS. */
  hashBatch: number;
  /** Default for POLL_BACKOFF: 1 = poll exactly every pollIntervalMs. */
  pollBackoff: number;
}

/** Configuration common to all scenarios; `defaults` holds the scenario-specific defaults. */
export function loadConfig(defaults: ConfigDefaults): K6Config {
  const maxUserId = envInt('MAX_USER_ID', 100000, 1);
  const userOffset = envInt('USER_OFFSET', defaults.userOffset, 0);
  const users = envInt('USERS', Math.max(1, Math.min(defaults.users, maxUserId - userOffset)), 1);
  if (userOffset + users > maxUserId) {
    throw new Error(
      `USER_OFFSET (${userOffset}) + USERS (${users}) exceeds MAX_USER_ID (${maxUserId}): ` +
        'those users do not exist (the service seeds SEED_USERS users, 100000 by default)',
    );
  }
  const minPollMs = envInt('MIN_POLL_MS', 25, 1);
  const config: K6Config = {
    baseUrl: envString('BASE_URL', 'http://127.0.0.1:3000').replace(/\/+$/, ''),
    adminToken: envOptional('ADMIN_TOKEN'),
    date: envOptional('DATE'),
    userOffset,
    users,
    hashBatch: Math.min(users, envInt('HASH_BATCH', defaults.hashBatch, 0)),
    hashParallel: envInt('HASH_PARALLEL', 50, 1, 500),
    terminalTimeoutMs: envInt('TERMINAL_TIMEOUT_MS', 30000, 100),
    settleTimeoutMs: envInt('SETTLE_TIMEOUT_MS', 30000, 0),
    minPollMs,
    maxPollMs: envInt('MAX_POLL_MS', 2000, minPollMs),
    pollBackoff: envNumber('POLL_BACKOFF', defaults.pollBackoff, 1),
    longPollWaitMs: envInt('LONG_POLL_WAIT_MS', 10000, 1, 30000),
  };
  if (config.date !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(config.date)) {
    throw new Error(`DATE must look like YYYY-MM-DD, got "${config.date}"`);
  }
  return config;
}

/** Scenario gracefulStop: lets in-flight iterations finish waiting for their result. */
export function gracefulStop(config: K6Config): string {
  return `${Math.ceil(config.terminalTimeoutMs / 1000) + 10}s`;
}

/**
 * setupTimeout: fetching HASH_BATCH hashes plus waiting for the invariants to settle, plus what the
 * scenario's own setup work needs (`extraSeconds`). SETUP_TIMEOUT overrides it.
 */
export function setupTimeout(config: K6Config, extraSeconds = 0): string {
  const seconds = Math.ceil(config.settleTimeoutMs / 1000 + config.hashBatch / 100 + extraSeconds) + 60;
  return envDuration('SETUP_TIMEOUT', `${seconds}s`);
}

/** teardownTimeout: waiting for the invariants to settle plus some slack. TEARDOWN_TIMEOUT overrides it. */
export function teardownTimeout(config: K6Config): string {
  return envDuration('TEARDOWN_TIMEOUT', `${Math.ceil(config.settleTimeoutMs / 1000) + 30}s`);
}

/** The option fields every scenario sets alike: setup/teardown timeouts, kept system tags, summary stats. */
export function runOptions(
  config: K6Config,
  setupExtraSeconds = 0,
): Pick<Options, 'setupTimeout' | 'teardownTimeout' | 'systemTags' | 'summaryTrendStats'> {
  return {
    setupTimeout: setupTimeout(config, setupExtraSeconds),
    teardownTimeout: teardownTimeout(config),
    systemTags: SYSTEM_TAGS,
    summaryTrendStats: SUMMARY_TREND_STATS,
  };
}

/**
 * The body of a `constant-arrival-rate` scenario (the executor itself stays in the scenario file):
 * `rate` iterations a second for `duration`, PRE_VUS / MAX_VUS overriding the VU defaults.
 */
export function constantArrival(
  config: K6Config,
  rate: number,
  duration: string,
  vus: { preAllocated: number; max: number },
): {
  rate: number;
  timeUnit: string;
  duration: string;
  preAllocatedVUs: number;
  maxVUs: number;
  gracefulStop: string;
} {
  return {
    rate,
    timeUnit: '1s',
    duration,
    preAllocatedVUs: envInt('PRE_VUS', vus.preAllocated, 1),
    maxVUs: envInt('MAX_VUS', vus.max, 1),
    gracefulStop: gracefulStop(config),
  };
}

export interface SteadyRun {
  rate: number;
  duration: string;
  config: K6Config;
  /** STOCK: with ADMIN_TOKEN, by default enough tickets for every purchase (one user per iteration). */
  stock: number;
}

/**
 * RATE / DURATION / configuration / STOCK of a steady run in which every iteration is its own user:
 * USERS defaults to RATE × DURATION and STOCK to USERS.
 */
export function steadyRun(defaults: {
  rate: number;
  duration: string;
  userOffset: number;
  hashBatch: number;
  pollBackoff: number;
}): SteadyRun {
  const rate = envInt('RATE', defaults.rate, 1);
  const duration = envDuration('DURATION', defaults.duration);
  const config = loadConfig({
    users: Math.ceil(rate * durationSeconds(duration)),
    userOffset: defaults.userOffset,
    hashBatch: defaults.hashBatch,
    pollBackoff: defaults.pollBackoff,
  });
  return { rate, duration, config, stock: envInt('STOCK', config.users, 0) };
}

// ---------------------------------------------------------------------------------------------------------
// Small runtime helpers
// ---------------------------------------------------------------------------------------------------------

export function sleepMs(ms: number): void {
  if (ms > 0) sleep(ms / 1000);
}

/** The user of the current iteration: distinct for the first USERS iterations of the test, then reused. */
export function iterationUser(config: K6Config): number {
  return config.userOffset + 1 + (exec.scenario.iterationInTest % config.users);
}

/** Stop the whole run with a non-zero exit code (108) and the reason on stderr. Works in setup/teardown. */
export function abortRun(reason: string): never {
  console.error(reason);
  exec.test.abort(reason);
  // test.abort() interrupts the script; this line only exists for the type checker.
  throw new Error(reason);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonNegativeInt(value: unknown): value is number {
  return typeof value === 'number' && isFinite(value) && value >= 0 && Math.floor(value) === value;
}

// ---------------------------------------------------------------------------------------------------------
// HTTP + envelope checks
// ---------------------------------------------------------------------------------------------------------

export const JSON_HEADERS = { 'Content-Type': 'application/json', Accept: 'application/json' };

/** Business rejections are answers, not transport failures: keep them out of http_req_failed. */
const SUBMIT_EXPECTED_STATUSES = http.expectedStatuses({ min: 200, max: 299 }, 409, 429);

export function apiUrl(config: K6Config, path: string): string {
  return `${config.baseUrl}/api${path}`;
}

/** The `{ code, message, data }` envelope of a response, or null when the body is not one. */
export function parseEnvelope(res: Response): Envelope | null {
  if (typeof res.body !== 'string' || res.body.length === 0) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body);
  } catch {
    return null;
  }
  if (!isRecord(parsed) || typeof parsed.code !== 'number' || typeof parsed.message !== 'string') return null;
  if (!('data' in parsed)) return null;
  return { code: parsed.code, message: parsed.message, data: parsed.data };
}

function statusMatchesCode(code: number, status: number): boolean {
  const expected = HTTP_STATUS_OF_CODE[code];
  if (expected !== undefined) return status === expected;
  return code === CODES.OK ? status === 200 : status >= 400;
}

/**
 * Checks an answer: JSON envelope shape, business code among `expectedCodes`, HTTP status consistent with
 * the code. Returns the envelope (null when the body is not one).
 */
export function checkAnswer(res: Response, name: string, expectedCodes: readonly number[]): Envelope | null {
  const envelope = parseEnvelope(res);
  check(res, {
    [`${name}: JSON envelope {code,message,data}`]: () => envelope !== null,
    [`${name}: code in [${expectedCodes.join(',')}]`]: () =>
      envelope !== null && expectedCodes.indexOf(envelope.code) >= 0,
    [`${name}: HTTP status matches code`]: () =>
      envelope !== null && statusMatchesCode(envelope.code, res.status),
  });
  return envelope;
}

function retryAfterMs(res: Response): number | undefined {
  const header = res.headers['Retry-After'];
  if (header === undefined || !/^\d+$/.test(header)) return undefined;
  return parseInt(header, 10) * 1000;
}

// ---------------------------------------------------------------------------------------------------------
// Sale days, admin
// ---------------------------------------------------------------------------------------------------------

export interface SaleDay {
  date: string;
  weekday: string;
  total: number;
  remaining: number;
  sold: number;
  soldOut: boolean;
}

function parseSaleDay(value: unknown): SaleDay | null {
  if (!isRecord(value) || typeof value.date !== 'string') return null;
  const { total, remaining, sold } = value;
  if (!isNonNegativeInt(total) || typeof remaining !== 'number' || typeof sold !== 'number') return null;
  return {
    date: value.date,
    weekday: typeof value.weekday === 'string' ? value.weekday : '',
    total,
    remaining,
    sold,
    soldOut: value.soldOut === true,
  };
}

/** GET /api/tickets/list. Aborts the run when the answer is unusable (setup/teardown only). */
export function listDays(config: K6Config): SaleDay[] {
  const res = http.get(apiUrl(config, '/tickets/list'), { tags: { name: 'list' } });
  const envelope = checkAnswer(res, 'list', [CODES.OK]);
  const days = envelope !== null && Array.isArray(envelope.data) ? envelope.data.map(parseSaleDay) : [];
  const valid = days.filter((day): day is SaleDay => day !== null);
  if (envelope?.code !== CODES.OK || valid.length === 0 || valid.length !== days.length) {
    abortRun(`GET /api/tickets/list gave no usable sale days (HTTP ${res.status}): ${String(res.body)}`);
  }
  return valid;
}

export function findDay(days: readonly SaleDay[], date: string): SaleDay {
  for (const day of days) if (day.date === date) return day;
  return abortRun(`sale day ${date} is not on sale; days on sale: ${days.map((d) => d.date).join(', ')}`);
}

export type DayPreference = 'available' | 'sold-out';

/** DATE when set, otherwise the first day with stock ('available') or the day closest to selling out. */
export function chooseDay(config: K6Config, days: readonly SaleDay[], prefer: DayPreference): SaleDay {
  if (config.date !== undefined) return findDay(days, config.date);
  if (prefer === 'sold-out') {
    return days.reduce((best, day) => (day.remaining < best.remaining ? day : best));
  }
  for (const day of days) if (!day.soldOut && day.remaining > 0) return day;
  return days[0];
}

/** PUT /api/admin/tickets/:date { total } with the admin token. Aborts the run on failure. */
export function setDayTotal(config: K6Config, date: string, total: number): void {
  if (config.adminToken === undefined) abortRun('setDayTotal needs ADMIN_TOKEN');
  const res = http.put(
    apiUrl(config, `/admin/tickets/${encodeURIComponent(date)}`),
    JSON.stringify({ total }),
    {
      headers: { ...JSON_HEADERS, Authorization: `Bearer ${config.adminToken}` },
      tags: { name: 'admin-set-total' },
    },
  );
  const envelope = checkAnswer(res, 'admin-set-total', [CODES.OK]);
  if (envelope?.code !== CODES.OK) {
    abortRun(
      `PUT /api/admin/tickets/${date} {total:${total}} failed (HTTP ${res.status}): ${String(res.body)}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Verify hashes
// ---------------------------------------------------------------------------------------------------------

/** Hashes for users firstUser .. firstUser+hashes.length-1 on `date`; '' marks a user whose fetch failed. */
export interface HashBook {
  date: string;
  firstUser: number;
  hashes: string[];
  /** Epoch ms after which the book is not trusted any more (earliest expiresAt minus a safety margin). */
  validUntil: number;
}

const HASH_SAFETY_MARGIN_MS = 60_000;
const HASH_FALLBACK_TTL_MS = 55 * 60_000;

/** expiresAt may be ISO text, epoch s/ms or a TTL in seconds; unknown shapes assume the documented 1 h. */
function expiryEpochMs(value: unknown, fetchedAt: number): number {
  let epoch = NaN;
  if (typeof value === 'number') epoch = value < 1e12 ? value * 1000 : value;
  else if (typeof value === 'string') epoch = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!isFinite(epoch)) return fetchedAt + HASH_FALLBACK_TTL_MS;
  if (epoch < fetchedAt - 86_400_000 && typeof value === 'number') return fetchedAt + value * 1000;
  return epoch;
}

function verifyHashRequestUrl(config: K6Config, userId: number, date: string): string {
  return apiUrl(config, `/tickets/verify-hash?userId=${userId}&date=${encodeURIComponent(date)}`);
}

function readVerifyHash(res: Response, fetchedAt: number): { hash: string; expiresAt: number } | null {
  const envelope = checkAnswer(res, 'verify-hash', [CODES.OK]);
  if (envelope?.code !== CODES.OK || !isRecord(envelope.data)) return null;
  const hash = envelope.data.verifyHash;
  if (typeof hash !== 'string' || hash === '') return null;
  return { hash, expiresAt: expiryEpochMs(envelope.data.expiresAt, fetchedAt) };
}

/** One verify hash, fetched now (iterations whose user is outside the setup batch, or after expiry). */
export function fetchVerifyHash(config: K6Config, userId: number, date: string): string | null {
  const fetchedAt = Date.now();
  const res = http.get(verifyHashRequestUrl(config, userId, date), { tags: { name: 'verify-hash' } });
  return readVerifyHash(res, fetchedAt)?.hash ?? null;
}

/**
 * Fetches the hashes of `count` users starting at `firstUser` in parallel batches (setup). Aborts when more
 * than 1 % of them fail: the service is not answering correctly and the run would measure nothing useful.
 */
export function fetchHashBook(config: K6Config, date: string, firstUser: number, count: number): HashBook {
  const hashes: string[] = [];
  let validUntil = Number.MAX_SAFE_INTEGER;
  let failures = 0;
  for (let start = 0; start < count; start += config.hashParallel) {
    const size = Math.min(config.hashParallel, count - start);
    const requests = [];
    for (let i = 0; i < size; i++) {
      requests.push({
        method: 'GET',
        url: verifyHashRequestUrl(config, firstUser + start + i, date),
        params: { tags: { name: 'verify-hash' } },
      });
    }
    const fetchedAt = Date.now();
    for (const res of http.batch(requests)) {
      const answer = readVerifyHash(res, fetchedAt);
      if (answer === null) {
        failures++;
        hashes.push('');
      } else {
        hashes.push(answer.hash);
        validUntil = Math.min(validUntil, answer.expiresAt - HASH_SAFETY_MARGIN_MS);
      }
    }
  }
  if (failures > count / 100) {
    abortRun(`could not fetch verify hashes: ${failures} of ${count} requests failed (date ${date})`);
  }
  return { date, firstUser, hashes, validUntil: hashes.length > 0 ? validUntil : 0 };
}

/** The user's hash from the setup book while it is valid, otherwise a freshly fetched one (null on failure). */
export function hashFor(config: K6Config, book: HashBook, userId: number): string | null {
  const index = userId - book.firstUser;
  if (index >= 0 && index < book.hashes.length && book.hashes[index] !== '' && Date.now() < book.validUntil) {
    return book.hashes[index];
  }
  return fetchVerifyHash(config, userId, book.date);
}

// ---------------------------------------------------------------------------------------------------------
// Purchases: submit, results, polling
// ---------------------------------------------------------------------------------------------------------

export interface Accepted {
  messageId: string;
  status: string;
  pollIntervalMs: number;
  resultUrl: string;
}

export interface SubmitOutcome {
  /** Epoch ms just before the submit request: the start of submit-to-terminal latency. */
  startedAt: number;
  res: Response;
  /** Business code, null when the answer was not an envelope. */
  code: number | null;
  accepted: Accepted | null;
}

function parseAccepted(data: unknown): Accepted | null {
  if (!isRecord(data) || typeof data.messageId !== 'string' || data.messageId === '') return null;
  if (!isNonNegativeInt(data.pollIntervalMs)) return null;
  return {
    messageId: data.messageId,
    status: typeof data.status === 'string' ? data.status : '',
    pollIntervalMs: data.pollIntervalMs,
    resultUrl: typeof data.resultUrl === 'string' ? data.resultUrl : '',
  };
}

export interface SubmitOptions {
  expectedCodes?: readonly number[];
  /** Extra tags; `name` defaults to 'submit' (the thresholds rely on it). */
  tags?: Record<string, string>;
}

/** POST /api/tickets/v2/purchase, with envelope/code checks; non-200 codes count in purchase_rejected{code}. */
export function submitPurchase(
  config: K6Config,
  userId: number,
  date: string,
  verifyHash: string,
  options: SubmitOptions = {},
): SubmitOutcome {
  const startedAt = Date.now();
  const res = http.post(
    apiUrl(config, '/tickets/v2/purchase'),
    JSON.stringify({ userId, date, verifyHash }),
    {
      headers: JSON_HEADERS,
      tags: { name: 'submit', ...options.tags },
      responseCallback: SUBMIT_EXPECTED_STATUSES,
    },
  );
  const envelope = checkAnswer(res, 'submit', options.expectedCodes ?? BUSINESS_CODES);
  let accepted: Accepted | null = null;
  if (envelope?.code === CODES.OK) {
    accepted = parseAccepted(envelope.data);
    check(accepted, { 'submit: accepted answer has messageId and pollIntervalMs': (a) => a !== null });
  } else if (envelope !== null) {
    purchaseRejected.add(1, { code: String(envelope.code) });
  }
  return { startedAt, res, code: envelope?.code ?? null, accepted };
}

export interface PurchaseResult {
  messageId: string;
  status: ResultStatus;
  attempts: number;
  ticketCode?: string;
  orderNo?: string;
  errorCode?: string;
  errorMessage?: string;
  position?: number;
  /** The service's adaptive hint, sent with non-terminal results. */
  pollIntervalMs?: number;
}

/** Validates the documented result shape; null when it does not match. */
export function parseResult(value: unknown): PurchaseResult | null {
  if (!isRecord(value) || typeof value.messageId !== 'string') return null;
  const status = RESULT_STATUSES.find((s) => s === value.status);
  if (status === undefined || !isNonNegativeInt(value.attempts)) return null;
  if (typeof value.userId !== 'number' && typeof value.userId !== 'string') return null;
  if (typeof value.date !== 'string' || value.queuedAt === undefined || value.updatedAt === undefined)
    return null;
  const text = (v: unknown): string | undefined =>
    typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
  const result: PurchaseResult = { messageId: value.messageId, status, attempts: value.attempts };
  result.ticketCode = text(value.ticketCode);
  result.orderNo = text(value.orderNo);
  result.errorCode = text(value.errorCode);
  result.errorMessage = text(value.errorMessage);
  if (typeof value.position === 'number') result.position = value.position;
  if (isNonNegativeInt(value.pollIntervalMs)) result.pollIntervalMs = value.pollIntervalMs;
  return result;
}

export function isTerminal(result: PurchaseResult | null): boolean {
  return result !== null && TERMINAL_STATUSES.indexOf(result.status) >= 0;
}

function checkResult(result: PurchaseResult | null, messageId: string, name: string): void {
  check(result, {
    [`${name}: result shape`]: (r) => r !== null,
    [`${name}: result is for the requested messageId`]: (r) => r !== null && r.messageId === messageId,
    [`${name}: SUCCESS carries ticketCode and orderNo`]: (r) =>
      r === null || r.status !== 'SUCCESS' || (r.ticketCode !== undefined && r.orderNo !== undefined),
    [`${name}: FAILED carries errorCode`]: (r) =>
      r === null || r.status !== 'FAILED' || r.errorCode !== undefined,
  });
}

interface ResultAnswer {
  result: PurchaseResult | null;
  /** Server-suggested delay before the next poll, when it gave one. */
  hintMs: number | undefined;
  /** Request duration (ms). */
  durationMs: number;
  ok: boolean;
}

function resultUrl(config: K6Config, messageId: string, waitMs?: number): string {
  const wait = waitMs === undefined ? '' : `&waitMs=${waitMs}`;
  return apiUrl(config, `/tickets/v2/purchase/result?messageId=${encodeURIComponent(messageId)}${wait}`);
}

function readResult(res: Response, messageId: string, name: string): ResultAnswer {
  const envelope = checkAnswer(res, name, [CODES.OK]);
  const result = envelope?.code === CODES.OK ? parseResult(envelope.data) : null;
  checkResult(result, messageId, name);
  return {
    result,
    hintMs: result?.pollIntervalMs ?? retryAfterMs(res),
    durationMs: res.timings.duration,
    ok: result !== null,
  };
}

/** GET /api/tickets/v2/purchase/result (tag name:result). */
export function fetchResult(
  config: K6Config,
  messageId: string,
  tags: Record<string, string> = {},
): ResultAnswer {
  const res = http.get(resultUrl(config, messageId), { tags: { ...tags, name: 'result' } });
  return readResult(res, messageId, 'result');
}

/** Long-poll GET ...result?waitMs= (tag name:result-long: its duration is mostly server-side waiting). */
export function fetchResultLong(
  config: K6Config,
  messageId: string,
  waitMs: number,
  tags: Record<string, string> = {},
): ResultAnswer {
  const res = http.get(resultUrl(config, messageId, waitMs), {
    tags: { ...tags, name: 'result-long' },
    timeout: waitMs + 10_000,
  });
  return readResult(res, messageId, 'result-long');
}

/** Accepts an array of results, `{ results: [...] }`, or an object keyed by messageId. */
function batchItems(data: unknown): unknown[] | null {
  if (Array.isArray(data)) return data;
  if (!isRecord(data)) return null;
  if (Array.isArray(data.results)) return data.results;
  if (Array.isArray(data.items)) return data.items;
  return Object.keys(data).map((key) => data[key]);
}

/**
 * POST /api/tickets/v2/purchase/results (tag name:results-batch) for up to 100 ids; checks that every id is
 * answered. Returns the answer for `messageIds[0]` plus all parsed results.
 */
export function fetchResultsBatch(
  config: K6Config,
  messageIds: readonly string[],
  tags: Record<string, string> = {},
): ResultAnswer & { all: PurchaseResult[] } {
  const res = http.post(apiUrl(config, '/tickets/v2/purchase/results'), JSON.stringify({ messageIds }), {
    headers: JSON_HEADERS,
    tags: { ...tags, name: 'results-batch' },
  });
  const envelope = checkAnswer(res, 'results-batch', [CODES.OK]);
  const items = envelope?.code === CODES.OK ? batchItems(envelope.data) : null;
  const all: PurchaseResult[] = [];
  let malformed = 0;
  for (const item of items ?? []) {
    const parsed = parseResult(item);
    if (parsed !== null) all.push(parsed);
    // Unknown / expired ids come back as { messageId, code: 6008, message }; anything else is malformed.
    else if (!isRecord(item) || typeof item.messageId !== 'string' || typeof item.code !== 'number')
      malformed++;
  }
  const answered = (id: string): boolean => all.some((r) => r.messageId === id);
  check(items, {
    'results-batch: list of results': (list) => list !== null && malformed === 0,
    'results-batch: every requested messageId answered': () => messageIds.every(answered),
  });
  const first = all.find((r) => r.messageId === messageIds[0]) ?? null;
  checkResult(first, messageIds[0], 'results-batch');
  return {
    result: first,
    hintMs: first?.pollIntervalMs ?? retryAfterMs(res),
    durationMs: res.timings.duration,
    ok: first !== null,
    all,
  };
}

/**
 * 'interval': GET result, sleeping between polls (adaptive, see nextPollInterval);
 * 'long': GET result with waitMs, re-issued at once while not terminal;
 * 'batch': POST results for the message plus `companions` (other ids of the same VU), with interval sleeps.
 */
export type PollMode = 'interval' | 'long' | 'batch';

export interface PollOptions {
  companions?: readonly string[];
  tags?: Record<string, string>;
}

export interface PollOutcome {
  result: PurchaseResult | null;
  terminal: boolean;
  polls: number;
  /** Epoch ms when the terminal (or last) answer arrived. */
  finishedAt: number;
}

/**
 * Adaptive poll interval: the server's hint when it gives one (result.pollIntervalMs or Retry-After),
 * otherwise back to the submit's pollIntervalMs when the status moved, or grown by POLL_BACKOFF while it
 * did not; always within [MIN_POLL_MS, MAX_POLL_MS].
 */
export function nextPollInterval(
  config: K6Config,
  baseMs: number,
  currentMs: number,
  statusChanged: boolean,
  hintMs: number | undefined,
): number {
  const next = hintMs ?? (statusChanged ? baseMs : currentMs * config.pollBackoff);
  return Math.min(config.maxPollMs, Math.max(config.minPollMs, Math.round(next)));
}

/** Polls the result of an accepted purchase until SUCCESS/FAILED or TERMINAL_TIMEOUT_MS. */
export function awaitTerminal(
  config: K6Config,
  accepted: Accepted,
  mode: PollMode,
  options: PollOptions = {},
): PollOutcome {
  const deadline = Date.now() + config.terminalTimeoutMs;
  const tags = options.tags ?? {};
  const batchIds = [accepted.messageId].concat((options.companions ?? []).slice(0, 99));
  const baseMs = nextPollInterval(config, accepted.pollIntervalMs, accepted.pollIntervalMs, true, undefined);
  let intervalMs = baseMs;
  let last: PurchaseResult | null = null;
  let polls = 0;
  let quickLongPolls = 0;
  if (mode !== 'long') sleepMs(Math.min(intervalMs, deadline - Date.now()));
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    polls++;
    let answer: ResultAnswer;
    if (mode === 'long') {
      answer = fetchResultLong(config, accepted.messageId, Math.min(config.longPollWaitMs, remaining), tags);
    } else if (mode === 'batch') {
      answer = fetchResultsBatch(config, batchIds, tags);
    } else {
      answer = fetchResult(config, accepted.messageId, tags);
    }
    const statusChanged = answer.result !== null && (last === null || answer.result.status !== last.status);
    if (answer.result !== null) last = answer.result;
    if (isTerminal(answer.result))
      return { result: answer.result, terminal: true, polls, finishedAt: Date.now() };
    intervalMs = nextPollInterval(config, baseMs, intervalMs, statusChanged, answer.hintMs);
    // A long poll is re-issued at once after a real wait or an early return on a status change; a failed
    // one, or the third early return in a row (a server ignoring waitMs), sleeps like interval polling so
    // that it cannot turn into a hot loop.
    if (mode === 'long' && answer.ok) {
      quickLongPolls = answer.durationMs >= baseMs ? 0 : quickLongPolls + 1;
      if (quickLongPolls < 3) continue;
    }
    sleepMs(Math.min(intervalMs, deadline - Date.now()));
  }
  return { result: last, terminal: false, polls, finishedAt: Date.now() };
}

/** Feeds the purchase metrics and the "reached a terminal state" check. */
export function recordOutcome(
  startedAt: number,
  outcome: PollOutcome,
  tags: Record<string, string> = {},
): void {
  purchaseTerminalLatency.add(outcome.finishedAt - startedAt, tags);
  resultPolls.add(outcome.polls, tags);
  check(outcome, { 'purchase reached SUCCESS/FAILED within TERMINAL_TIMEOUT_MS': (o) => o.terminal });
  if (!outcome.terminal || outcome.result === null) purchaseTimeout.add(1, tags);
  else if (outcome.result.status === 'SUCCESS') purchaseSuccess.add(1, tags);
  else purchaseFailed.add(1, { ...tags, errorCode: outcome.result.errorCode ?? 'none' });
}

export interface FlowOptions extends PollOptions {
  mode: PollMode;
  expectedCodes?: readonly number[];
}

export interface FlowOutcome {
  userId: number;
  submit: SubmitOutcome | null;
  poll: PollOutcome | null;
}

/** One user's purchase: hash (from the setup book or fresh), submit, and on acceptance poll to terminal. */
export function purchaseFlow(
  config: K6Config,
  sale: SaleSetup,
  userId: number,
  options: FlowOptions,
): FlowOutcome {
  const tags = { ...options.tags, mode: options.mode };
  const hash = hashFor(config, sale.book, userId);
  if (hash === null) return { userId, submit: null, poll: null };
  const submit = submitPurchase(config, userId, sale.date, hash, {
    expectedCodes: options.expectedCodes,
    tags: options.tags,
  });
  if (submit.accepted === null) return { userId, submit, poll: null };
  const poll = awaitTerminal(config, submit.accepted, options.mode, { companions: options.companions, tags });
  recordOutcome(submit.startedAt, poll, tags);
  return { userId, submit, poll };
}

// ---------------------------------------------------------------------------------------------------------
// Stats and invariants
// ---------------------------------------------------------------------------------------------------------

export interface StockRow {
  total: number;
  remaining: number;
  sold: number;
  orders: number;
}

export interface DayStats extends StockRow {
  date: string;
}

export interface Stats {
  days: DayStats[];
  total: StockRow;
}

function parseStockRow(value: unknown): StockRow | null {
  if (!isRecord(value)) return null;
  const { total, remaining, sold, orders } = value;
  if (typeof total !== 'number' || typeof remaining !== 'number') return null;
  if (typeof sold !== 'number' || typeof orders !== 'number') return null;
  return { total, remaining, sold, orders };
}

/** GET /api/tickets/stats; null when the answer is unusable. */
export function fetchStats(config: K6Config): Stats | null {
  const res = http.get(apiUrl(config, '/tickets/stats'), { tags: { name: 'stats' } });
  const envelope = checkAnswer(res, 'stats', [CODES.OK]);
  if (envelope?.code !== CODES.OK || !isRecord(envelope.data) || !Array.isArray(envelope.data.days))
    return null;
  const days: DayStats[] = [];
  for (const item of envelope.data.days) {
    const row = parseStockRow(item);
    if (row === null || !isRecord(item) || typeof item.date !== 'string') return null;
    days.push({ date: item.date, ...row });
  }
  const total = parseStockRow(envelope.data.total);
  return total === null ? null : { days, total };
}

export interface InvariantProblems {
  /** Never acceptable, not even transiently: overselling, negative counters, missing day. */
  hard: string[];
  /** Must hold once the queue has drained: sold + remaining == total, sold == orders. */
  pending: string[];
}

/** Per day (and for the aggregate row): sold + remaining == total, sold == orders, sold <= total. */
export function invariantProblems(stats: Stats, expectDate?: string): InvariantProblems {
  const problems: InvariantProblems = { hard: [], pending: [] };
  const rows: [string, StockRow][] = stats.days.map((day): [string, StockRow] => [day.date, day]);
  rows.push(['TOTAL', stats.total]);
  for (const [label, row] of rows) {
    const show = `${label}: total=${row.total} sold=${row.sold} remaining=${row.remaining} orders=${row.orders}`;
    if (row.sold > row.total) problems.hard.push(`sold > total (oversold) — ${show}`);
    if (row.orders > row.total) problems.hard.push(`orders > total (oversold) — ${show}`);
    if (row.sold < 0 || row.remaining < 0 || row.orders < 0) problems.hard.push(`negative counter — ${show}`);
    if (row.sold + row.remaining !== row.total) problems.pending.push(`sold + remaining != total — ${show}`);
    if (row.sold !== row.orders) problems.pending.push(`sold != orders — ${show}`);
  }
  if (expectDate !== undefined && !stats.days.some((day) => day.date === expectDate)) {
    problems.hard.push(`${expectDate} missing from /api/tickets/stats`);
  }
  return problems;
}

/**
 * Asserts the stock invariants through /api/tickets/stats, waiting up to SETTLE_TIMEOUT_MS for the
 * "pending" ones (the queue may still be writing orders). Any violation aborts the run with a non-zero exit
 * code and also counts in `invariant_violations`, whose `count==0` threshold fails the run as well.
 */
export function assertInvariants(config: K6Config, when: string, expectDate?: string): Stats {
  const deadline = Date.now() + config.settleTimeoutMs;
  let problems: string[] = ['/api/tickets/stats gave no usable answer'];
  for (;;) {
    const stats = fetchStats(config);
    if (stats !== null) {
      const found = invariantProblems(stats, expectDate);
      problems = found.hard.concat(found.pending);
      if (problems.length === 0) {
        invariantViolations.add(0);
        check(stats, { [`stock invariants hold ${when}`]: () => true });
        return stats;
      }
      if (found.hard.length > 0) break;
    }
    if (Date.now() >= deadline) break;
    sleepMs(Math.min(1000, Math.max(0, deadline - Date.now())));
  }
  invariantViolations.add(problems.length);
  check(problems, { [`stock invariants hold ${when}`]: () => false });
  return abortRun(`STOCK INVARIANT VIOLATED ${when}:\n  ${problems.join('\n  ')}`);
}

// ---------------------------------------------------------------------------------------------------------
// setup() / teardown() building blocks
// ---------------------------------------------------------------------------------------------------------

/** What setup() hands to the VUs (serialised to JSON, one copy per VU: keep it small). */
export interface SaleSetup {
  date: string;
  book: HashBook;
  before: Stats;
  startedAt: number;
}

export interface PrepareOptions {
  prefer: DayPreference;
  /**
   * Tickets to leave on sale for the run: with ADMIN_TOKEN the day's total becomes sold + stock
   * (0 = sold out). Without ADMIN_TOKEN the day is used as it is.
   */
  stock?: number;
}

/**
 * Common setup(): checks the invariants before the load, chooses the sale day, optionally adjusts its
 * stock, and fetches the verify hashes of the first HASH_BATCH users.
 */
export function prepareSale(config: K6Config, options: PrepareOptions): SaleSetup {
  // First, so that a queue still draining from an earlier run settles before the stock is touched.
  const before = assertInvariants(config, 'before the run');
  let day = chooseDay(config, listDays(config), options.prefer);
  if (!before.days.some((row) => row.date === day.date))
    abortRun(`${day.date} missing from /api/tickets/stats`);
  if (options.stock !== undefined) {
    if (config.adminToken !== undefined) {
      setDayTotal(config, day.date, day.sold + options.stock);
      day = findDay(listDays(config), day.date);
    } else {
      console.warn(
        `ADMIN_TOKEN not set: ${day.date} keeps its stock (${day.remaining} of ${day.total} left)`,
      );
    }
  }
  if (options.prefer === 'available' && day.remaining <= 0) {
    console.warn(
      `${day.date} has no stock left: every submit will be answered 6002 (set ADMIN_TOKEN and STOCK)`,
    );
  }
  const book = fetchHashBook(config, day.date, config.userOffset + 1, config.hashBatch);
  console.log(
    `sale day ${day.date}: total=${day.total} sold=${day.sold} remaining=${day.remaining}; users ` +
      `${config.userOffset + 1}..${config.userOffset + config.users} (${book.hashes.length} hashes prefetched)`,
  );
  return { date: day.date, book, before, startedAt: Date.now() };
}

/** Common teardown(): invariants after the run (aborts on violation) and a one-line account of the day. */
export function finishRun(config: K6Config, sale: SaleSetup): void {
  const after = assertInvariants(config, 'after the run', sale.date);
  const before = sale.before.days.find((day) => day.date === sale.date);
  const now = after.days.find((day) => day.date === sale.date);
  if (before !== undefined && now !== undefined) {
    console.log(
      `sale day ${sale.date}: sold ${before.sold} -> ${now.sold} (+${now.sold - before.sold}), ` +
        `remaining ${now.remaining} of ${now.total}, orders ${now.orders}; invariants hold`,
    );
  }
}
