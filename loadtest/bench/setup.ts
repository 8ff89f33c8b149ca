import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import pg from 'pg';
import { ALL_SERVICES, CONFIG_DEFAULTS, loadConfig, type Config } from '../../config';
import { PurchaseQueue } from '../../lib/purchase/queue';
import { issueVerifyHash } from '../../lib/sale/verify-hash';
import { createRedis } from '../../lib/store/redis';
import { cleanupNamespace, isolatedEnv } from '../../test/helpers/app';
import { HttpClient } from './client';
import { childrenOf, Monitor, serviceList } from './monitor';
import type { BenchOptions } from './options';
import {
  Child,
  ECHO_ENTRY,
  entryArgs,
  FLOOR_ENTRY,
  freePort,
  SERVICE_ENTRY,
  waitHealthy,
  type Entry,
} from './procs';
import type { Progress } from './progress';

/** Variables the bench sets itself: isolation, production mode, secrets, the days and users it needs. */
const FORCED = new Set([
  'NODE_ENV',
  'NAMESPACE',
  'DATABASE_URL',
  'PORT',
  'HOST',
  'SERVICES',
  'LOG_LEVEL',
  'ADMIN_TOKEN',
  'HASH_SECRET',
  'SEED_USERS',
  'SALE_DAYS',
  'SALE_WINDOW',
]);

/** The service's default window of sale days (3): the bench needs all three (see scenarios.ts). */
export const SALE_DAYS = Math.max(3, Number(CONFIG_DEFAULTS.SALE_DAYS));
/**
 * More submits a second than a 2-core run has reached (~15,000 at an echo of ~19,000): the bound the
 * seeded users are counted for, so no submit is an idempotent repeat of an earlier one.
 */
const SUBMIT_RATE_BOUND = 25_000;
/**
 * Users seeded in the bench database: the service's default (100000), or more for a large --scale
 * or a fast machine. Each user buys once on each of the two main days, and the submit scenarios
 * (best layout, then the default start) and the drain take a new (user, day) pair per request.
 */
export const seedUsersFor = (opts: BenchOptions) =>
  Math.max(
    opts.smoke ? 20_000 : Number(CONFIG_DEFAULTS.SEED_USERS),
    opts.flashUsers * 2,
    opts.drainMessages * 2,
    Math.ceil(SUBMIT_RATE_BOUND * (opts.duration + opts.warmup)) + opts.drainMessages,
  );

/**
 * The environment of the bench's service: isolated like a test instance (own NAMESPACE, database,
 * Redis prefix, streams) but in production mode with generated secrets. The service's own tuning
 * variables (WORKER_*, DB_POOL_MAX, QUEUE_* …) pass through from the caller's environment, so a
 * change can be measured with `WORKER_BATCH_SIZE=1000 npm run bench`; isolation variables cannot.
 */
export function benchEnv(
  namespace: string,
  opts: BenchOptions,
  callerEnv: NodeJS.ProcessEnv = process.env,
): { env: Record<string, string>; passedThrough: Record<string, string> } {
  const dbName = `miaosha_${namespace}`;
  const baseDb = callerEnv.DATABASE_URL || CONFIG_DEFAULTS.DATABASE_URL;
  const dbUrl = new URL(baseDb);
  dbUrl.pathname = `/${dbName}`;
  const passedThrough: Record<string, string> = {};
  for (const name of Object.keys(CONFIG_DEFAULTS)) {
    const value = callerEnv[name];
    if (value !== undefined && value !== '' && !FORCED.has(name)) passedThrough[name] = value;
  }
  const env = isolatedEnv(namespace, {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HASH_SECRET: randomBytes(32).toString('hex'),
    ADMIN_TOKEN: randomBytes(24).toString('hex'),
    SEED_USERS: String(seedUsersFor(opts)),
    SALE_DAYS: String(SALE_DAYS),
    // Production defaults where the test environment differs (the caller's environment may override).
    QUEUE_STORAGE: CONFIG_DEFAULTS.QUEUE_STORAGE,
    RATE_LIMIT_USER_MAX: CONFIG_DEFAULTS.RATE_LIMIT_USER_MAX,
    VERIFY_HASH_USER_MAX: CONFIG_DEFAULTS.VERIFY_HASH_USER_MAX,
    WAIT_SLOTS_PER_GATEWAY: CONFIG_DEFAULTS.WAIT_SLOTS_PER_GATEWAY,
    WORKER_NICE: CONFIG_DEFAULTS.WORKER_NICE,
    // The bench is one client address speaking for thousands of users, without a sign-in: the
    // per-IP limits are off and the users are named by userId (the isolated env keeps them off too).
    RATE_LIMIT_IP_MAX: '0',
    WAIT_SLOTS_PER_IP: '0',
    AUTH_MODE: 'open',
    ...passedThrough,
    SALE_WINDOW: '00:00-24:00',
    DATABASE_URL: dbUrl.toString(),
  });
  return { env, passedThrough };
}

