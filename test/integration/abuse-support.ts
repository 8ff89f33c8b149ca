import http from 'node:http';
import { QueryTypes } from 'sequelize';
import { httpStatusOf } from '../../lib/errors';
import type { Envelope, TestApp } from '../helpers/app';

/**
 * Shared by the abuse suites (abuse-*.test.ts): a raw HTTP client that sends exactly the bytes it is
 * given (no URL normalisation, any method, any header, any body), the checks every answer to bad
 * input must pass, and a snapshot of everything a refused request must leave alone.
 */

/** The codes SPEC §3 lets an answer carry, plus 404/405 for unknown routes. */
export const SPEC_CODES = [
  200, 1001, 6001, 6002, 6003, 6004, 6005, 6006, 6007, 6008, 7001, 4001, 4002, 4003, 5000, 5030, 404, 405,
] as const;

export interface RawRequest {
  method: string;
  /** Sent as is: may hold `..`, `%zz`, raw brackets. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface RawAnswer {
  status: number;
  contentType: string;
  text: string;
  headers: http.IncomingHttpHeaders;
  /** The parsed envelope, or undefined when the body is not JSON. */
  body?: Envelope;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

/** Closes the pooled sockets (call in afterAll so Jest exits cleanly). */
export function closeAgent(): void {
  agent.destroy();
}

/** One request with a deadline: an answer that never comes (an SSE stream left open) fails loudly. */
export function rawRequest(baseUrl: string, req: RawRequest, timeoutMs = 10_000): Promise<RawAnswer> {
  const { hostname, port } = new URL(baseUrl);
  const headers: Record<string, string> = { ...req.headers };
  if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
  return new Promise((resolve, reject) => {
    const r = http.request(
      { host: hostname, port: Number(port), method: req.method, path: req.path, headers, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let body: Envelope | undefined;
          try {
            body = JSON.parse(text) as Envelope;
          } catch {
            body = undefined;
          }
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers['content-type'] ?? ''),
            text,
            headers: res.headers,
            body,
          });
        });
        res.on('error', reject);
      },
    );
    const timer = setTimeout(() => {
      r.destroy(new Error(`No complete answer within ${timeoutMs} ms`));
    }, timeoutMs);
    r.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (req.body !== undefined) r.write(req.body);
    r.end();
  });
}

/**
 * What an error answer must never show: stack frames, file paths, SQL, driver and framework names,
 * internal action names. A pattern also found in the request itself is not counted (validation
 * messages may quote the field names the client sent).
 */
