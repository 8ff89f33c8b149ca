import { spawn, type ChildProcess } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { connect, type ConsumerInfo, type NatsConnection } from 'nats';
import pg from 'pg';
import { loadConfig, type Config } from '../../config';
import { isTerminal } from '../../machines/purchase.machine';
import { runAudit } from '../../tools/audit/audit';
import { formatReport, type AuditOptions, type AuditReport } from '../../tools/audit/report';
import { queueNames } from '../../lib/purchase/queue';
import type { ResultRecord } from '../../lib/purchase/results';
import { saleDates } from '../../lib/sale/calendar';
import { issueVerifyHash } from '../../lib/sale/verify-hash';
import { ADMIN_TOKEN, cleanupNamespace, isolatedEnv, uniqueNamespace, type Envelope } from './app';

/**
 * Service nodes as child processes (SPEC §7, §8): spawn `app/main.ts` with an environment, wait
 * until its broker started (and its /health answers), send it signals, and keep its output for
 * failure messages. Every process spawned here is killed when the test process exits.
 */

export const ROOT = path.resolve(__dirname, '../..');
/** The pinned Node (devDependency), whatever node runs the tests. */
export const NODE = path.join(ROOT, 'node_modules/.bin/node');

const live = new Set<ServiceProcess>();
process.once('exit', () => {
  for (const p of live) p.forceKill();
});

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const MAX_LINES = 400;

/** A pino JSON line as one readable line; other lines unchanged. */
function readable(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const entry = JSON.parse(line) as Record<string, unknown>;
    const { level, time, msg, mod, err, stack } = entry as {
      level?: number;
      time?: number;
      msg?: string;
      mod?: string;
      err?: { message?: string; stack?: string };
      stack?: string;
    };
    const at = typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : '';
    const extra = err?.stack ?? err?.message ?? stack ?? '';
    return `${at} ${LEVELS[level ?? 30] ?? level} [${mod ?? '-'}] ${msg ?? ''}${extra ? ` ${extra}` : ''}`;
  } catch {
    return line;
  }
}

export interface SpawnOptions {
  /** Shown in failure messages. */
  name: string;
  /** The service environment (see `isolatedEnv`); PATH and HOME are added. */
  env: Record<string, string>;
  /** In a session of its own, as a process manager starts a service. */
  detached?: boolean;
}

/** One service node running `app/main.ts` in its own process. */
export class ServiceProcess {
  readonly name: string;
  readonly env: Record<string, string>;
  readonly exited: Promise<ExitInfo>;
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private dropped = 0;
  private waiters: { re: RegExp; resolve(line: string): void }[] = [];
  private exit: ExitInfo | null = null;
  /** The Moleculer nodeID, read from the first log line that names it. */
  nodeID: string | null = null;

