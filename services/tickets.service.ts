import type Redis from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Context, ServiceSchema, ServiceSettingSchema } from 'moleculer';
import type { Sequelize } from 'sequelize';
import { WindowLimiter } from '../lib/http/abuse';
import { ensureDatabase, migrate, seedUsers } from '../lib/db';
import { modelsOf } from '../lib/db/models';
import { appError } from '../lib/errors';
import type { PurchaseRequest } from '../lib/purchase/checks';
import { runtimeOf, type Runtime } from '../lib/runtime';
import { checkSaleTime, saleDates } from '../lib/sale/calendar';
import { issueVerifyHash } from '../lib/sale/verify-hash';
import { keys } from '../lib/store/keys';
import { distrustMovedCache, rebuildCache, reconcileCache } from '../lib/purchase/cache';
import { setDayTotal } from '../lib/tickets/stock';
import { findDay, listSaleDays, rollDays, setSalePaused, toView } from '../lib/tickets/days';
import { cancelOrder, ordersOfUser, stats } from '../lib/tickets/orders';
import { purchaseV1, type V1Settings } from '../lib/purchase/v1';
import {
  dateRule,
  orderNoRule,
  purchaseParams,
  totalRule,
  userIdQueryRule,
  userIdRule,
} from '../lib/validation';

type Stats = Awaited<ReturnType<typeof stats>>;

interface Vars {
  rt: Runtime;
  /** The stores the library functions below take (from the runtime). */
  stores: { db: Sequelize; redis: Redis };
  v1: V1Settings;
  /** A crowd refreshing the stats costs one query a second, whatever its size. */
  stats: LRUCache<'all', Stats>;
  /** Verify hashes issued per user and window (VERIFY_HASH_USER_MAX): one bot cannot buy for everyone. */
  hashLimit: WindowLimiter;
  timers: NodeJS.Timeout[];
  rebuilding: Promise<unknown> | null;
}

interface Methods {
  roll(): Promise<{ created: string[]; stopped: string[] }>;
  rebuildIfLost(): Promise<void>;
  checkCache(): void;
  warmUp(): Promise<void>;
  stockChanged(date: string): void;
  setPaused(ctx: Context, paused: boolean): Promise<{ paused: boolean }>;
}

const STATS_TTL_MS = 1000;

