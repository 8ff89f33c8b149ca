import type { Config } from '../../config';
import { isTerminal } from '../../machines/purchase.machine';
import { claimOf, keys, parseOutboxEntry } from '../../lib/store/keys';
import {
  Check,
  plural,
  type AuditCheck,
  type AuditOptions,
  type AuditReport,
  type CheckStatus,
  type DayFigures,
} from './report';
import { CHUNK, cachedResults, close, open, queueFigures, type Connections, type OrderRow } from './sources';

/**
 * The deployment audit: checks the invariants of SPEC §5 against a running (or stopped) instance —
 * its database, its Redis namespace and its JetStream queue — and returns a typed report.
 * It only reads: no stream, consumer, key or row is created or changed.
 *
 * Over 400 lines on purpose: the checks run in report order over the rows and keys read once at the
 * start of `audit`, and splitting them into functions would only pass those reads around.
 */

/** Runs every check; throws only when the database or Redis cannot be reached at all. */
export async function runAudit(config: Config, opts: AuditOptions = {}): Promise<AuditReport> {
  const live = opts.live ?? false;
  const stuckAfterMs = opts.stuckAfterMs ?? 60_000;
  const limit = opts.sampleLimit ?? 10;
  const now = (opts.now ?? (() => new Date()))();
  const c = await open(config);
  try {
    return await audit(c, config.namespace, { live, stuckAfterMs, limit, now, dates: opts.dates });
  } finally {
    await close(c);
  }
}