export const LEAK_PATTERNS: RegExp[] = [
  /\bat [\w$.<>[\] ]+ \(/, // stack frame "at fn (file:line)"
  /\bat (Object|Module|async|process|new|Function)\b/,
  /node_modules|node:internal/,
  /\/work\/|\/home\/|\/usr\/|\/tmp\/|[A-Z]:\\/,
  /\.(ts|js|cjs|mjs):\d+/,
  /sequelize|postgres|\bpg\b|psql|relation "|duplicate key|violates|constraint/i,
  /\b(SELECT|INSERT|UPDATE|DELETE)\b.*\b(FROM|INTO|SET|WHERE)\b/i,
  /ioredis|ReplyError|\bEVALSHA\b|\bWRONGTYPE\b/i,
  /NatsError|jetstream|\bnats\b/i,
  /moleculer|ServiceBroker|\$node\./i,
  /\b(TypeError|ReferenceError|RangeError|SyntaxError|UnhandledPromiseRejection)\b/,
  /Cannot read propert|is not a function|undefined is not|Unexpected token/i,
  /\b(tickets|purchase|purchase-worker|monitor|api)\.[a-z][A-Za-z]+\b/, // action names: purchase.submit
  /\bstack\b/i,
];

/** Leak patterns found in `text` but not in `input`. */
export function leaksIn(text: string, input: string): string[] {
  return LEAK_PATTERNS.filter((p) => p.test(text) && !p.test(input)).map(String);
}

/** The HTTP status an envelope code must travel with. */
export function statusesFor(code: number): number[] {
  if (code === 200) return [200];
  if (code === 1001) return [400, 413];
  if (code === 404 || code === 405) return [code];
  return [httpStatusOf(code)];
}

/**
 * Checks an answer to bad input: a JSON envelope with a code from `allowed` (a subset of the SPEC
 * codes), the matching HTTP status, never 500/5000, and nothing internal in it. Throws a readable
 * error (fast-check prints it with the counterexample and the seed).
 */
export function assertCleanAnswer(
  answer: RawAnswer,
  allowed: readonly number[],
  request: RawRequest,
  inputText = '',
): void {
  const where = `${request.method} ${request.path.slice(0, 300)} → ${answer.status} ${answer.text.slice(0, 300)}`;
  const fail = (why: string): never => {
    throw new Error(`${why}\n  ${where}`);
  };
  if (answer.status >= 500 && answer.status !== 503) fail('server error status');
  if (!answer.contentType.startsWith('application/json')) fail(`content type ${answer.contentType}`);
  const body = answer.body;
  if (!body || typeof body !== 'object' || Array.isArray(body)) return fail('not a JSON envelope');
  const keys = Object.keys(body).sort().join(',');
  if (keys !== 'code,data,message') fail(`envelope keys ${keys}`);
  if (typeof body.code !== 'number' || typeof body.message !== 'string') fail('envelope field types');
  if (body.code === 5000) fail('internal error 5000');
  if (!(SPEC_CODES as readonly number[]).includes(body.code)) fail(`code ${body.code} is not a SPEC code`);
  if (!allowed.includes(body.code)) fail(`code ${body.code} not in [${allowed.join(', ')}]`);
  if (!statusesFor(body.code).includes(answer.status)) fail(`HTTP ${answer.status} for code ${body.code}`);
  // SPEC §3.1: the security headers on every answer, refusals of every stage included.
  if (answer.headers['x-content-type-options'] !== 'nosniff') fail('no X-Content-Type-Options: nosniff');
  if (!String(answer.headers['content-security-policy'] ?? '').includes("frame-ancestors 'none'")) {
    fail('no Content-Security-Policy with frame-ancestors');
  }
  if (body.code !== 200) {
    const input = `${request.path}\n${safeDecode(request.path)}\n${String(request.body ?? '')}\n${inputText}`;
    const leaks = leaksIn(answer.text, input);
    if (leaks.length) fail(`leaks ${leaks.join(' ')}`);
  }
}

export function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

export interface StateSnapshot {
  days: unknown[];
  orders: unknown;
  users: unknown;
  redis: Record<string, unknown>;
}

/**
 * Everything a refused request must leave alone: the ticket days (with version and updated_at), the
 * orders, the users, and every Redis key of the instance's namespace with its value (`ready` only
 * by presence: a reconcile rewrites its timestamp).
 */
export async function snapshotState(app: TestApp): Promise<StateSnapshot> {
  const days = await app.rt.db.query(
    `SELECT date, name, total, remaining, sold, version, status, updated_at FROM ticket_days ORDER BY date`,
    { type: QueryTypes.SELECT },
  );
  const [orders] = await app.rt.db.query(
    `SELECT count(*)::int AS n, coalesce(max(id), 0)::text AS last,
       count(*) FILTER (WHERE status = 'valid')::int AS valid FROM orders`,
    { type: QueryTypes.SELECT },
  );
  const [users] = await app.rt.db.query(`SELECT count(*)::int AS n FROM users`, { type: QueryTypes.SELECT });
  const raw = app.rt.redis.duplicate({ keyPrefix: '' });
  const redis: Record<string, unknown> = {};
  try {
    const prefix = `${app.namespace}:`;
    let cursor = '0';
    const found: string[] = [];
    do {
      const [next, batch] = await raw.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      found.push(...batch);
    } while (cursor !== '0');
    for (const key of found.sort()) {
      const name = key.slice(prefix.length);
      // Locks come and go with the service's own timers (the outbox pass takes its lock every second).
      if (name === 'rebuild-lock' || name === 'outbox-lock') continue;
      const type = await raw.type(key);
      if (name === 'ready') redis[name] = type;
      else if (type === 'string') redis[name] = await raw.get(key);
      else if (type === 'hash') redis[name] = await raw.hgetall(key);
      else redis[name] = type;
    }
  } finally {
    raw.disconnect();
  }
  return { days, orders, users, redis };
}