const hhmm = (m: number) =>
  `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;

/** Ticket days, verify hashes, the synchronous V1 purchase, orders and the ticket admin calls. */
const ticketsService: ServiceSchema<ServiceSettingSchema, Methods, Vars> = {
  name: 'tickets',

  actions: {
    list: {
      params: { $$strict: 'remove' },
      handler() {
        return listSaleDays(this.rt.db, this.rt.calendar);
      },
    },

    verifyHash: {
      params: { $$strict: true, userId: userIdQueryRule, date: dateRule },
      async handler(ctx: Context<{ userId: number; date: string }>) {
        const { userId, date } = ctx.params;
        if (!(await this.hashLimit.take(String(userId)))) {
          throw appError('RATE_LIMITED', 'Too many verify hashes for this user, try again later');
        }
        const time = checkSaleTime(this.rt.calendar, date);
        if (!time.allowed && time.reason === 'date-outside-window')
          throw appError('NO_SUCH_DAY', time.message);
        const [user, day] = await Promise.all([
          modelsOf(this.rt.db).users.findByPk(userId, { attributes: ['id'] }),
          findDay(this.rt.db, date),
        ]);
        if (!user) throw appError('UNKNOWN_USER');
        if (!day) throw appError('NO_SUCH_DAY');
        return issueVerifyHash(this.rt.config.hashSecret, userId, date, this.rt.config.hashTtlSeconds);
      },
    },

    validateTime: {
      params: { $$strict: true, date: dateRule },
      async handler(ctx: Context<{ date: string }>) {
        const { calendar } = this.rt;
        const time = checkSaleTime(calendar, ctx.params.date);
        const paused = (await this.rt.redis.exists(keys.paused)) === 1;
        return {
          date: ctx.params.date,
          allowed: time.allowed && !paused,
          reason: time.allowed ? (paused ? 'paused' : null) : time.reason,
          message: time.allowed ? (paused ? 'The sale is paused' : 'Purchases are open') : time.message,
          saleDates: saleDates(calendar),
          saleHours: `${hhmm(calendar.windowStart)}-${hhmm(calendar.windowEnd)}`,
          timeZone: calendar.timeZone,
          serverTime: new Date().toISOString(),
        };
      },
    },

    purchaseV1: {
      params: purchaseParams,
      async handler(ctx: Context<PurchaseRequest>) {
        const order = await purchaseV1({ ...this.stores, admitter: this.rt.admitter }, this.v1, ctx.params);
        const { orderNo, userId, date, ticketCode } = order;
        return { orderNo, userId, date, ticketCode };
      },
    },

    orders: {
      params: { $$strict: true, userId: userIdQueryRule },
      handler(ctx: Context<{ userId: number }>) {
        return ordersOfUser(this.rt.db, ctx.params.userId);
      },
    },

    cancel: {
      params: { $$strict: true, userId: userIdRule, orderNo: orderNoRule },
      async handler(ctx: Context<{ userId: number; orderNo: string }>) {
        const order = await cancelOrder(this.stores, ctx.params.userId, ctx.params.orderNo);
        this.stockChanged(order.date);
        return order;
      },
    },

    stats: {
      params: { $$strict: 'remove' },
      handler() {
        return this.stats.fetch('all');
      },
    },

    setStock: {
      params: {
        $$strict: true,
        date: dateRule,
        total: totalRule,
        name: { type: 'string', min: 1, max: 100, optional: true },
      },
      async handler(ctx: Context<{ date: string; total: number; name?: string }>) {
        const { day } = await setDayTotal(this.stores, ctx.params.date, ctx.params.total, ctx.params.name);
        this.stockChanged(day.date);
        return toView(day);
      },
    },

    roll: {
      params: { $$strict: 'remove' },
      handler() {
        return this.roll();
      },
    },

    pause: {
      params: { $$strict: 'remove' },
      handler(ctx: Context) {
        return this.setPaused(ctx, true);
      },
    },

    resume: {
      params: { $$strict: 'remove' },
      handler(ctx: Context) {
        return this.setPaused(ctx, false);
      },
    },

    reconcile: {
      params: { $$strict: 'remove' },
      async handler() {
        const report = await reconcileCache(this.stores, this.rt.config, saleDates(this.rt.calendar));
        for (const day of report.days) this.stockChanged(day.date);
        return report;
      },
    },
  },

  methods: {
    /**
     * Stored in the database (it outlives the cache) and in Redis for the admissions and for gateways
     * that start later; broadcast so every gateway flips at once (they also re-check Redis).
     */
    async setPaused(ctx: Context, paused: boolean) {
      await setSalePaused(this.rt.db, paused);
      if (paused) await this.rt.redis.set(keys.paused, new Date().toISOString());
      else await this.rt.redis.del(keys.paused);
      await ctx.broadcast('sale.paused', { paused });
      return { paused };
    },

    async roll() {
      const { created, stopped } = await rollDays(
        this.rt.db,
        this.rt.calendar,
        this.rt.config.sale.defaultTotals,
      );
      // A cache that is not ready gets every sale day, new ones too, from its rebuild (warm-up or
      // watchdog); made ready here for the new days only, the rest of it would be trusted as it is.
      if (created.length && (await this.rt.redis.exists(keys.ready)) === 1) {
        await reconcileCache(this.stores, this.rt.config, created);
      }
      for (const date of [...created, ...stopped]) this.stockChanged(date);
      return { created, stopped };
    },

    /**
     * Redis lost its data (flushed or restarted empty) or is another server than the one the cache
     * was built on (a Sentinel failover): rebuild before admitting anything.
     */
    async rebuildIfLost() {
      if (this.rebuilding) return;
      const { redis } = this.rt;
      if (await distrustMovedCache(redis))
        this.logger.warn('Redis is another server now: rebuilding its cache');
      if ((await redis.exists(keys.ready)) === 1) return;
      const lock = await redis.set(keys.rebuildLock, process.pid, 'PX', 30_000, 'NX');
      if (lock !== 'OK') return;
      this.rebuilding = rebuildCache(this.stores, this.rt.config, saleDates(this.rt.calendar))
        .then((report) => {
          this.logger.warn('Redis had lost its state: rebuilt from the database', report);
          for (const day of report.days) this.stockChanged(day.date);
        })
        .finally(async () => {
          this.rebuilding = null;
          await redis.del(keys.rebuildLock).catch(() => undefined);
        });
      await this.rebuilding;
    },

    /**
     * Before any admission: a cache that lost its state (or never had one) is rebuilt from the
     * database, and a day without stock gets its keys. A live cache is left as its scripts keep it:
     * rewriting a day's stock under a running sale (a node joining, a restart) would count an order
     * committed but not yet settled twice, and leave a ticket unsold.
     */
    async warmUp() {
      const { redis } = this.rt;
      const dates = saleDates(this.rt.calendar);
      if ((await redis.exists(keys.ready)) === 0) {
        await rebuildCache(this.stores, this.rt.config, dates);
        return;
      }
      const stocked = await Promise.all(dates.map((d) => redis.exists(keys.stock(d))));
      const cold = dates.filter((_, i) => stocked[i] === 0);
      if (cold.length) await reconcileCache(this.stores, this.rt.config, cold);
    },

    checkCache() {
      this.rebuildIfLost().catch((err) => this.logger.warn('Cache check failed', err.message));
    },

    stockChanged(date: string) {
      void this.broker.broadcast('tickets.stockChanged', { date });
    },
  },

  created() {
    this.rt = runtimeOf(this.broker);
    const { config, calendar } = this.rt;
    this.stores = { db: this.rt.db, redis: this.rt.redis };
    this.v1 = { calendar, hashSecret: config.hashSecret, rateLimit: config.rateLimit };
    this.stats = new LRUCache<'all', Stats>({
      max: 1,
      ttl: STATS_TTL_MS,
      fetchMethod: () => stats(this.rt.db),
    });
    const { abuse } = this.rt.config;
    this.hashLimit = new WindowLimiter(this.rt.redis, 'hash', abuse.hashUserMax, abuse.hashUserWindowMs);
    this.timers = [];
    this.rebuilding = null;
  },

  async started() {
    const { config } = this.rt;
    await ensureDatabase(config.databaseUrl);
    const applied = await migrate(this.rt.db, config.databaseUrl);
    if (applied.length) this.logger.info(`Applied migrations: ${applied.join(', ')}`);
    const seeded = await seedUsers(this.rt.db, config.seedUsers);
    if (seeded) this.logger.info(`Seeded ${seeded} demo users`);
    await this.roll();
    await this.warmUp();
    this.timers.push(
      setInterval(() => {
        this.roll().catch((err) => this.logger.error('Daily roll failed', err));
      }, config.sale.rollIntervalMs),
      setInterval(() => this.checkCache(), 500),
    );
    // A (re)connection may be to a promoted replica: check at once rather than at the next tick.
    this.rt.redis.on('ready', this.checkCache);
  },

  async stopped() {
    for (const timer of this.timers) clearInterval(timer);
    this.rt.redis.off('ready', this.checkCache);
    await this.rebuilding?.catch(() => undefined);
  },
};

export default ticketsService;
