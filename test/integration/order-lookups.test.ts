import pg from 'pg';
import { startApp, type TestApp } from '../helpers/app';

/**
 * place_orders keeps one generic plan per connection, made at its first call, with whatever
 * statistics the orders table has then: none at all where autovacuum is off or has not run yet, or
 * those of a table a few orders long (migration 005 forbids the sequential scan they favour).
 * Whatever index that plan picks for its per-request lookups must find one row, not read the day's
 * orders: a plan that read every valid order of the day per lookup (index on (date, status), user_id
 * as a filter) drained 160 orders/s once the day held 100k orders.
 */

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  Filter?: string;
  Plans?: PlanNode[];
}

const scansOf = (node: PlanNode): PlanNode[] => [
  ...(node['Relation Name'] === 'orders' ? [node] : []),
  ...(node.Plans ?? []).flatMap(scansOf),
];

const ORDERS = 60_000;

/** An app whose first day has stock for ORDERS orders and more, `prepare`d, and a client of its own. */
function lookupsApp(prepare: (app: TestApp) => Promise<void>): { app: TestApp; client: pg.Client } {
  const ctx = {} as { app: TestApp; client: pg.Client };
  beforeAll(async () => {
    ctx.app = await startApp({ SEED_USERS: String(ORDERS + 100) });
    await ctx.app.rt.db.query(
      `UPDATE ticket_days SET total = total + $2, remaining = remaining + $2 WHERE date = $1`,
      { bind: [ctx.app.dates[0], ORDERS + 10] },
    );
    await prepare(ctx.app);
    ctx.client = new pg.Client({ connectionString: ctx.app.config.databaseUrl });
    await ctx.client.connect();
  }, 120_000);
  afterAll(async () => {
    await ctx.client?.end();
    await ctx.app?.stop();
  });
  return ctx;
}

/** A day full of valid orders, written behind the statistics' back (no ANALYZE afterwards). */
async function addBulkOrders(app: TestApp): Promise<void> {
  await app.rt.db.query(
    `INSERT INTO orders (message_id, user_id, date, ticket_code)
     SELECT 'bulk-' || u, u, $1::date, make_ticket_code($1::date) FROM generate_series(1, $2::int) AS u`,
    { bind: [app.dates[0], ORDERS] },
  );
}

/** One place_orders call on the app's first day; the outcomes in request order. */
async function placeOrders(
  ctx: { app: TestApp; client: pg.Client },
  messageIds: string[],
  userIds: number[],
) {
  const { rows } = await ctx.client.query<{ outcome: string }>(
    'SELECT outcome FROM place_orders($1, $2, $3, 5000)',
    [ctx.app.dates[0], messageIds, userIds],
  );
  return rows.map((r) => r.outcome);
}

describe('the lookups of place_orders on a large, never analyzed orders table', () => {
  const ctx = lookupsApp(addBulkOrders);

  it('finds each request by message id and by user, never by reading the day', async () => {
    const plans = await explained(ctx.client);
    expect(await placeOrders(ctx, ['m-new', 'm-again'], [ORDERS + 1, 7])).toEqual([
      'inserted',
      'already_purchased',
    ]);
    expectIndexLookups(plans);
  }, 60_000);
});

describe('the lookups of place_orders planned while the orders table was analyzed small', () => {
  // What autovacuum does after a sale's first orders (or what a reset leaves): statistics that
  // say the table is tiny, so a sequential scan looks cheapest.
  const ctx = lookupsApp(async (app) => void (await app.rt.db.query('ANALYZE orders')));

  it('keeps looking requests up by index once the table has grown', async () => {
    // The connection's first call caches the plan, on those statistics.
    expect(await placeOrders(ctx, ['m-first'], [ORDERS + 1])).toEqual(['inserted']);
    await addBulkOrders(ctx.app);
    const plans = await explained(ctx.client);
    expect(await placeOrders(ctx, ['m-first', 'm-new', 'm-again'], [ORDERS + 1, ORDERS + 2, 7])).toEqual([
      'exists',
      'inserted',
      'already_purchased',
    ]);
    expectIndexLookups(plans);
  }, 60_000);
});

/** Collects the plans of the statements inside the function, sent to this client as notices. */
async function explained(client: pg.Client): Promise<PlanNode[]> {
  const plans: PlanNode[] = [];
  client.on('notice', (notice) => {
    const text = notice.message ?? '';
    const json = text.slice(text.indexOf('{'));
    if (text.includes('"Plan"')) plans.push((JSON.parse(json) as { Plan: PlanNode }).Plan);
  });
  await client.query("LOAD 'auto_explain'");
  await client.query('SET auto_explain.log_min_duration = 0');
  await client.query('SET auto_explain.log_nested_statements = on');
  await client.query("SET auto_explain.log_format = 'json'");
  await client.query("SET auto_explain.log_level = 'notice'");
  return plans;
}

/** Every read of the orders table is an index lookup of one request (by message id or by user). */
function expectIndexLookups(plans: PlanNode[]): void {
  const scans = plans.flatMap(scansOf).filter((s) => s['Node Type'] !== 'ModifyTable');
  expect(scans.length).toBeGreaterThan(0);
  for (const scan of scans) {
    expect(scan['Node Type']).toMatch(/Index/);
    expect(scan['Index Cond']).toMatch(/user_id|message_id|\bid\b/);
  }
}