/** SERVICES of each kind of process for a layout. */
export function layoutServices(workers: number): { gateway: string; worker: string } {
  if (workers === 0) return { gateway: 'all', worker: '' };
  return {
    gateway: ALL_SERVICES.filter((s) => s !== 'purchase-worker').join(','),
    worker: 'purchase-worker',
  };
}

/** Everything a scenario needs: the running processes and the bench's own connections. */
export class Bench {
  readonly namespace = `bench${randomBytes(4).toString('hex')}`;
  readonly env: Record<string, string>;
  readonly passedThrough: Record<string, string>;
  readonly config: Config;
  readonly http = new HttpClient(512);
  readonly monitor = new Monitor();
  readonly gateways: Child[] = [];
  readonly workers: Child[] = [];
  /** Service processes stopped before the run ended (the best layout, once the default start runs). */
  readonly retired: Child[] = [];
  echo?: Child;
  floor?: Child;
  db?: pg.Client;
  redis?: Redis;
  queue?: PurchaseQueue;
  /** The sale days, in date order. */
  dates: string[] = [];
  private cleaned?: Promise<void>;
  private started = false;

  constructor(
    readonly opts: BenchOptions,
    readonly progress: Progress,
  ) {
    const { env, passedThrough } = benchEnv(this.namespace, opts);
    this.env = env;
    this.passedThrough = passedThrough;
    this.config = loadConfig(env);
  }

  get admin(): Record<string, string> {
    return { authorization: `Bearer ${this.env.ADMIN_TOKEN}` };
  }

  get urls(): string[] {
    return this.gateways.map((g) => g.url);
  }

  get children(): Child[] {
    return [this.echo, this.floor, ...this.retired, ...this.gateways, ...this.workers].filter(
      (c) => c !== undefined,
    );
  }

  hash(userId: number, date: string): string {
    return issueVerifyHash(this.config.hashSecret, userId, date, this.config.hashTtlSeconds).verifyHash;
  }

  private async spawn(name: string, role: 'gateway' | 'worker', services: string): Promise<Child> {
    const port = role === 'gateway' ? await freePort() : null;
    const env: Record<string, string> = { ...this.env, SERVICES: services, PORT: String(port ?? 0) };
    if (this.opts.nodeOptions) env.NODE_OPTIONS = this.opts.nodeOptions;
    if (this.opts.workerNice !== null) env.WORKER_NICE = String(this.opts.workerNice);
    const child = new Child(name, role, port, entryArgs(SERVICE_ENTRY, this.opts.fromSource), env);
    if (child.pid) this.monitor.watch({ label: name, pid: child.pid, service: true });
    (role === 'gateway' ? this.gateways : this.workers).push(child);
    return child;
  }

  /** Starts the echo server (the baseline); it runs until cleanup, idle between its measurements. */
  async startEcho(): Promise<Child> {
    this.echo = await this.startBaseline('echo', ECHO_ENTRY, this.env);
    return this.echo;
  }

  /** Starts the submit floor, in a namespace of its own (keys and streams the service never sees). */
  async startFloor(): Promise<Child> {
    this.floor = await this.startBaseline('floor', FLOOR_ENTRY, {
      ...this.env,
      NAMESPACE: this.floorNamespace,
    });
    return this.floor;
  }

  get floorNamespace(): string {
    return `${this.namespace}floor`;
  }

  private async startBaseline(name: string, entry: Entry, env: Record<string, string>): Promise<Child> {
    const port = await freePort();
    // The service's V8 flags too: a baseline differs from the service only in what it does per request.
    const child = new Child(name, 'baseline', port, entryArgs(entry, this.opts.fromSource), {
      ...env,
      PORT: String(port),
      ...(this.opts.nodeOptions ? { NODE_OPTIONS: this.opts.nodeOptions } : {}),
    });
    if (child.pid) this.monitor.watch({ label: name, pid: child.pid, service: false });
    await waitHealthy(child, '/health', 60_000);
    return child;
  }

  /** Starts the service processes: the first gateway alone (it migrates and seeds), then the rest. */
  async startService(): Promise<void> {
    this.started = true;
    this.monitor.start();
    const { gateways, workers } = this.opts;
    const services = layoutServices(workers);
    const label = workers === 0 ? 'service' : 'gateway';
    const first = await this.spawn(`${label}-1`, 'gateway', services.gateway);
    await this.waitReady(first);
    const rest: Child[] = [];
    for (let i = 2; i <= gateways; i++)
      rest.push(await this.spawn(`${label}-${i}`, 'gateway', services.gateway));
    for (let i = 1; i <= workers; i++) rest.push(await this.spawn(`worker-${i}`, 'worker', services.worker));
    await Promise.all(rest.filter((c) => c.role === 'gateway').map((c) => this.waitReady(c)));

    this.db = new pg.Client({ connectionString: this.config.databaseUrl, application_name: 'miaosha-bench' });
    await this.db.connect();
    this.redis = createRedis(this.config, this.config.namespace);
    this.redis.on('error', () => undefined);
    this.queue = await PurchaseQueue.open(this.config, `${this.namespace}-bench`);
    await this.waitWorkers(workers === 0 ? gateways : workers);

    const list = await this.http.call<{ date: string }[]>(first.url, 'GET', '/api/tickets/list');
    this.dates = list.body.data.map((d) => d.date).sort();
    if (this.dates.length < SALE_DAYS)
      throw new Error(`expected ${SALE_DAYS} sale days, got ${this.dates.length}`);
  }

