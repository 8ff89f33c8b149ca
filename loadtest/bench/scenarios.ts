import type autocannon from 'autocannon';
import { loadConfig } from '../../config';
import { ERRORS } from '../../lib/errors';
import { PurchaseQueue } from '../../lib/purchase/queue';
import { saleDates } from '../../lib/sale/calendar';
import { keys } from '../../lib/store/keys';
import { eachLimit, type Answer } from './client';
import { Latencies, runLoad, type LoadResult, type LoadSpec } from './load';
import { cpuPerRequestUs, type PhaseStats } from './monitor';
import { BEST_LAYOUT } from './options';
import { errorsColumn, latencyColumns, round, type Results } from './results';
import type { Bench } from './setup';

/**
 * The scenarios of SPEC §6, on the service's default 3 sale days (the per-request date checks cost
 * what they cost in production). dates[1]: the flash crowd, then the sold-out storm on the day the
 * crowd sold out (or set to 0 stock when the crowd did not run). dates[2], overflowing into today:
 * the submit scenario, the polling seed and the drain burst, each with users never used before on
 * that day. Today is used last, so a run across midnight still finds its days inside the window.
 */
export const DAY = { flash: 1, storm: 1, main: 2, overflow: 0 } as const;

const PURCHASE = '/api/tickets/v2/purchase';
const JSON_HEADERS = { 'content-type': 'application/json' };
const TERMINAL = new Set(['SUCCESS', 'FAILED']);

interface SubmitAnswer {
  messageId: string;
  status: string;
}

interface ResultRecord {
  messageId: string;
  userId: number;
  status: string;
  completedAt?: string;
  errorCode?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Hands out (user, day) pairs never used before: users first..first+U-1 on each day in turn. */
export class PairAllocator {
  private next = 0;
  constructor(
    private readonly users: number,
    private readonly dates: string[],
    private readonly firstUser = 1,
  ) {}

  take(): { userId: number; date: string } {
    const i = this.next++;
    const round = Math.floor(i / this.users);
    // Past the last day the pairs repeat: answers become idempotent repeats (the checks say so).
    return { userId: this.firstUser + (i % this.users), date: this.dates[round % this.dates.length] };
  }

  get capacity(): number {
    return this.users * this.dates.length;
  }