async function audit(
  c: Connections,
  namespace: string,
  o: { live: boolean; stuckAfterMs: number; limit: number; now: Date; dates?: string[] },
): Promise<AuditReport> {
  const checks: AuditCheck[] = [];
  const dateFilter = o.dates ? 'WHERE d.date = ANY($1::date[])' : '';
  const { rows: dayRows } = await c.db.query<Omit<DayFigures, 'cacheStock' | 'pending'>>(
    `SELECT to_char(d.date, 'YYYY-MM-DD') AS date, d.status, d.total, d.sold, d.remaining,
       count(o.id) FILTER (WHERE o.status = 'valid')::int AS "validOrders",
       count(o.id) FILTER (WHERE o.status = 'cancelled')::int AS "cancelledOrders"
     FROM ticket_days d LEFT JOIN orders o ON o.date = d.date
     ${dateFilter}
     GROUP BY d.id ORDER BY d.date`,
    o.dates ? [o.dates] : [],
  );
  const dates = dayRows.map((d) => d.date);

  // Redis: per-day admission state, and every cached result of the namespace.
  const perDay = await Promise.all(
    dates.map(async (date) => {
      const [stock, pending, claims] = await Promise.all([
        c.redis.get(keys.stock(date)),
        c.redis.hgetall(keys.pending(date)),
        c.redis.hgetall(keys.claims(date)),
      ]);
      return { stock: stock === null ? null : Number(stock), pending, claims };
    }),
  );
  const ready = (await c.redis.exists(keys.ready)) === 1;
  const days: DayFigures[] = dayRows.map((d, i) => ({
    ...d,
    cacheStock: perDay[i].stock,
    pending: Object.keys(perDay[i].pending).length,
  }));

  // 1. Stock balance.
  {
    const check = new Check('stock-balance', o.limit);
    for (const d of days) {
      if (d.sold > d.total) check.problem(`${d.date}: sold ${d.sold} > total ${d.total}`);
      if (d.sold + d.remaining !== d.total)
        check.problem(`${d.date}: sold ${d.sold} + remaining ${d.remaining} != total ${d.total}`);
      if (d.remaining < 0 || d.sold < 0)
        check.problem(`${d.date}: negative figure (sold ${d.sold}, remaining ${d.remaining})`);
    }
    const sold = days.reduce((s, d) => s + d.sold, 0);
    const total = days.reduce((s, d) => s + d.total, 0);
    checks.push(
      check.done(
        check.problemCount ? 'fail' : 'pass',
        `${plural(days.length, 'day')}: sold ${sold} of ${total}` +
          (check.problemCount ? `, ${plural(check.problemCount, 'unbalanced figure')}` : ''),
        { days: days.length, sold, total, unbalanced: check.problemCount },
      ),
    );
  }

  // 2. Sold = valid orders.
  {
    const check = new Check('sold-equals-orders', o.limit);
    for (const d of days)
      if (d.sold !== d.validOrders)
        check.problem(`${d.date}: sold ${d.sold} != valid orders ${d.validOrders}`);
    const sold = days.reduce((s, d) => s + d.sold, 0);
    const validOrders = days.reduce((s, d) => s + d.validOrders, 0);
    checks.push(
      check.done(
        check.problemCount ? 'fail' : 'pass',
        `sold ${sold}, valid orders ${validOrders}` +
          (check.problemCount ? `, ${plural(check.problemCount, 'day')} differ` : ''),
        { sold, validOrders, daysDiffering: check.problemCount },
      ),
    );
  }

  // 3. One valid order per (user, day).
  {
    const check = new Check('one-order-per-user-day', o.limit);
    const { rows } = await c.db.query<{ userId: number; date: string; n: number }>(
      `SELECT user_id::text AS "userId", to_char(date, 'YYYY-MM-DD') AS date, count(*)::int AS n
       FROM orders WHERE status = 'valid' ${o.dates ? 'AND date = ANY($1::date[])' : ''}
       GROUP BY user_id, date HAVING count(*) > 1 ORDER BY n DESC LIMIT 1000`,
      o.dates ? [o.dates] : [],
    );
    for (const r of rows) check.problem(`user ${r.userId} holds ${r.n} valid orders for ${r.date}`);
    checks.push(
      check.done(
        rows.length ? 'fail' : 'pass',
        rows.length ? `${plural(rows.length, 'user-day')} with several valid orders` : 'no duplicates',
        { duplicatedUserDays: rows.length },
      ),
    );
  }

  // 4 and 5. Orders against cached results.
  const results = await cachedResults(c, namespace);
  const inScope = (date: string | undefined) => !o.dates || (date !== undefined && o.dates.includes(date));
  const resultCounts: Record<string, number> = {};
  for (const r of results) if (inScope(r.date)) resultCounts[r.status] = (resultCounts[r.status] ?? 0) + 1;
  const resultById = new Map(results.map((r) => [r.messageId, r]));
  {
    const check = new Check('orders-have-success', o.limit);
    let ordersWithMessage = 0;
    let withResult = 0;
    let inFlight = 0;
    let lastId = 0;
    for (;;) {
      const { rows } = await c.db.query<OrderRow & { id: number }>(
        `SELECT id::int AS id, order_no AS "orderNo", message_id AS "messageId", user_id::text AS "userId",
           to_char(date, 'YYYY-MM-DD') AS date, status
         FROM orders WHERE message_id IS NOT NULL AND id > $1 ${o.dates ? 'AND date = ANY($3::date[])' : ''}
         ORDER BY id LIMIT $2`,
        o.dates ? [lastId, CHUNK, o.dates] : [lastId, CHUNK],
      );
      if (rows.length === 0) break;
      lastId = rows[rows.length - 1].id;
      for (const order of rows) {
        ordersWithMessage++;
        const result = resultById.get(order.messageId!);
        if (!result) continue;
        withResult++;
        if (o.live && !isTerminal(result.status)) {
          inFlight++; // committed, its SUCCESS report on the way
        } else if (result.status !== 'SUCCESS') {
          check.problem(
            `order ${order.orderNo} (user ${order.userId}, ${order.date}) has result ${result.status} for message ${order.messageId}`,
          );
        } else if (result.orderNo && result.orderNo !== order.orderNo) {
          check.problem(
            `message ${order.messageId}: result names order ${result.orderNo}, database has ${order.orderNo}`,
          );
        }
      }
    }
    checks.push(
      check.done(
        check.problemCount ? 'fail' : 'pass',
        `${plural(ordersWithMessage, 'V2 order')}, ${withResult} with a cached result` +
          (inFlight ? `, ${inFlight} in flight` : '') +
          (check.problemCount ? `, ${check.problemCount} not SUCCESS` : ''),
        { ordersWithMessage, withResult, inFlight, mismatched: check.problemCount },
      ),
    );
  }
  {
    const check = new Check('success-has-order', o.limit);
    const successes = results.filter((r) => r.status === 'SUCCESS' && inScope(r.date));
    for (let i = 0; i < successes.length; i += CHUNK) {
      const slice = successes.slice(i, i + CHUNK);
      const { rows } = await c.db.query<{ messageId: string | null; orderNo: string }>(
        `SELECT message_id AS "messageId", order_no AS "orderNo" FROM orders
         WHERE message_id = ANY($1::varchar[]) OR order_no = ANY($2::varchar[])`,
        [slice.map((r) => r.messageId), slice.map((r) => r.orderNo ?? '')],
      );
      const byMessage = new Set(rows.map((r) => r.messageId));
      const byOrderNo = new Set(rows.map((r) => r.orderNo));
      for (const r of slice) {
        const found = r.messageId.startsWith('v1:')
          ? byOrderNo.has(r.messageId.slice(3))
          : byMessage.has(r.messageId);
        if (!found)
          check.problem(
            `SUCCESS result ${r.messageId} (user ${r.userId}, ${r.date}, order ${r.orderNo ?? '-'}) has no order`,
          );
      }
    }
    checks.push(
      check.done(
        check.problemCount ? 'fail' : 'pass',
        `${plural(successes.length, 'SUCCESS result')}` +
          (check.problemCount ? `, ${check.problemCount} without an order` : ', each with its order'),
        { successResults: successes.length, withoutOrder: check.problemCount },
      ),
    );
  }

  // 6. Cache convergence: admission stock and claims against the database.
  {
    const check = new Check('cache-converges', o.limit);
    if (!ready) check.problem('the cache is not ready (ready key missing: lost and not rebuilt yet)');
    let compared = 0;
    let claimsMissing = 0;
    let claimsStray = 0;
    for (const [i, d] of days.entries()) {
      const cache = perDay[i];
      if (cache.stock === null) {
        if (d.status === 'on_sale' && ready) check.problem(`${d.date}: on sale but no stock in the cache`);
        continue;
      }
      compared++;
      const expected = Math.max(0, d.remaining - d.pending);
      if (cache.stock !== expected) {
        check.problem(
          `${d.date}: cache stock ${cache.stock} != database remaining ${d.remaining} - pending ${d.pending} = ${expected}`,
        );
      }
    }
    // Claims: each valid order's user holds a claim naming that order (or its message).
    if (ready) {
      const { rows } = await c.db.query<OrderRow>(
        `SELECT order_no AS "orderNo", message_id AS "messageId", user_id::text AS "userId",
           to_char(date, 'YYYY-MM-DD') AS date, status
         FROM orders WHERE status = 'valid' AND date = ANY($1::date[])`,
        [days.filter((_, i) => perDay[i].stock !== null).map((d) => d.date)],
      );
      const holders = new Map<string, Set<string>>();
      for (const order of rows) {
        const claims = perDay[dates.indexOf(order.date)].claims;
        const expected = claimOf(order);
        const claim = claims[String(order.userId)];
        if (!holders.has(order.date)) holders.set(order.date, new Set());
        holders.get(order.date)!.add(String(order.userId));
        if (claim !== expected) {
          claimsMissing++;
          check.problem(
            `${order.date}: user ${order.userId} has order ${order.orderNo} but the cache claim is ${claim ?? 'missing'}`,
          );
        }
      }
      for (const [i, d] of days.entries()) {
        if (perDay[i].stock === null) continue;
        const pendingUsers = new Set(Object.values(perDay[i].pending));
        for (const userId of Object.keys(perDay[i].claims)) {
          if (holders.get(d.date)?.has(userId) || pendingUsers.has(userId)) continue;
          claimsStray++;
          check.problem(
            `${d.date}: user ${userId} holds claim ${perDay[i].claims[userId]} without an order or a pending message`,
          );
        }
      }
    }
    const status: CheckStatus = check.problemCount === 0 ? 'pass' : o.live ? 'warn' : 'fail';
    checks.push(
      check.done(
        status,
        `${plural(compared, 'day')} compared, ${plural(check.problemCount - claimsMissing - claimsStray, 'stock difference')}, ` +
          `${claimsMissing} claims missing, ${claimsStray} stray` +
          (o.live && check.problemCount ? ' (live: may be in flight)' : ''),
        {
          ready,
          daysCompared: compared,
          stockDifferences: check.problemCount - claimsMissing - claimsStray,
          claimsMissing,
          claimsStray,
        },
      ),
    );
  }

  // 7. Queue backlog, and 9. dead letters.
  const q = await queueFigures(c, namespace);
  {
    const check = new Check('queue-drained', o.limit);
    let status: CheckStatus;
    let summary: string;
    if (q.backlog === null) {
      status = 'fail';
      summary = `queue not readable: ${q.error ?? 'unknown error'}`;
      check.problem(summary);
    } else if (q.backlog > 0) {
      status = o.live ? 'warn' : 'fail';
      summary = `backlog ${q.backlog} (${q.waiting} waiting, ${q.unacked} unacknowledged)`;
      check.problem(summary);
    } else {
      status = 'pass';
      summary = 'backlog 0';
    }
    checks.push(
      check.done(status, summary, { backlog: q.backlog, waiting: q.waiting, unacknowledged: q.unacked }),
    );
  }

  // 8. Stuck messages: non-terminal results not updated for a while, and reservations whose
  //    message has ended (a leaked reservation keeps a ticket out of sale for good).
  {
    const check = new Check('no-stuck-messages', o.limit);
    const nowMs = o.now.getTime();
    let nonTerminal = 0;
    let stuck = 0;
    for (const r of results) {
      if (!inScope(r.date) || isTerminal(r.status)) continue;
      nonTerminal++;
      const updated = r.updatedAt ? Date.parse(r.updatedAt) : NaN;
      const age = Number.isNaN(updated) ? Infinity : nowMs - updated;
      if (age >= o.stuckAfterMs) {
        stuck++;
        check.problem(
          `message ${r.messageId} (user ${r.userId}, ${r.date}) is ${r.status} since ${r.updatedAt ?? 'unknown'}`,
        );
      }
    }
    let leaked = 0;
    let pendingTotal = 0;
    for (const [i, d] of days.entries()) {
      for (const [messageId, userId] of Object.entries(perDay[i].pending)) {
        pendingTotal++;
        const result = resultById.get(messageId);
        if (messageId.startsWith('v1-')) continue; // a synchronous V1 purchase in progress
        if (result && isTerminal(result.status)) {
          leaked++;
          check.problem(`${d.date}: reservation of user ${userId} kept for ended message ${messageId}`);
        } else if (!result && !o.live && q.backlog === 0) {
          leaked++;
          check.problem(`${d.date}: reservation of user ${userId} for message ${messageId} with no result`);
        }
      }
    }
    const problems = stuck + leaked;
    checks.push(
      check.done(
        problems ? 'fail' : 'pass',
        `${nonTerminal} non-terminal (${stuck} older than ${o.stuckAfterMs} ms), ` +
          `${pendingTotal} reservations (${leaked} leaked)`,
        {
          nonTerminal,
          stuck,
          stuckAfterMs: o.stuckAfterMs,
          reservations: pendingTotal,
          leakedReservations: leaked,
        },
      ),
    );
  }
  // 8b. Stranded admissions: admitted (ticket reserved) but never acknowledged by the queue nor
  //     committed (V1), for longer than a live gateway's outbox recovery takes.
  {
    const check = new Check('no-stranded-admissions', o.limit);
    const flat = await c.redis.zrange(keys.outbox, 0, -1, 'WITHSCORES');
    const nowMs = o.now.getTime();
    let entries = 0;
    let stranded = 0;
    for (let i = 0; i < flat.length; i += 2) {
      const entry = parseOutboxEntry(flat[i]);
      const day = entry ? dates.indexOf(entry.date) : -1;
      if (!entry || day < 0 || !inScope(entry.date)) continue;
      entries++;
      const userId = perDay[day].pending[entry.messageId];
      const admittedAt = Number(flat[i + 1]);
      if (userId === undefined || nowMs - admittedAt < o.stuckAfterMs) continue;
      stranded++;
      check.problem(
        `${entry.date}: admission ${entry.messageId} of user ${userId} unpublished since ` +
          `${new Date(admittedAt).toISOString()} (admitter ${entry.admitter})`,
      );
    }
    checks.push(
      check.done(
        stranded ? 'fail' : 'pass',
        `${plural(entries, 'admission')} awaiting the queue, ${stranded} older than ${o.stuckAfterMs} ms`,
        { outbox: entries, stranded, stuckAfterMs: o.stuckAfterMs },
      ),
    );
  }
  {
    const check = new Check('dead-letters', o.limit);
    const n = q.deadLetters;
    checks.push(
      check.done(
        n === null ? 'warn' : n > 0 ? 'warn' : 'pass',
        n === null
          ? `dead-letter stream not readable: ${q.error ?? 'unknown error'}`
          : `${plural(n, 'dead letter')}${n > 0 ? ' waiting for a repair and resend' : ''}`,
        { deadLetters: n },
      ),
    );
  }

  const failed = checks.filter((ch) => ch.status === 'fail').map((ch) => ch.id);
  const warnings = checks.filter((ch) => ch.status === 'warn').map((ch) => ch.id);
  return {
    ok: failed.length === 0,
    namespace,
    at: o.now.toISOString(),
    live: o.live,
    checks,
    failed,
    warnings,
    days,
    totals: {
      days: days.length,
      total: days.reduce((s, d) => s + d.total, 0),
      sold: days.reduce((s, d) => s + d.sold, 0),
      remaining: days.reduce((s, d) => s + d.remaining, 0),
      validOrders: days.reduce((s, d) => s + d.validOrders, 0),
      cancelledOrders: days.reduce((s, d) => s + d.cancelledOrders, 0),
      results: resultCounts,
      backlog: q.backlog,
      deadLetters: q.deadLetters,
    },
  };
}