  /**
   * Replaces the running layout with exactly what `npm start` runs: the production entry without
   * SERVICES (the supervisor, app/supervisor.ts), its V8 flags on the command line as the npm script
   * gives them. Its children are watched like the other service processes.
   */
  async startDefault(): Promise<Child> {
    const running = [...this.gateways, ...this.workers];
    await Promise.all(running.map((c) => c.stop()));
    this.retired.push(...running);
    this.gateways.length = 0;
    this.workers.length = 0;
    const port = await freePort();
    const flags = this.opts.nodeOptions.split(/\s+/).filter(Boolean);
    const supervisor = new Child(
      'npm-start',
      'gateway',
      port,
      [...flags, ...entryArgs(SERVICE_ENTRY, this.opts.fromSource)],
      {
        ...this.env,
        PORT: String(port),
        ...(this.opts.workerNice !== null ? { WORKER_NICE: String(this.opts.workerNice) } : {}),
      },
    );
    this.gateways.push(supervisor);
    if (supervisor.pid) this.monitor.watch({ label: 'npm-start', pid: supervisor.pid, service: false });
    await this.waitReady(supervisor);
    const children = await this.supervised(supervisor, 1 + (this.config.supervisor?.workers ?? 0));
    let worker = 0;
    for (const pid of children) {
      const role = serviceList(pid).includes('api') ? 'gateway' : `worker-${++worker}`;
      this.monitor.watch({ label: `npm-start ${role}`, pid, service: true });
    }
    await this.waitWorkers(worker);
    return supervisor;
  }

  /**
   * The supervisor's children once all `expected` are there: it starts the workers only when its
   * gateway is ready, so right after the gateway answers they may not exist yet.
   */
  private async supervised(supervisor: Child, expected: number): Promise<number[]> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const children = childrenOf(supervisor.pid!);
      if (children.length >= expected || Date.now() > deadline) return children;
      if (!supervisor.running) throw new Error(supervisor.describeExit());
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A gateway is ready when its tickets and purchase services answer. */
  private async waitReady(child: Child): Promise<void> {
    await waitHealthy(child, '/api/tickets/list');
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (!child.running) throw new Error(child.describeExit());
      const probe = await this.http
        .call(child.url, 'POST', '/api/tickets/v2/purchase/results', {
          messageIds: ['00000000-0000-4000-8000-000000000000'],
        })
        .catch(() => null);
      if (probe?.status === 200) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${child.name}: the purchase service did not come up`);
  }

  /** Worker processes have no HTTP port: they are ready once their pull requests wait on the consumer. */
  private async waitWorkers(expected: number): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      for (const w of this.workers) if (!w.running) throw new Error(w.describeExit());
      const info = await this.queue!.consumerInfo();
      if (info.num_waiting >= expected) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    this.progress.line(`warning: fewer than ${expected} workers seem to pull from the queue; going on`);
  }

  /** Fails fast when a service process died. */
  assertAlive(): void {
    for (const c of [...this.gateways, ...this.workers]) if (!c.running) throw new Error(c.describeExit());
  }

  /** Stops every child and removes the database, Redis keys and streams. Safe to call twice. */
  cleanup(): Promise<void> {
    this.cleaned ??= (async () => {
      this.monitor.stop();
      this.http.close();
      await Promise.all(this.children.map((c) => c.stop()));
      await this.db?.end().catch(() => undefined);
      this.redis?.disconnect();
      await this.queue?.close().catch(() => undefined);
      const warn = (namespace: string) => (err: Error) =>
        this.progress.line(`warning: cleanup of ${namespace} failed: ${err.message}`);
      if (this.started) await cleanupNamespace(this.config).catch(warn(this.namespace));
      if (this.floor) {
        const floorConfig = loadConfig({ ...this.env, NAMESPACE: this.floorNamespace });
        await cleanupNamespace(floorConfig, { keepDatabase: true }).catch(warn(this.floorNamespace));
      }
    })();
    return this.cleaned;
  }

  /** Last resort when the process exits without cleanup (nothing async can run there). */
  killChildren(): void {
    for (const c of this.children) c.killNow();
  }
}