  get used(): number {
    return this.next;
  }
}

/** A POST of `{ userId, date, verifyHash }`, a new pair for every request. */
function purchaseRequest(bench: Bench, pairs: () => { userId: number; date: string }, path = PURCHASE) {
  const request: autocannon.Request = {
    method: 'POST',
    path,
    headers: JSON_HEADERS,
    setupRequest: (req) => {
      const { userId, date } = pairs();
      req.body = JSON.stringify({ userId, date, verifyHash: bench.hash(userId, date) });
      return req;
    },
  };
  return request;
}

/** A GET of `path + id`, cycling over `ids`. */
function getRequest(prefix: string, ids: string[]): autocannon.Request {
  let i = 0;
  return {
    method: 'GET',
    setupRequest: (req) => {
      req.path = prefix + encodeURIComponent(ids[i++ % ids.length]);
      return req;
    },
  };
}

/** Unmeasured load before a measured run (JIT, connection pools, caches). */
async function warmup(bench: Bench, phase: string, spec: Omit<LoadSpec, 'title' | 'duration'>) {
  if (bench.opts.warmup <= 0) return null;
  return runLoad({ ...spec, title: `${phase} (warm-up)`, duration: bench.opts.warmup }, bench.progress);
}

/** The measured run, inside a monitor phase. */
async function measured(bench: Bench, phase: string, spec: Omit<LoadSpec, 'title' | 'duration'>) {
  const { opts, progress, monitor } = bench;
  monitor.begin(phase);
  const load = await runLoad({ ...spec, title: phase, duration: opts.duration }, progress);
  const stats = monitor.end();
  if (stats) stats.requests = load.completed;
  progress.line(
    `${phase}: ${load.rps} req/s, p50 ${load.latencyMs.p50} ms, p99 ${load.latencyMs.p99} ms, ` +
      `errors/non-2xx ${errorsColumn(load)}` +
      (stats ? `; cores: ${coresLine(stats.cores)}` : ''),
  );
  return load;
}

function coresLine(cores: Record<string, number>): string {
  return Object.entries(cores)
    .filter(([, v]) => v >= 0.01)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

/** Waits until the queue has nothing pending or in flight (twice in a row). */
export async function waitIdle(bench: Bench, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let calm = 0;
  while (Date.now() < deadline) {
    bench.assertAlive();
    const info = await bench.queue!.consumerInfo();
    const backlog = info.num_pending + info.num_ack_pending;
    if (backlog === 0) {
      if (++calm >= 2) return;
    } else {
      calm = 0;
      bench.progress.status(`waiting for the queue to drain: ${backlog} messages`);
    }
    await sleep(100);
  }
  throw new Error(`the purchase queue did not drain within ${timeoutMs} ms`);
}

async function setStock(bench: Bench, date: string, total: number): Promise<void> {
  const answer = await bench.http.call(
    bench.urls[0],
    'PUT',
    `/api/admin/tickets/${date}`,
    { total },
    bench.admin,
  );
  if (answer.status !== 200) {
    throw new Error(`setting the stock of ${date} failed: ${answer.status} ${JSON.stringify(answer.body)}`);
  }
}

async function count(bench: Bench, sql: string, params: unknown[]): Promise<number> {
  const { rows } = await bench.db!.query<{ n: number }>(sql, params);
  return Number(rows[0]?.n ?? 0);
}

const ordersOn = (bench: Bench, dates: string[]) =>
  count(bench, `SELECT count(*)::int AS n FROM orders WHERE status = 'valid' AND date = ANY($1::date[])`, [
    dates,
  ]);

/**
 * Tickets sold on the days, from their `ticket_days` rows: `place_orders` moves `sold` in the
 * statement that inserts the orders, so it follows the commits at the cost of two row lookups. A
 * count of the orders themselves reads every order of the days, and polled every 20 ms over 100k
 * orders it took as much of PostgreSQL as the drain it was watching.
 */
const soldOn = (bench: Bench, dates: string[]) =>
  count(bench, `SELECT coalesce(sum(sold), 0)::int AS n FROM ticket_days WHERE date = ANY($1::date[])`, [
    dates,
  ]);

const ok200 = (load: LoadResult) => load.statusCodes['200'] ?? 0;

/** The days of the submit, polling-seed and drain requests: dates[2], then today when it overflows. */
const mainDates = (bench: Bench) => [bench.dates[DAY.main], bench.dates[DAY.overflow]];

const mainAllocators = new WeakMap<Bench, PairAllocator>();

/**
 * One allocator for every scenario on the main days. Their stock is twice the seeded users (each
 * buys one ticket a day): "stock available" to the last scenario. With stock for exactly every user,
 * the day sold out during the run's last submits, and a crowd about to sell its day out is one the
 * workers do not yield to (lib/purchase/crowd.ts) — the flash crowd's case, not this one.
 */
async function mainPairs(bench: Bench): Promise<PairAllocator> {
  let pairs = mainAllocators.get(bench);
  if (!pairs) {
    const users = Number(bench.env.SEED_USERS);
    for (const date of mainDates(bench)) await setStock(bench, date, 2 * users);
    pairs = new PairAllocator(users, mainDates(bench));
    mainAllocators.set(bench, pairs);
  }
  return pairs;
}

// ---------------------------------------------------------------------------------------------------

/** The echo's load of one kind: the same requests (shape, size, per-request work of the generator). */
function echoSpec(bench: Bench, method: 'POST' | 'GET') {
  const url = bench.echo?.url;
  if (!url) throw new Error('the echo gateway is not running');
  if (method === 'POST') {
    const pairs = new PairAllocator(1_000_000, ['2030-01-01']);
    return {
      urls: [url],
      connections: bench.opts.connections,
      request: purchaseRequest(bench, () => pairs.take(), '/api/echo'),
    };
  }
  const ids = Array.from(
    { length: 1000 },
    (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
  );
  return {
    urls: [url],
    connections: bench.opts.connections,
    request: getRequest('/api/echo?messageId=', ids),
  };
}

/** Every echo answer must be a 200: otherwise the baseline measured something else. */
function checkEcho(results: Results, phase: string, load: LoadResult): void {
  results.check(
    'echo',
    `${phase}: every answer 200`,
    ok200(load) === load.completed && load.errors === 0,
    errorsColumn(load),
  );
  results.details.echo = { ...(results.details.echo as object), [phase]: load };
}

/**
 * The echo ceiling measured again right before a throughput scenario, as its baseline: this machine's
 * speed drifts by tens of percent within a run, so a baseline taken a minute earlier misleads.
 */
async function echoBefore(bench: Bench, results: Results, method: 'POST' | 'GET', scenario: string) {
  const spec = echoSpec(bench, method);
  const phase = `echo ${method} (before ${scenario})`;
  await warmup(bench, phase, spec);
  const load = await measured(bench, phase, spec);
  checkEcho(results, phase, load);
  return load;
}

/**
 * The echo ceiling: the same requests (shape, size, per-request work of the generator) to a constant.
 * The echo gateway keeps running (idle) so that each throughput scenario can measure it again first.
 */
export async function echoScenario(bench: Bench, results: Results): Promise<void> {
  bench.progress.line('echo ceiling: starting the echo gateway');
  await bench.startEcho();
  for (const method of ['POST', 'GET'] as const) {
    const spec = echoSpec(bench, method);
    const phase = `echo ${method}`;
    await warmup(bench, phase, spec);
    const load = await measured(bench, phase, spec);
    checkEcho(results, phase, load);
    results.figure({
      id: `echo-${method.toLowerCase()}`,
      figure: `echo ceiling ${method} (first measurement)`,
      value: load.rps,
      unit: 'req/s',
      baseline: null,
      ratio: null,
      target: '-',
      ...latencyColumns(load.latencyMs),
      errors: errorsColumn(load),
    });
  }
}

/** The floor's load, kept with its gateway so the submit scenario can measure the floor again. */
const floorLoads = new WeakMap<Bench, Omit<LoadSpec, 'title' | 'duration'>>();

/**
 * The submit floor: the least an accepted submit needs (validation, calendar, verify hash, one Redis
 * admission, one acknowledged JetStream publish) on the echo's gateway, with nothing else running.
 * No SPEC target of its own: it bounds what the full submit, on the same gateway path and with its
 * orders to make as well, can reach on this machine. The floor gateway stays up (idle, like the
 * echo's) for its measurement right before the submit.
 */
export async function floorScenario(bench: Bench, results: Results): Promise<void> {
  bench.progress.line('submit floor: starting the floor gateway (admission + publish, nothing else)');
  const floor = await bench.startFloor();
  const pairs = new PairAllocator(Number(bench.env.SEED_USERS), [...saleDates(bench.config.sale)]);
  const spec = {
    urls: [floor.url],
    connections: bench.opts.connections,
    request: purchaseRequest(bench, () => pairs.take(), '/api/floor'),
  };
  floorLoads.set(bench, spec);
  const warm = await warmup(bench, 'submit floor', spec);
  const baseline = await echoBefore(bench, results, 'POST', 'floor');
  const load = await measured(bench, 'submit floor', spec);
  const ratio = round(load.rps / Math.max(1, baseline.rps), 2);
  results.figure({
    id: 'floor',
    figure: '(1) submit floor: admission + publish alone, no workers',
    value: load.rps,
    unit: 'req/s',
    baseline: baseline.rps,
    ratio,
    target: '- (bounds (1))',
    ...latencyColumns(load.latencyMs),
    errors: errorsColumn(load),
  });

  // Every answered submit is on the floor's stream (requests cut off by the end of a run may be too).
  const queue = await PurchaseQueue.open(
    loadConfig({ ...bench.env, NAMESPACE: bench.floorNamespace }),
    'bench',
  );
  const published = await queue.jsm.streams
    .info(queue.names.stream)
    .then((info) => info.state.messages)
    .finally(() => queue.close());
  const answered = (warm ? ok200(warm) : 0) + ok200(load);
  results.check(
    'floor',
    'every answer is 200 (accepted)',
    ok200(load) === load.completed && load.errors === 0 && pairs.used <= pairs.capacity,
    errorsColumn(load),
  );
  results.check(
    'floor',
    'every accepted submit is on the stream',
    answered <= published && published <= pairs.used,
    `${published} messages for ${answered} answered 200 (incl. warm-up), ${pairs.used} sent`,
  );
  results.details.floor = { load, answered, published, sent: pairs.used };
}

/** The floor measured again right before the submit (null when this run measured no floor). */
async function floorBefore(bench: Bench, results: Results) {
  const spec = floorLoads.get(bench);
  if (!spec) return null;
  const phase = 'submit floor (before submit)';
  await warmup(bench, phase, spec);
  const load = await measured(bench, phase, spec);
  results.check(
    'floor',
    `${phase}: every answer is 200 (accepted)`,
    ok200(load) === load.completed && load.errors === 0,
    errorsColumn(load),
  );
  return load;
}

/**
 * Submits with distinct users and stock available on the running layout, compared with an echo
 * measured right before (and the floor, when given, between the two); then every request sent must
 * become an order. Returns the load, its echo and its floor.
 */
async function measureSubmit(
  bench: Bench,
  results: Results,
  scenario: 'submit' | 'default',
  phase: string,
  floor?: () => Promise<LoadResult | null>,
) {
  const pairs = await mainPairs(bench);
  const dates = mainDates(bench);
  bench.progress.line(
    `${phase}: stock for every request on ${dates.join(' then ')}, one new user per request`,
  );
  await waitIdle(bench);
  const ordersBefore = await ordersOn(bench, dates);
  const usedBefore = pairs.used;
  const spec = {
    urls: bench.urls,
    connections: bench.opts.connections,
    request: purchaseRequest(bench, () => pairs.take()),
  };
  const warm = await warmup(bench, phase, spec);
  await waitIdle(bench);
  const baseline = await echoBefore(bench, results, 'POST', phase);
  // The machine's yardstick: the same requests cost two to three times as much on some 2-core VMs of
  // this kind as on others.
  const echoUs = cpuPerRequestUs(bench.monitor.phases.at(-1), 'echo');
  const floorLoad = (await floor?.()) ?? null;
  const load = await measured(bench, phase, spec);
  const submitting = bench.monitor.phases.at(-1);

  // Every accepted message must become an order (the stock covers every request); the CPU of
  // making the orders left over counts toward the purchases too.
  const beforeDrain = Date.now();
  bench.monitor.begin(`${phase} (backlog)`);
  await waitIdle(bench, 180_000);
  const backlog = bench.monitor.end();
  if (backlog) backlog.requests = load.completed;
  const drainSeconds = (Date.now() - beforeDrain) / 1000;
  // Requests still in flight when autocannon stops are sent (and bought) but not counted as answers:
  // every request sent (one pair each) must have become an order.
  const answered = (warm ? ok200(warm) : 0) + ok200(load);
  const sent = pairs.used - usedBefore;
  const orders = (await ordersOn(bench, dates)) - ordersBefore;
  results.check(
    scenario,
    'every answer is 200 (accepted)',
    ok200(load) === load.completed && load.errors === 0,
    errorsColumn(load),
  );
  results.check(
    scenario,
    'every request used a new user',
    pairs.used <= pairs.capacity,
    `${sent} pairs (${pairs.used} of ${pairs.capacity} used)`,
  );
  results.check(
    scenario,
    'every request sent became an order',
    orders === sent && answered <= sent,
    `${orders} orders for ${sent} sent, ${answered} answered 200 (incl. warm-up)`,
  );
  results.details[scenario] = { load, sent, answered, orders, backlogDrainSeconds: round(drainSeconds, 2) };
  const cost = cpuPerPurchase(bench, [submitting, backlog], load.completed);
  return { load, baseline, floorLoad, cost, echoUs };
}

const SERVERS = ['redis', 'nats', 'postgres'];

/**
 * CPU time of the whole service (its processes, Redis, NATS, PostgreSQL) per purchase over the
 * given phases, in µs, per party and in total; null without /proc.
 */
function cpuPerPurchase(bench: Bench, phases: (PhaseStats | undefined)[], purchases: number) {
  const parties = new Set([...bench.monitor.peaks().map((p) => p.label), ...SERVERS]);
  parties.delete('echo');
  parties.delete('floor');
  const perParty: Record<string, number> = {};
  for (const phase of phases) {
    for (const [label, cores] of Object.entries(phase?.cores ?? {})) {
      if (parties.has(label)) perParty[label] = (perParty[label] ?? 0) + cores * phase!.seconds;
    }
  }
  if (Object.keys(perParty).length === 0 || purchases === 0) return null;
  let total = 0;
  for (const label of Object.keys(perParty)) {
    perParty[label] = Math.round((perParty[label] * 1e6) / purchases);
    total += perParty[label];
  }
  return { total, perParty };
}

/** The bench's layout as the table names it; the default one is the measured best on 2 cores. */
function layoutName({ opts }: Bench): string {
  const layout =
    opts.workers === 0 ? `${opts.gateways} x all services` : `${opts.gateways} gw + ${opts.workers} workers`;
  const best = opts.gateways === BEST_LAYOUT.gateways && opts.workers === BEST_LAYOUT.workers;
  return best ? `best layout: ${layout}` : layout;
}

/** SPEC §6: submit in the best layout reaches this share of the submit floor of the same run. */
const SUBMIT_OF_FLOOR = 0.9;

/**
 * (1) Submit with distinct users and stock available, in the bench's layout, against the submit
 * floor measured right before it, as every throughput scenario is against its echo: the machine's
 * speed drifts between the first floor and the submit by as much as the gap being judged. The first
 * floor, scaled by the echo right before the submit (floor / its echo x this echo), is in the note.
 */
export async function submitScenario(bench: Bench, results: Results): Promise<void> {
  const { load, baseline, floorLoad, cost, echoUs } = await measureSubmit(
    bench,
    results,
    'submit',
    'submit',
    () => floorBefore(bench, results),
  );
  const floorRatio = results.figures.find((f) => f.id === 'floor')?.ratio ?? null;
  const scaled = floorRatio === null ? null : Math.round(floorRatio * baseline.rps);
  const floor = floorLoad?.rps ?? null;
  const ratio = floor === null ? null : round(load.rps / Math.max(1, floor), 2);
  results.figure({
    id: 'submit',
    figure: `(1) submit, distinct users, stock available (${layoutName(bench)})`,
    value: load.rps,
    unit: 'req/s',
    baseline: floor,
    ratio,
    target: `>= ${SUBMIT_OF_FLOOR} x floor, p99 <= 50 ms`,
    pass: ratio === null ? null : ratio >= SUBMIT_OF_FLOOR && (load.latencyMs.p99 ?? Infinity) <= 50,
    ...latencyColumns(load.latencyMs),
    errors: errorsColumn(load),
    note:
      `${round(load.rps / Math.max(1, baseline.rps), 2)} x the echo right before (${baseline.rps} req/s); ` +
      (floor === null
        ? 'no floor measured in this run (--only): not judged'
        : `baseline = the floor right before (${floor} req/s, p99 ${floorLoad?.latencyMs.p99} ms); ` +
          `the first floor scaled by that echo: ${scaled} req/s, submit ${round(load.rps / Math.max(1, scaled ?? 0), 2)} x that`),
  });
  results.figure({
    id: 'cpu',
    figure: '(6) CPU per accepted purchase, whole service (submit + its orders)',
    value: cost?.total ?? null,
    unit: 'µs',
    baseline: null,
    ratio: null,
    target: `<= ${CPU_TARGET_US} µs`,
    pass: cost ? cost.total <= CPU_TARGET_US : null,
    p50: null,
    p99: null,
    errors: '-',
    note: cost
      ? Object.entries(cost.perParty)
          .filter(([, us]) => us > 0)
          .map(([label, us]) => `${label} ${us}`)
          .join(', ') +
        ' µs' +
        (echoUs
          ? `; ${round(cost.total / echoUs, 2)} x an echo request's CPU (${Math.round(echoUs)} µs in this run)`
          : '')
      : 'no /proc: not measured',
  });
}

/** SPEC §6: CPU per accepted purchase, end to end, for the whole service. */
const CPU_TARGET_US = 300;

/**
 * (1b) Submit on the default start: exactly what `npm start` runs (the supervisor and its children),
 * replacing the bench's layout, so the README's claim about the default is measured every run.
 */
export async function defaultStartScenario(bench: Bench, results: Results): Promise<void> {
  bench.progress.line('default start: stopping the bench layout, starting `npm start` (no SERVICES)…');
  const supervisor = await bench.startDefault();
  bench.progress.line(`npm start up: supervisor pid ${supervisor.pid}`);
  const { load, baseline } = await measureSubmit(bench, results, 'default', 'submit on npm start');
  results.throughput('default', '(1b) submit on the default start (npm start)', load, baseline, 0.5, 50);
}

/** (2) Sold-out storm: stock 0, every submit answers 6002. */
export async function stormScenario(bench: Bench, results: Results): Promise<void> {
  const date = bench.dates[DAY.storm];
  const ordersBefore = await ordersOn(bench, [date]);
  if (ordersBefore === 0) await setStock(bench, date, 0);
  const { rows } = await bench.db!.query<{ remaining: number }>(
    'SELECT remaining FROM ticket_days WHERE date = $1',
    [date],
  );
  if (rows[0]?.remaining !== 0) throw new Error(`${date} is not sold out (remaining ${rows[0]?.remaining})`);
  // Users who never bought that day (the flash crowd used 1..F): each answer is a plain 6002.
  const first = bench.opts.flashUsers + 1;
  const users = Math.max(1, Number(bench.env.SEED_USERS) - bench.opts.flashUsers);
  bench.progress.line(
    `sold-out storm: ${date} is sold out${ordersBefore ? ' (by the flash crowd)' : ''}; ` +
      `users ${first}..${first + users - 1} submit, every answer should be 6002`,
  );
  const pairs = new PairAllocator(users, [date], first);
  const spec = {
    urls: bench.urls,
    connections: bench.opts.connections,
    request: purchaseRequest(bench, () => pairs.take()),
  };
  await warmup(bench, 'sold-out storm', spec);
  const baseline = await echoBefore(bench, results, 'POST', 'storm');
  const load = await measured(bench, 'sold-out storm', spec);
  results.throughput('storm', '(2) sold-out storm (all 6002)', load, baseline, 0.9);
  const sample = await bench.http.call(bench.urls[0], 'POST', PURCHASE, {
    userId: first,
    date,
    verifyHash: bench.hash(first, date),
  });
  const conflicts = load.statusCodes['409'] ?? 0;
  results.check(
    'storm',
    'every answer is 409 / 6002 (sold out)',
    conflicts === load.completed && load.errors === 0 && sample.body.code === ERRORS.SOLD_OUT.code,
    `${errorsColumn(load)}; sample code ${sample.body.code}`,
  );
  const orders = (await ordersOn(bench, [date])) - ordersBefore;
  results.check('storm', 'no new order for a sold-out day', orders === 0, `${orders} new orders`);
  results.details.storm = { load };
}

/** (3) Polling terminal results: GET result for known SUCCESS message ids. */
export async function pollScenario(bench: Bench, results: Results): Promise<void> {
  let ids = await successIds(bench, 1000);
  if (ids.length === 0) {
    const pairs = await mainPairs(bench);
    bench.progress.line('polling: buying 200 tickets first to have SUCCESS results to poll');
    await eachLimit(
      Array.from({ length: 200 }, (_, i) => i),
      16,
      async (i) => {
        const { userId, date } = pairs.take();
        await bench.http.call(bench.urls[i % bench.urls.length], 'POST', PURCHASE, {
          userId,
          date,
          verifyHash: bench.hash(userId, date),
        });
      },
    );
    await waitIdle(bench);
    ids = await successIds(bench, 1000);
  }
  bench.progress.line(`polling: GET result of ${ids.length} SUCCESS messages in turn`);
  const spec = {
    urls: bench.urls,
    connections: bench.opts.connections,
    request: getRequest(`${PURCHASE}/result?messageId=`, ids),
  };
  await warmup(bench, 'polling', spec);
  const baseline = await echoBefore(bench, results, 'GET', 'polling');
  const load = await measured(bench, 'polling', spec);
  results.throughput('poll', '(3) polling terminal results', load, baseline, 0.8);
  const sample = await bench.http.call<ResultRecord>(
    bench.urls[0],
    'GET',
    `${PURCHASE}/result?messageId=${ids[0]}`,
  );
  results.check(
    'poll',
    'every answer is 200 with a SUCCESS record',
    ok200(load) === load.completed && load.errors === 0 && sample.body.data?.status === 'SUCCESS',
    `${errorsColumn(load)}; sample ${sample.body.data?.status}`,
  );
  results.details.poll = { load, ids: ids.length };
}

async function successIds(bench: Bench, limit: number): Promise<string[]> {
  const { rows } = await bench.db!.query<{ id: string }>(
    `SELECT message_id AS id FROM orders WHERE message_id IS NOT NULL AND status = 'valid' LIMIT $1`,
    [limit],
  );
  return rows.map((r) => r.id);
}

/** SPEC §6: orders committed per second on 2 cores. */
const DRAIN_TARGET = 8000;

/**
 * (4) Order drain rate. The consumer is held (max_ack_pending 1) while a burst of N messages is
 * submitted, then released: the commit rate is measured on the database from the release until
 * the last order, without the gateway's submit rate in the way.
 */
export async function drainScenario(bench: Bench, results: Results): Promise<void> {
  const pairs = await mainPairs(bench);
  const dates = mainDates(bench);
  const n = bench.opts.drainMessages;
  const queue = bench.queue!;
  const { stream, consumer } = queue.names;
  bench.progress.line(`order drain: ${n} messages queued while the consumer is held, then released`);
  await waitIdle(bench);
  const before = await ordersOn(bench, dates);
  const soldBefore = await soldOn(bench, dates);
  let held = true;
  try {
    await queue.jsm.consumers.update(stream, consumer, { max_ack_pending: 1 });
  } catch (err) {
    held = false;
    bench.progress.line(
      `warning: could not hold the consumer (${(err as Error).message}); measuring while submitting`,
    );
  }
  let burst: LoadResult;
  let releasedAt: number;
  let atRelease: number;
  try {
    burst = await runLoad(
      {
        title: 'drain burst',
        urls: bench.urls,
        connections: bench.opts.connections,
        amount: n,
        request: purchaseRequest(bench, () => pairs.take()),
      },
      bench.progress,
    );
  } finally {
    atRelease = (await soldOn(bench, dates)) - soldBefore;
    bench.monitor.begin('order drain');
    releasedAt = Date.now();
    if (held)
      await queue.jsm.consumers.update(stream, consumer, {
        max_ack_pending: bench.config.queue.maxAckPending,
      });
  }
  const accepted = ok200(burst);
  const deadline = Date.now() + Math.max(60_000, accepted * 2);
  let orders = atRelease;
  let doneAt = releasedAt;
  while (Date.now() < deadline) {
    orders = (await soldOn(bench, dates)) - soldBefore;
    doneAt = Date.now();
    if (orders >= accepted) break;
    bench.progress.status(`order drain: ${orders}/${accepted} orders`);
    await sleep(20);
  }
  const stats = bench.monitor.end();
  const drained = orders - atRelease;
  if (stats) stats.requests = drained;
  const seconds = Math.max(0.001, (doneAt - releasedAt) / 1000);
  const rate = Math.round(drained / seconds);
  // The orders of one place_orders call share its transaction's start (created_at's now()), so the
  // distinct values count the batches the workers committed.
  const { rows } = await bench.db!.query<{ first: Date; last: Date; n: number; batches: number }>(
    `SELECT min(created_at) AS first, max(created_at) AS last, count(*)::int AS n,
       count(DISTINCT created_at)::int AS batches FROM orders
     WHERE date = ANY($1::date[]) AND created_at >= $2`,
    [dates, new Date(releasedAt)],
  );
  const span = rows[0]?.first ? (rows[0].last.getTime() - rows[0].first.getTime()) / 1000 : null;
  const batches = rows[0]?.batches ?? 0;
  const perBatch = batches > 0 ? round(rows[0].n / batches, 1) : null;
  const made = (await ordersOn(bench, dates)) - before;
  results.figure({
    id: 'drain',
    figure: '(4) order drain (DB commits)',
    value: rate,
    unit: 'orders/s',
    baseline: null,
    ratio: null,
    target: `>= ${DRAIN_TARGET} orders/s`,
    pass: held ? rate >= DRAIN_TARGET : null,
    p50: null,
    p99: null,
    errors: errorsColumn(burst),
    note:
      `${drained} orders in ${round(seconds, 2)} s after release (${atRelease} committed while held); ` +
      `first-to-last transaction start ${span === null ? '-' : `${round(span, 2)} s`}; ` +
      `${batches} batches, ${perBatch ?? '-'} orders each` +
      (held ? '' : '; consumer NOT held: bounded by the submit rate'),
  });
  bench.progress.line(
    `order drain: ${rate} orders/s (${drained} in ${round(seconds, 2)} s)${stats ? `; cores: ${coresLine(stats.cores)}` : ''}`,
  );
  results.check(
    'drain',
    'every burst submit accepted',
    accepted === n && burst.errors === 0,
    errorsColumn(burst),
  );
  results.check(
    'drain',
    'every accepted message became an order',
    made === accepted && orders === accepted,
    `${made} orders (${orders} tickets sold) for ${accepted} accepted`,
  );
  results.details.drain = {
    burst,
    held,
    atRelease,
    drained,
    seconds: round(seconds, 3),
    rate,
    createdAtSpanSeconds: span,
    batches,
    ordersPerBatch: perBatch,
  };
  await waitIdle(bench);
}

/**
 * (5) The flash crowd: F distinct users against stock S, all at once (bounded by --connections);
 * every accepted message tracked to its terminal status with batch queries.
 */
export async function flashScenario(bench: Bench, results: Results): Promise<void> {
  const { opts, http, progress } = bench;
  const date = bench.dates[DAY.flash];
  const F = opts.flashUsers;
  const S = opts.flashStock;
  progress.line(`flash crowd: ${F} users against ${S} tickets on ${date}`);
  await setStock(bench, date, S);
  await waitIdle(bench);

  const users = Array.from({ length: F }, (_, i) => i + 1);
  for (let i = users.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [users[i], users[j]] = [users[j], users[i]];
  }
  const sentAt = new Map<string, number>(); // messageId → epoch ms (sub-ms) when its submit was sent
  const pending = new Set<string>();
  const outcome = { SUCCESS: 0, FAILED: 0, rejected: 0 };
  const unexpected: Record<string, number> = {};
  const failures: Record<string, number> = {};
  const successIdsSeen = new Set<string>();
  const toTerminal = new Latencies(); // accepted: submit sent → completedAt (server clock, same machine)
  const observed = new Latencies(); // accepted: submit sent → the bench saw the terminal status
  const everyone = new Latencies(); // every user: submit sent → final answer (refusal or terminal)
  const submitLatency = new Latencies();
  let errors = 0;

  const finish = (record: ResultRecord) => {
    if (!pending.delete(record.messageId)) return;
    const sent = sentAt.get(record.messageId)!;
    const seenMs = performance.timeOrigin + performance.now() - sent;
    const doneMs = record.completedAt ? Date.parse(record.completedAt) - sent : seenMs;
    toTerminal.add(Math.max(0, doneMs));
    everyone.add(Math.max(0, doneMs));
    observed.add(seenMs);
    if (record.status === 'SUCCESS') {
      outcome.SUCCESS++;
      successIdsSeen.add(record.messageId);
    } else {
      outcome.FAILED++;
      failures[String(record.errorCode)] = (failures[String(record.errorCode)] ?? 0) + 1;
    }
  };

  bench.monitor.begin('flash crowd');
  const started = performance.now();
  let submitting = true;
  const submission = eachLimit(users, opts.connections, async (userId, i) => {
    let answer: Answer<SubmitAnswer>;
    try {
      answer = await http.call<SubmitAnswer>(bench.urls[i % bench.urls.length], 'POST', PURCHASE, {
        userId,
        date,
        verifyHash: bench.hash(userId, date),
      });
    } catch {
      errors++;
      return;
    }
    submitLatency.add(answer.ms);
    if (answer.status === 200 && answer.body.code === 200) {
      const id = answer.body.data.messageId;
      sentAt.set(id, performance.timeOrigin + answer.sentAt);
      pending.add(id);
    } else if (answer.body.code === ERRORS.SOLD_OUT.code) {
      outcome.rejected++;
      everyone.add(answer.ms);
    } else {
      unexpected[`${answer.status}/${answer.body.code}`] =
        (unexpected[`${answer.status}/${answer.body.code}`] ?? 0) + 1;
    }
  }).finally(() => {
    submitting = false;
  });
  const submitted = submission.then(() => (performance.now() - started) / 1000);

  // Track: batch queries of up to 100 ids until every accepted message is terminal, as often as the
  // service lets its clients poll (POLL_MIN_MS): polled every 100 ms, the crowd's 5000 pending ids
  // took a third of the machine from the service it measured. The p99 comes from each record's
  // completedAt, not from when a poll saw it.
  const pollEveryMs = bench.config.poll.minMs;
  let trackDeadline = Infinity;
  let queries = 0;
  while (submitting || (pending.size > 0 && Date.now() < trackDeadline)) {
    if (!submitting && trackDeadline === Infinity) trackDeadline = Date.now() + Math.max(30_000, S * 10);
    const round0 = Date.now();
    const ids = [...pending];
    const batches: string[][] = [];
    for (let i = 0; i < ids.length; i += 100) batches.push(ids.slice(i, i + 100));
    await eachLimit(batches, 4, async (batch, i) => {
      queries++;
      const answer = await http
        .call<(ResultRecord | { messageId: string; code: number })[]>(
          bench.urls[i % bench.urls.length],
          'POST',
          `${PURCHASE}/results`,
          { messageIds: batch },
        )
        .catch(() => null);
      for (const r of answer?.body.data ?? []) if ('status' in r && TERMINAL.has(r.status)) finish(r);
    });
    progress.status(
      `flash crowd: ${outcome.rejected + sentAt.size}/${F} submitted, ${pending.size} pending, ${outcome.SUCCESS} SUCCESS, ${outcome.FAILED} FAILED`,
    );
    await sleep(Math.max(0, pollEveryMs - (Date.now() - round0)));
    if (!submitting) bench.assertAlive();
  }
  const submitSeconds = await submitted;
  const totalSeconds = (performance.now() - started) / 1000;
  const stats = bench.monitor.end();
  if (stats) stats.requests = F;
  progress.clearStatus();

  const accepted = sentAt.size;
  const lat = toTerminal.summary();
  results.figure({
    id: 'flash',
    figure: `(5) flash crowd ${F} users / ${S} tickets: submit -> terminal (accepted)`,
    value: lat.p99,
    unit: 'ms p99',
    baseline: null,
    ratio: null,
    target: 'p99 <= 2000 ms',
    pass: lat.p99 !== null && lat.p99 <= 2000,
    p50: lat.p50,
    p99: lat.p99,
    errors: `${errors} / ${outcome.rejected + Object.values(unexpected).reduce((a, b) => a + b, 0)}`,
    note:
      `${accepted} accepted, ${outcome.rejected} refused at once (6002); all ${F} submitted in ` +
      `${round(submitSeconds, 2)} s (${Math.round(F / submitSeconds)}/s), last terminal after ${round(totalSeconds, 2)} s; ` +
      `client-observed p99 ${observed.summary().p99} ms; every user's final answer p99 ${everyone.summary().p99} ms`,
  });
  results.figure({
    id: 'flash-outcome',
    figure: '(5) flash crowd outcome',
    value: `${outcome.SUCCESS} SUCCESS / ${outcome.FAILED + outcome.rejected} FAILED+rejected`,
    unit: '',
    baseline: null,
    ratio: null,
    target: `${S} / ${F - S}`,
    pass: outcome.SUCCESS === S && outcome.FAILED + outcome.rejected === F - S && pending.size === 0,
    p50: null,
    p99: null,
    errors: `${errors} / ${
      Object.entries(unexpected)
        .map(([k, v]) => `${v}x${k}`)
        .join(', ') || '0 unexpected'
    }`,
  });
  progress.line(
    `flash crowd: ${outcome.SUCCESS} SUCCESS, ${outcome.FAILED} FAILED, ${outcome.rejected} refused, ${pending.size} not terminal; ` +
      `submit->terminal p50 ${lat.p50} ms, p99 ${lat.p99} ms${stats ? `; cores: ${coresLine(stats.cores)}` : ''}`,
  );

  results.check('flash', `exactly ${S} SUCCESS`, outcome.SUCCESS === S, `${outcome.SUCCESS}`);
  results.check(
    'flash',
    `${F - S} FAILED or rejected`,
    outcome.FAILED + outcome.rejected === F - S,
    `${outcome.FAILED} FAILED (${JSON.stringify(failures)}), ${outcome.rejected} rejected`,
  );
  results.check(
    'flash',
    'every accepted message terminal',
    pending.size === 0,
    `${pending.size} of ${accepted} still pending`,
  );
  results.check(
    'flash',
    'no unexpected answer or error',
    errors === 0 && Object.keys(unexpected).length === 0,
    `${errors} errors, ${JSON.stringify(unexpected)}`,
  );

  // The database agrees: the day's counters, one order per SUCCESS, nobody twice.
  const { rows: days } = await bench.db!.query<{ total: number; remaining: number; sold: number }>(
    'SELECT total, remaining, sold FROM ticket_days WHERE date = $1',
    [date],
  );
  const day = days[0];
  const { rows: orderRows } = await bench.db!.query<{ id: string }>(
    `SELECT message_id AS id FROM orders WHERE date = $1 AND status = 'valid'`,
    [date],
  );
  const orderIds = new Set(orderRows.map((r) => r.id));
  const sameSet =
    orderIds.size === successIdsSeen.size && [...orderIds].every((id) => successIdsSeen.has(id));
  results.check(
    'flash',
    'DB sold + remaining = total, sold = stock',
    !!day && day.sold + day.remaining === day.total && day.sold === S,
    JSON.stringify(day),
  );
  results.check(
    'flash',
    'DB orders = SUCCESS results (same message ids)',
    orderRows.length === outcome.SUCCESS && sameSet,
    `${orderRows.length} orders, ${outcome.SUCCESS} SUCCESS`,
  );
  results.details.flash = {
    users: F,
    stock: S,
    accepted,
    outcome,
    failures,
    unexpected,
    errors,
    resultQueries: queries,
    submitSeconds: round(submitSeconds, 3),
    totalSeconds: round(totalSeconds, 3),
    submitLatencyMs: submitLatency.summary(),
    submitToTerminalMs: lat,
    clientObservedMs: observed.summary(),
    everyUserFinalAnswerMs: everyone.summary(),
  };
}

/** Invariants of SPEC §5 over every day of the run, after the queue drained. */
export async function finalInvariants(bench: Bench, results: Results): Promise<void> {
  await waitIdle(bench);
  const db = bench.db!;
  const { rows: bad } = await db.query<{ date: string }>(
    'SELECT date::text AS date FROM ticket_days WHERE sold + remaining <> total OR sold < 0 OR remaining < 0',
  );
  results.check(
    'all',
    'every day: sold + remaining = total',
    bad.length === 0,
    bad.map((r) => r.date).join(', '),
  );
  const { rows: mismatch } = await db.query<{ date: string; sold: number; orders: number }>(
    `SELECT d.date::text AS date, d.sold, coalesce(o.n, 0)::int AS orders FROM ticket_days d
     LEFT JOIN (SELECT date, count(*) AS n FROM orders WHERE status = 'valid' GROUP BY date) o ON o.date = d.date
     WHERE coalesce(o.n, 0) <> d.sold`,
  );
  results.check('all', 'every day: valid orders = sold', mismatch.length === 0, JSON.stringify(mismatch));
  const twice = await count(
    bench,
    `SELECT count(*)::int AS n FROM (SELECT user_id, date FROM orders WHERE status = 'valid'
     GROUP BY user_id, date HAVING count(*) > 1) x`,
    [],
  );
  results.check(
    'all',
    'no user holds two tickets for one day',
    twice === 0,
    `${twice} (user, day) pairs twice`,
  );
  const { rows: days } = await db.query<{ date: string; remaining: number }>(
    'SELECT date::text AS date, remaining FROM ticket_days WHERE date = ANY($1::date[]) ORDER BY date',
    [bench.dates],
  );
  const drift: string[] = [];
  for (const d of days) {
    const [stock, pendingCount] = await Promise.all([
      bench.redis!.get(keys.stock(d.date)),
      bench.redis!.hlen(keys.pending(d.date)),
    ]);
    if (stock === null || Number(stock) !== d.remaining || pendingCount !== 0) {
      drift.push(`${d.date}: redis ${stock} (+${pendingCount} pending) vs db ${d.remaining}`);
    }
  }
  results.check(
    'all',
    'Redis stock converged to the database, no reservation left',
    drift.length === 0,
    drift.join('; '),
  );
}
