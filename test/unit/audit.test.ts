import { spawn } from 'node:child_process';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import { runAudit } from '../../tools/audit/audit';
import { formatReport, type AuditReport, type CheckId } from '../../tools/audit/report';
import { parseArgs } from '../../tools/audit/cli';
import type { ResultRecord } from '../../lib/purchase/results';
import { keys, outboxEntry } from '../../lib/store/keys';
import { eventually, startApp, type TestApp } from '../helpers/app';

/**
 * The deployment audit (`npm run audit`, `runAudit`): a clean instance passes every check; each
 * kind of corruption is reported by the check that names it, and the CLI exits non-zero.
 */

const ROOT = path.resolve(__dirname, '../..');
const NODE = path.join(ROOT, 'node_modules/.bin/node');

jest.setTimeout(60_000);

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the audit CLI as the operator would, with the instance's environment. */
function cli(env: Record<string, string>, args: string[] = []): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, ['--import', 'tsx', 'tools/audit/cli.ts', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const statusOf = (report: AuditReport, id: CheckId) => report.checks.find((c) => c.id === id)?.status;

describe('audit', () => {
  let app: TestApp;
  let date: string;
  const bought: ResultRecord[] = [];

  beforeAll(async () => {
    app = await startApp();
    date = app.dates[0];
    expect((await app.put(`/api/admin/tickets/${date}`, { total: 10 }, app.admin)).body.code).toBe(200);
    for (let userId = 1; userId <= 12; userId++) {
      const submit = await app.post<{ messageId: string }>('/api/tickets/v2/purchase', {
        userId,
        date,
        verifyHash: app.hash(userId, date),
      });
      if (submit.body.code !== 200) continue;
      const result = await app.get<ResultRecord>(
        `/api/tickets/v2/purchase/result?messageId=${submit.body.data.messageId}&waitMs=10000`,
      );
      bought.push(result.body.data);
    }
    expect(bought.filter((r) => r.status === 'SUCCESS')).toHaveLength(10);
    // The acknowledgements go out just after the terminal results: wait for an empty queue.
    await eventually(async () => ((await runAudit(app.config)).totals.backlog === 0 ? true : undefined));
  });

  afterAll(async () => {
    await app?.stop();
  });

  it('passes on a clean instance, with the figures', async () => {
    const report = await runAudit(app.config, { stuckAfterMs: 0 });
    expect(report.failed).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => [c.id, c.status])).toEqual([
      ['stock-balance', 'pass'],
      ['sold-equals-orders', 'pass'],
      ['one-order-per-user-day', 'pass'],
      ['orders-have-success', 'pass'],
      ['success-has-order', 'pass'],
      ['cache-converges', 'pass'],
      ['queue-drained', 'pass'],
      ['no-stuck-messages', 'pass'],
      ['no-stranded-admissions', 'pass'],
      ['dead-letters', 'pass'],
    ]);
    const day = report.days.find((d) => d.date === date)!;
    expect(day).toMatchObject({
      total: 10,
      sold: 10,
      remaining: 0,
      validOrders: 10,
      cacheStock: 0,
      pending: 0,
    });
    expect(report.totals.results).toMatchObject({ SUCCESS: 10 });
    expect(report.totals.deadLetters).toBe(0);

    const run = await cli(app.env);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/✔ stock-balance/);
    expect(run.stdout).toMatch(/OK: every check passed/);
    expect(run.stdout).not.toMatch(/✘/);
  });

  it('fails "sold-equals-orders" for an order inserted behind the service’s back, and the CLI exits 1', async () => {
    const [[row]] = (await app.rt.db.query(
      `INSERT INTO orders (user_id, date, ticket_code) VALUES (500, $1, make_ticket_code($1)) RETURNING id`,
      { bind: [date] },
    )) as [{ id: number }[], unknown];
    try {
      const report = await runAudit(app.config);
      expect(report.ok).toBe(false);
      expect(report.failed).toEqual(['sold-equals-orders', 'cache-converges']);
      const check = report.checks.find((c) => c.id === 'sold-equals-orders')!;
      expect(check.figures).toMatchObject({ sold: 10, validOrders: 11 });
      expect(check.problems.join('\n')).toContain(`${date}: sold 10 != valid orders 11`);

      const run = await cli(app.env);
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(/✘ sold-equals-orders\s+sold 10, valid orders 11/);
      expect(run.stdout).toMatch(/FAILED: sold-equals-orders, cache-converges/);

      const json = await cli(app.env, ['--json']);
      expect(json.code).toBe(1);
      const parsed = JSON.parse(json.stdout) as AuditReport;
      expect(parsed.ok).toBe(false);
      expect(parsed.failed).toContain('sold-equals-orders');
    } finally {
      await app.rt.db.query('DELETE FROM orders WHERE id = $1', { bind: [row.id] });
    }
    expect((await runAudit(app.config)).ok).toBe(true);
  });

  it('fails "orders-have-success" and "success-has-order" for tampered results', async () => {
    const victim = bought.find((r) => r.status === 'SUCCESS')!;
    const fake = 'fake-success-without-order';
    await app.rt.redis.hset(keys.result(victim.messageId), 'status', 'FAILED');
    await app.rt.redis.hset(keys.result(fake), {
      messageId: fake,
      userId: '77',
      date,
      status: 'SUCCESS',
      orderNo: 'O-none',
      attempts: '1',
      updatedAt: new Date().toISOString(),
    });
    try {
      const report = await runAudit(app.config);
      expect(report.failed).toEqual(['orders-have-success', 'success-has-order']);
      const orders = report.checks.find((c) => c.id === 'orders-have-success')!;
      expect(orders.problems[0]).toContain(`has result FAILED for message ${victim.messageId}`);
      const results = report.checks.find((c) => c.id === 'success-has-order')!;
      expect(results.figures).toMatchObject({ withoutOrder: 1 });
      expect(results.problems[0]).toContain(fake);
      expect(formatReport(report)).toMatch(/✘ orders-have-success .*1 not SUCCESS/);
    } finally {
      await app.rt.redis.hset(keys.result(victim.messageId), 'status', 'SUCCESS');
      await app.rt.redis.del(keys.result(fake));
    }
  });

  it('fails "one-order-per-user-day" when two valid orders exist for one user and day', async () => {
    // Only possible once the unique index is gone: the audit must not rely on it.
    await app.rt.db.query('DROP INDEX orders_one_valid_per_user_day');
    const user = bought.find((r) => r.status === 'SUCCESS')!.userId;
    await app.rt.db.query(
      `INSERT INTO orders (user_id, date, ticket_code) VALUES ($1, $2, make_ticket_code($2))`,
      { bind: [user, date] },
    );
    try {
      const report = await runAudit(app.config);
      expect(report.failed).toContain('one-order-per-user-day');
      const check = report.checks.find((c) => c.id === 'one-order-per-user-day')!;
      expect(check.problems).toEqual([`user ${user} holds 2 valid orders for ${date}`]);
    } finally {
      await app.rt.db.query(`DELETE FROM orders WHERE user_id = $1 AND date = $2 AND message_id IS NULL`, {
        bind: [user, date],
      });
      await app.rt.db.query(
        `CREATE UNIQUE INDEX orders_one_valid_per_user_day ON orders (user_id, date) WHERE status = 'valid'`,
      );
    }
  });

  it('fails "stock-balance" for unbalanced day figures', async () => {
    const other = app.dates[1];
    await app.rt.db.query('ALTER TABLE ticket_days DROP CONSTRAINT ticket_days_stock_balanced');
    await app.rt.db.query('UPDATE ticket_days SET sold = total + 1 WHERE date = $1', { bind: [other] });
    try {
      const report = await runAudit(app.config, { dates: [other] });
      expect(report.days.map((d) => d.date)).toEqual([other]);
      expect(statusOf(report, 'stock-balance')).toBe('fail');
      expect(report.checks[0].problems.join('\n')).toMatch(/sold \d+ > total/);
    } finally {
      await app.rt.db.query('UPDATE ticket_days SET sold = 0 WHERE date = $1', { bind: [other] });
      await app.rt.db.query(
        `ALTER TABLE ticket_days ADD CONSTRAINT ticket_days_stock_balanced
           CHECK (remaining >= 0 AND sold >= 0 AND sold + remaining = total)`,
      );
    }
  });

  it('reports a diverged cache stock and lost claims: a failure when idle, a warning with --live', async () => {
    const other = app.dates[2];
    const stock = await app.rt.redis.get(keys.stock(other));
    const victim = bought.find((r) => r.status === 'SUCCESS')!;
    await app.rt.redis.set(keys.stock(other), Number(stock) + 3);
    await app.rt.redis.hdel(keys.claims(date), String(victim.userId));
    try {
      const idle = await runAudit(app.config);
      expect(idle.failed).toEqual(['cache-converges']);
      const check = idle.checks.find((c) => c.id === 'cache-converges')!;
      expect(check.figures).toMatchObject({ stockDifferences: 1, claimsMissing: 1 });
      expect(check.problems.join('\n')).toContain(`cache stock ${Number(stock) + 3} != database remaining`);

      const live = await runAudit(app.config, { live: true });
      expect(live.ok).toBe(true);
      expect(statusOf(live, 'cache-converges')).toBe('warn');
      const run = await cli(app.env, ['--live']);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/! cache-converges/);
    } finally {
      await app.rt.redis.set(keys.stock(other), stock!);
      await app.rt.redis.hset(keys.claims(date), String(victim.userId), victim.messageId);
    }
  });

  it('fails "no-stuck-messages" for an old non-terminal result and a leaked reservation', async () => {
    const stuck = 'stuck-message-0001';
    const oldIso = new Date(Date.now() - 10 * 60_000).toISOString();
    await app.rt.redis.hset(keys.result(stuck), {
      messageId: stuck,
      userId: '99',
      date,
      status: 'PROCESSING',
      attempts: '1',
      queuedAt: oldIso,
      updatedAt: oldIso,
    });
    const ended = bought.find((r) => r.status === 'SUCCESS')!;
    await app.rt.redis.hset(keys.pending(date), ended.messageId, String(ended.userId));
    try {
      const report = await runAudit(app.config, { live: true });
      expect(report.failed).toEqual(['no-stuck-messages']);
      const check = report.checks.find((c) => c.id === 'no-stuck-messages')!;
      expect(check.figures).toMatchObject({ stuck: 1, leakedReservations: 1 });
      // A younger non-terminal result is in flight, not stuck.
      const lenient = await runAudit(app.config, { live: true, stuckAfterMs: 3_600_000 });
      expect(lenient.checks.find((c) => c.id === 'no-stuck-messages')!.figures).toMatchObject({ stuck: 0 });
      const run = await cli(app.env, ['--live', '--stuck-after-ms', '60000']);
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(/✘ no-stuck-messages\s+1 non-terminal \(1 older than 60000 ms\)/);
    } finally {
      await app.rt.redis.del(keys.result(stuck));
      await app.rt.redis.hdel(keys.pending(date), ended.messageId);
    }
  });

  it('fails "no-stranded-admissions" for an admission the queue never acknowledged', async () => {
    const messageId = 'stranded-message-0001';
    // Owned by the live service and younger than its grace: its outbox recovery leaves it alone.
    const entry = outboxEntry({ date, messageId, admitter: app.rt.admitter });
    await app.rt.redis
      .multi()
      .hset(keys.pending(date), messageId, '98')
      .zadd(keys.outbox, Date.now() - 5000, entry)
      .exec();
    try {
      const report = await runAudit(app.config, { live: true, stuckAfterMs: 1000 });
      expect(report.failed).toEqual(['no-stranded-admissions']);
      const check = report.checks.find((c) => c.id === 'no-stranded-admissions')!;
      expect(check.figures).toMatchObject({ outbox: 1, stranded: 1 });
      expect(check.problems[0]).toContain(`admission ${messageId} of user 98 unpublished since`);
      // Younger than the threshold, it is on its way to the queue.
      const lenient = await runAudit(app.config, { live: true, stuckAfterMs: 60_000 });
      expect(lenient.checks.find((c) => c.id === 'no-stranded-admissions')!.figures).toMatchObject({
        outbox: 1,
        stranded: 0,
      });
      const run = await cli(app.env, ['--live', '--stuck-after-ms', '1000']);
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(
        /✘ no-stranded-admissions\s+1 admission awaiting the queue, 1 older than 1000 ms/,
      );
    } finally {
      await app.rt.redis.multi().hdel(keys.pending(date), messageId).zrem(keys.outbox, entry).exec();
    }
  });

  it('sees the sale day figures as the service does (stats agree)', async () => {
    const [stats] = await app.rt.db.query<{ sold: number }>('SELECT sold FROM ticket_days WHERE date = $1', {
      bind: [date],
      type: QueryTypes.SELECT,
    });
    const report = await runAudit(app.config);
    expect(report.ok).toBe(true);
    expect(report.days.find((d) => d.date === date)?.sold).toBe(stats.sold);
  });

  it('exits 2 when it cannot run: bad arguments, unreachable database', async () => {
    expect(() => parseArgs(['--stuck-after-ms', '-1'])).toThrow(/whole number/);
    expect(() => parseArgs(['--dates', '2025-13'])).toThrow(/YYYY-MM-DD/);
    expect(parseArgs(['--json', '--live', '--dates=2030-01-02,2030-01-03'])).toEqual({
      json: true,
      help: false,
      options: { live: true, dates: ['2030-01-02', '2030-01-03'] },
    });
    const bad = await cli(app.env, ['--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown argument --bogus/);
    const down = await cli({ ...app.env, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nothing' }, [
      '--json',
    ]);
    expect(down.code).toBe(2);
    expect(JSON.parse(down.stdout)).toMatchObject({ ok: false });
    expect(down.stderr).toMatch(/Audit could not run/);
  });
});