  constructor(opts: SpawnOptions) {
    this.name = opts.name;
    this.env = opts.env;
    this.child = spawn(NODE, ['--import', 'tsx', 'app/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: opts.detached === true,
    });
    live.add(this);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        this.record(`[exited: code ${code}, signal ${signal}]`);
        resolve(this.exit);
      });
    });
    this.child.once('error', (err) => this.record(`[spawn error: ${err.message}]`));
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) if (line) this.record(line);
      });
    }
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exit === null;
  }

  /** The last lines of output, readable, for failure messages. */
  output(last = 80): string {
    const lines = this.lines.slice(-last).map(readable);
    const skipped = this.dropped + Math.max(0, this.lines.length - last);
    return (
      `--- ${this.name} (pid ${this.pid}${this.nodeID ? `, node ${this.nodeID}` : ''}) ---\n` +
      (skipped ? `[${skipped} earlier lines]\n` : '') +
      lines.join('\n')
    );
  }

  /** Lines seen so far matching `re` (within the kept window). */
  matching(re: RegExp): string[] {
    return this.lines.filter((l) => re.test(l));
  }

  /** Resolves with the first line (past or future) matching `re`. */
  waitForLine(re: RegExp, timeoutMs = 30_000): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        re,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`${this.name}: no line matching ${re} within ${timeoutMs} ms\n${this.output()}`));
      }, timeoutMs);
      this.waiters.push(waiter);
      void this.exited.then((exit) => {
        if (!this.waiters.includes(waiter)) return;
        this.waiters = this.waiters.filter((w) => w !== waiter);
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${JSON.stringify(exit)}) before ${re}\n${this.output()}`));
      });
    });
  }

  /** Waits until the broker reports every service started (needs LOG_LEVEL info or lower). */
  async waitStarted(timeoutMs = 30_000): Promise<void> {
    await this.waitForLine(/ServiceBroker with \d+ service\(s\) started successfully/, timeoutMs);
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGKILL, and wait for the exit. */
  async kill(): Promise<ExitInfo> {
    this.forceKill();
    return this.exited;
  }

  pause(): void {
    this.signal('SIGSTOP');
  }

  resume(): void {
    this.signal('SIGCONT');
  }

  /** SIGTERM (graceful stop); SIGKILL when it has not exited within `graceMs`. */
  async stop(graceMs = 15_000): Promise<ExitInfo> {
    if (!this.running) return this.exited;
    this.child.kill('SIGCONT'); // a paused process cannot handle SIGTERM
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.forceKill(), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  forceKill(): void {
    if (!this.running) return;
    try {
      this.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }

  private record(line: string): void {
    this.lines.push(line);
    if (this.lines.length > MAX_LINES) {
      // Keep the first lines (start-up) and the most recent ones.
      this.lines.splice(40, 1);
      this.dropped++;
    }
    if (!this.nodeID) this.nodeID = /"nodeID":"([^"]+)"/.exec(line)?.[1] ?? null;
    for (const waiter of [...this.waiters]) {
      if (waiter.re.test(line)) {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        waiter.resolve(line);
      }
    }
  }
}

/** Stops every load still running and kills (SIGKILL) every process spawned here still running. */
export async function killAll(): Promise<void> {
  const running = [...loads];
  for (const load of running) load.stop();
  await Promise.all([...live].map((p) => p.kill()));
  await Promise.all(running.map((l) => l.done.catch(() => undefined)));
}

/** A free TCP port on 127.0.0.1 (the OS picks it; the window until the child binds it is short). */
/**
 * The file-level cleanup of a fault suite: after all its tests, every process it spawned is killed,
 * then `closers` run in order (e.g. a proxy the suite owns).
 */
export function cleanUpAfterSuite(...closers: (() => Promise<void> | undefined)[]): void {
  afterAll(async () => {
    await killAll();
    for (const close of closers) await close();
  });
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ---------------------------------------------------------------------------------------------
// A deployment: gateway and worker nodes of one namespace, as separate processes.

export interface Answer<T = unknown> {
  status: number;
  body: Envelope<T>;
}

export interface SubmitData {
  messageId: string;
  status: string;
}

async function request<T>(
  url: string,
  method: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer<T>> {
  try {
    const res = await fetch(url, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(35_000),
    });
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) as Envelope<T> };
    } catch {
      return { status: res.status, body: { code: -1, message: text.slice(0, 200), data: null as T } };
    }
  } catch (err) {
    // The node is down or the connection broke: no HTTP answer at all.
    return { status: 0, body: { code: -1, message: (err as Error).message, data: null as T } };
  }
}

export class Gateway {
  constructor(
    readonly process: ServiceProcess,
    readonly port: number,
  ) {}
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get<T = unknown>(p: string, headers?: Record<string, string>): Promise<Answer<T>> {
    return request<T>(this.url + p, 'GET', undefined, headers);
  }
  post<T = unknown>(p: string, body: unknown = {}, headers?: Record<string, string>): Promise<Answer<T>> {
    return request<T>(this.url + p, 'POST', body, headers);
  }
  put<T = unknown>(p: string, body: unknown = {}, headers?: Record<string, string>): Promise<Answer<T>> {
    return request<T>(this.url + p, 'PUT', body, headers);
  }
}

export interface NodeOverrides {
  /** Extra environment for this node only (e.g. a DATABASE_URL through a proxy). */
  env?: Record<string, string>;
  name?: string;
  detached?: boolean;
}

/** Settings that keep fault scenarios short: quick redelivery and short delays. */
export const FAST_QUEUE: Record<string, string> = {
  QUEUE_ACK_WAIT_MS: '3000',
  QUEUE_DELAY_MS: '200',
  QUEUE_MAX_DELIVER: '5',
  WORKER_RETRY_ATTEMPTS: '2',
  WORKER_RETRY_BASE_MS: '100',
  DB_LOCK_TIMEOUT_MS: '1000',
  LOG_LEVEL: 'info',
};

/**
 * One isolated instance (own namespace, database, streams) run as several processes. `config` is
 * the configuration as the test sees it (real server URLs, whatever proxies the nodes go through).
 */
export class Deployment {
  readonly gateways: Gateway[] = [];
  readonly workers: ServiceProcess[] = [];
  readonly config: Config;
  readonly dates: readonly string[];
  readonly admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  private db?: pg.Client;
  private nc?: NatsConnection;
  private counter = 0;

  constructor(
    readonly namespace: string,
    readonly env: Record<string, string>,
  ) {
    this.config = loadConfig(env);
    this.dates = saleDates({
      timeZone: this.config.sale.timeZone,
      days: this.config.sale.days,
      windowStart: this.config.sale.windowStart,
      windowEnd: this.config.sale.windowEnd,
    });
  }

  static create(overrides: Record<string, string> = {}, prefix = 'f'): Deployment {
    const namespace = uniqueNamespace(prefix);
    return new Deployment(namespace, isolatedEnv(namespace, { ...FAST_QUEUE, ...overrides }));
  }

  get processes(): ServiceProcess[] {
    return [...this.gateways.map((g) => g.process), ...this.workers];
  }

  /** A gateway node: api, tickets and purchase (admission, results), on its own port. */
  async startGateway(o: NodeOverrides = {}): Promise<Gateway> {
    const port = await freePort();
    const proc = new ServiceProcess({
      name: o.name ?? `gateway-${++this.counter}`,
      env: { ...this.env, SERVICES: 'api,tickets,purchase', PORT: String(port), ...o.env },
      detached: o.detached,
    });
    const gateway = new Gateway(proc, port);
    this.gateways.push(gateway);
    await proc.waitStarted(60_000);
    await this.waitHealthy(gateway);
    return gateway;
  }

  /** A worker node: purchase-worker only (no HTTP port). */
  async startWorker(o: NodeOverrides = {}): Promise<ServiceProcess> {
    const proc = new ServiceProcess({
      name: o.name ?? `worker-${++this.counter}`,
      env: { ...this.env, SERVICES: 'purchase-worker', ...o.env },
      detached: o.detached,
    });
    this.workers.push(proc);
    await proc.waitStarted(60_000);
    return proc;
  }

  /**
   * The usual fault-scenario layout: one gateway, then its workers (started together; one plain worker
   * by default), and `stock` tickets on the first sale day. Returns the gateway.
   */
  async startSale(o: {
    stock: number;
    gateway?: NodeOverrides;
    workers?: NodeOverrides[];
  }): Promise<Gateway> {
    const gateway = await this.startGateway(o.gateway);
    await Promise.all((o.workers ?? [{}]).map((w) => this.startWorker(w)));
    await this.setStock(this.dates[0], o.stock);
    return gateway;
  }

  async waitHealthy(gateway: Gateway, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: Answer = { status: 0, body: { code: -1, message: 'not asked', data: null } };
    while (Date.now() < deadline) {
      last = await gateway.get('/health');
      if (last.status === 200) return;
      await sleep(100);
    }
    throw new Error(`${gateway.process.name} not healthy: ${JSON.stringify(last.body)}\n${this.output()}`);
  }

  hash(userId: number, date: string): string {
    return issueVerifyHash(this.config.hashSecret, userId, date, this.config.hashTtlSeconds).verifyHash;
  }

  /** Sets a day's stock through the admin API of the first gateway. */
  async setStock(date: string, total: number): Promise<void> {
    const answer = await this.gateways[0].put(`/api/admin/tickets/${date}`, { total }, this.admin);
    if (answer.body.code !== 200) throw new Error(`set stock failed: ${JSON.stringify(answer.body)}`);
  }

  /** A connection to the instance's database (real server, not through any proxy). */
  async sql<T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> {
    if (!this.db) {
      this.db = new pg.Client({ connectionString: this.config.databaseUrl });
      await this.db.connect();
    }
    return (await this.db.query<T>(text, values)).rows;
  }

  /** The shared durable consumer, as JetStream sees it (real server). */
  async consumerInfo(): Promise<ConsumerInfo> {
    this.nc ??= await connect({ servers: this.config.natsUrl.split(','), name: `${this.namespace}-test` });
    const jsm = await this.nc.jetstreamManager();
    const names = queueNames(this.namespace);
    return jsm.consumers.info(names.stream, names.consumer);
  }

  /** Every node's recent output, for failure messages. */
  output(last = 60): string {
    return this.processes.map((p) => p.output(last)).join('\n');
  }

  audit(opts: AuditOptions = {}): Promise<AuditReport> {
    return runAudit(this.config, opts);
  }

  /** Stops every node (SIGKILL: nothing to keep) and removes the database, keys and streams. */
  async destroy(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.kill()));
    await this.db?.end().catch(() => undefined);
    this.db = undefined;
    await this.nc?.close().catch(() => undefined);
    this.nc = undefined;
    await cleanupNamespace(this.config).catch((err: unknown) =>
      console.warn(`cleanup of ${this.namespace} failed: ${(err as Error).message}`),
    );
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Load: concurrent submits spread over the gateways, while a fault happens.

export interface Submitted {
  userId: number;
  date: string;
  gateway: number;
  status: number;
  code: number;
  messageId?: string;
  /** Milliseconds since the load started (when the answer came). */
  at: number;
  /** Milliseconds from sending the request to its answer. */
  latencyMs: number;
}

export interface Load {
  /** All answers, once every request was sent (and resent where told to retry). */
  done: Promise<Submitted[]>;
  /** Answers so far. */
  readonly answers: Submitted[];
  accepted(): number;
  /** Answers so far by code. */
  codes(): Record<number, number>;
  /** Stops sending (after a failure: the lanes must not outlive the test). */
  stop(): void;
}

const loads = new Set<Load>();

export interface PurchaseOrder {
  userId: number;
  date: string;
}

export interface LoadOptions {
  requests: PurchaseOrder[];
  /** Requests in flight at once. Default 8. */
  concurrency?: number;
  /** Pause of each lane between two requests, to spread the load over the fault. Default 10 ms. */
  pauseMs?: number;
  /** A request answered 5030 (or not answered) is sent again up to this many times. Default 0. */
  retries?: number;
  retryPauseMs?: number;
}

/** One purchase per user for `date`: users `from..from+count-1`. */
export const buyers = (date: string, count: number, from = 1): PurchaseOrder[] =>
  Array.from({ length: count }, (_, i) => ({ userId: from + i, date }));

async function submitOne(
  dep: Deployment,
  gateways: Gateway[],
  gateway: number,
  { userId, date }: PurchaseOrder,
  started: number,
): Promise<Submitted> {
  const sent = Date.now();
  const answer = await gateways[gateway].post<SubmitData>('/api/tickets/v2/purchase', {
    userId,
    date,
    verifyHash: dep.hash(userId, date),
  });
  return {
    userId,
    date,
    gateway,
    status: answer.status,
    code: answer.body.code,
    ...(answer.body.code === 200 ? { messageId: answer.body.data.messageId } : {}),
    at: Date.now() - started,
    latencyMs: Date.now() - sent,
  };
}

function trackLoad(answers: Submitted[], sending: Promise<unknown>, stop: () => void): Load {
  const load: Load = {
    done: sending.then(() => {
      loads.delete(load);
      return answers;
    }),
    answers,
    accepted: () => answers.filter((a) => a.code === 200).length,
    codes: () => countBy(answers.map((a) => a.code)),
    stop,
  };
  loads.add(load);
  return load;
}

/**
 * A steady rate whatever the answers take (open loop, as a crowd does not wait for the others):
 * request i goes out `i / rate` seconds after the start, round-robin over the gateways, never retried.
 */
export function startRateLoad(
  dep: Deployment,
  gateways: Gateway[],
  o: { requests: PurchaseOrder[]; rate: number },
): Load {
  const answers: Submitted[] = [];
  const started = Date.now();
  let stopped = false;
  const sending = (async () => {
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < o.requests.length && !stopped; i++) {
      const due = started + (i * 1000) / o.rate;
      if (due > Date.now()) await sleep(due - Date.now());
      inFlight.push(
        submitOne(dep, gateways, i % gateways.length, o.requests[i], started).then(
          (a) => void answers.push(a),
        ),
      );
    }
    await Promise.all(inFlight);
  })();
  return trackLoad(answers, sending, () => {
    stopped = true;
  });
}

/** Submits the purchases, round-robin over the gateways, `concurrency` at a time. */
export function startLoad(dep: Deployment, gateways: Gateway[], o: LoadOptions): Load {
  const answers: Submitted[] = [];
  const started = Date.now();
  let next = 0;
  let turn = 0;
  let stopped = false;
  const lane = async () => {
    while (next < o.requests.length && !stopped) {
      const { userId, date } = o.requests[next++];
      for (let attempt = 0; ; attempt++) {
        const submitted = await submitOne(dep, gateways, turn++ % gateways.length, { userId, date }, started);
        answers.push(submitted);
        const retry = submitted.code === 5030 || submitted.code === -1;
        if (!retry || attempt >= (o.retries ?? 0) || stopped) break;
        await sleep(o.retryPauseMs ?? 200);
      }
      await sleep(o.pauseMs ?? 10);
    }
  };
  return trackLoad(answers, Promise.all(Array.from({ length: o.concurrency ?? 8 }, lane)), () => {
    stopped = true;
  });
}

/** The distinct message ids answered "accepted" (a resubmit may return the same id again). */
export const acceptedIds = (answers: Submitted[], date?: string): string[] => [
  ...new Set(answers.filter((a) => a.code === 200 && (!date || a.date === date)).map((a) => a.messageId!)),
];

/**
 * Waits (up to 60 s) until the load has had `count` submits accepted, so a fault lands mid-sale.
 * Looked at every few milliseconds: a gateway answers a load of a few hundred in a fifth of a second.
 */
export async function waitAccepted(load: Load, count: number): Promise<void> {
  await waitFor(
    async () => (load.accepted() >= count ? true : undefined),
    60_000,
    () => 'load too slow',
    5,
  );
}

/** Waits (up to 20 s) until the purchase consumer holds unacknowledged deliveries; returns how many. */
export function waitInFlight(dep: Deployment, failure: string, atLeast = 1): Promise<number> {
  return waitFor(
    async () => {
      const unacked = (await dep.consumerInfo()).num_ack_pending;
      return unacked >= atLeast ? unacked : undefined;
    },
    20_000,
    () => failure,
    10,
  );
}

/** Only "accepted" and "sold out" answers: nothing else was broken (sold out only if some were refused). */
export function expectAcceptedOrSoldOut(answers: Submitted[], ids: string[], users: number): void {
  expect(Object.keys(countBy(answers.map((a) => a.code))).sort()).toEqual(
    ids.length < users ? ['200', '6002'] : ['200'],
  );
}

export function countBy<T extends string | number>(values: T[]): Record<T, number> {
  const out = {} as Record<T, number>;
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/** Polls `check` until it returns a value (not undefined); throws `describe()` at the deadline. */
export async function waitFor<T>(
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  describe: () => string,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await sleep(everyMs);
  }
  throw new Error(
    `Not reached within ${timeoutMs} ms: ${describe()}${lastError ? `\nlast error: ${String(lastError)}` : ''}`,
  );
}

type BatchEntry = ResultRecord | { messageId: string; code: number; message: string };

/** Polls the batch result endpoint until every message is terminal; returns the final records. */
export async function waitTerminal(
  dep: Deployment,
  gateway: Gateway,
  messageIds: string[],
  timeoutMs = 90_000,
): Promise<Map<string, ResultRecord>> {
  const final = new Map<string, ResultRecord>();
  const latest = new Map<string, string>();
  await waitFor(
    async () => {
      const open = messageIds.filter((id) => !final.has(id));
      for (let i = 0; i < open.length; i += 100) {
        const batch = await gateway.post<BatchEntry[]>('/api/tickets/v2/purchase/results', {
          messageIds: open.slice(i, i + 100),
        });
        if (batch.body.code !== 200) continue;
        for (const entry of batch.body.data) {
          if (!('status' in entry)) {
            latest.set(entry.messageId, `code ${entry.code}`);
            continue;
          }
          latest.set(entry.messageId, entry.status);
          if (isTerminal(entry.status)) final.set(entry.messageId, entry);
        }
      }
      return final.size === messageIds.length ? true : undefined;
    },
    timeoutMs,
    () => {
      const open = messageIds.filter((id) => !final.has(id));
      const states = countBy(open.map((id) => latest.get(id) ?? 'unknown'));
      return `${open.length} of ${messageIds.length} messages not terminal ${JSON.stringify(states)}, e.g. ${open
        .slice(0, 5)
        .join(', ')}\n${dep.output()}`;
    },
    300,
  );
  return final;
}

export interface InvariantFigures {
  accepted: number;
  success: number;
  failed: Record<string, number>;
  validOrders: number;
  sold: number;
  total: number;
  remaining: number;
  usersWithTwoOrders: number;
  /** Orders whose message was not answered "accepted" to its client (e.g. its publish looked failed). */
  ordersOutsideAccepted: number;
  audit: AuditReport;
  /** The final result of each accepted message. */
  records: ResultRecord[];
}

/**
 * The end of every scenario: every accepted message terminal, then the SPEC §5 invariants — the
 * full audit (waited for until the system is idle) plus the figures of this sale day.
 */
export async function assertInvariants(
  dep: Deployment,
  gateway: Gateway,
  date: string,
  acceptedIds: string[],
  opts: { terminalTimeoutMs?: number } = {},
): Promise<InvariantFigures> {
  expect(new Set(acceptedIds).size).toBe(acceptedIds.length);
  const final = await waitTerminal(dep, gateway, acceptedIds, opts.terminalTimeoutMs);
  let report: AuditReport | undefined;
  await waitFor(
    async () => {
      report = await dep.audit({ stuckAfterMs: 0 });
      return report.ok ? true : undefined;
    },
    30_000,
    () => (report ? formatReport(report) : 'no audit report') + `\n${dep.output()}`,
    500,
  );
  const records = [...final.values()];
  const success = records.filter((r) => r.status === 'SUCCESS');
  const [day] = await dep.sql<{ total: number; sold: number; remaining: number }>(
    'SELECT total, sold, remaining FROM ticket_days WHERE date = $1',
    [date],
  );
  const orders = await dep.sql<{ messageId: string | null; userId: string }>(
    `SELECT message_id AS "messageId", user_id::text AS "userId" FROM orders WHERE date = $1 AND status = 'valid'`,
    [date],
  );
  const perUser = countBy(orders.map((o) => o.userId));
  const usersWithTwoOrders = Object.values(perUser).filter((n) => n > 1).length;
  const accepted = new Set(acceptedIds);
  const ordersOutsideAccepted = orders.filter((o) => !o.messageId || !accepted.has(o.messageId)).length;

  expect(usersWithTwoOrders).toBe(0);
  expect(day.sold).toBeLessThanOrEqual(day.total);
  expect(day.sold + day.remaining).toBe(day.total);
  expect(day.sold).toBe(orders.length);
  // Every SUCCESS among the accepted messages is an order of this day, and each order's message
  // (when the client was told "accepted") ended SUCCESS.
  const orderIds = new Set(orders.map((o) => o.messageId));
  expect(success.filter((r) => !orderIds.has(r.messageId))).toEqual([]);
  expect(success.length).toBe(orders.length - ordersOutsideAccepted);

  return {
    accepted: acceptedIds.length,
    success: success.length,
    failed: countBy(records.filter((r) => r.status === 'FAILED').map((r) => String(r.errorCode))),
    validOrders: orders.length,
    sold: day.sold,
    total: day.total,
    remaining: day.remaining,
    usersWithTwoOrders,
    ordersOutsideAccepted,
    audit: report!,
    records,
  };
}

/** One line per scenario for the closing note. */
export function describeRun(
  scenario: string,
  load: { users: number; codes: Record<number, number> },
  broken: string,
  f: InvariantFigures,
): string {
  return [
    `[fault] ${scenario}`,
    `  load: ${load.users} users, answers ${JSON.stringify(load.codes)}`,
    `  broken: ${broken}`,
    `  invariants: accepted ${f.accepted}, SUCCESS ${f.success}, FAILED ${JSON.stringify(f.failed)}, ` +
      `valid orders ${f.validOrders} (outside accepted ${f.ordersOutsideAccepted}), sold ${f.sold}/${f.total}, ` +
      `remaining ${f.remaining}, users with two orders ${f.usersWithTwoOrders}, ` +
      `audit ${f.audit.ok ? 'OK' : 'FAILED'} (${f.audit.checks.map((c) => `${c.id}:${c.status}`).join(' ')}), ` +
      `dead letters ${f.audit.totals.deadLetters}, ` +
      `redelivered or retried (attempts > 1) ${f.records.filter((r) => r.attempts > 1).length}`,
  ].join('\n');
}
