// Over 400 lines on purpose: the one place every environment variable is declared (the Config
// type, its validation schema with defaults, the cross-field checks), read once at start. Split,
// a new variable would have to be added in several files that must agree.
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import Validator from 'fastest-validator';

/** Every service this code base can run; `SERVICES` picks a subset per process. */
export const ALL_SERVICES = ['api', 'tickets', 'purchase', 'purchase-worker', 'monitor'] as const;
export type ServiceName = (typeof ALL_SERVICES)[number];

export interface Config {
  env: 'development' | 'production' | 'test';
  port: number;
  host: string;
  databaseUrl: string;
  redisUrl: string;
  /** Sentinels to ask for the current Redis primary (REDIS_SENTINELS); null = `redisUrl` directly. */
  redisSentinels: RedisSentinels | null;
  natsUrl: string;
  namespace: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  services: ServiceName[];
  /**
   * The processes `npm start` runs and watches (app/supervisor.ts) when SERVICES is not set: one
   * gateway and `workers` worker processes. null: this process runs `services` itself.
   */
  supervisor: { workers: number } | null;
  adminToken: string | null;
  hashSecret: string;
  hashTtlSeconds: number;
  sale: {
    /** Minutes after local midnight; `end` is exclusive (1440 = open until midnight). */
    windowStart: number;
    windowEnd: number;
    timeZone: string;
    days: number;
    defaultTotals: number[];
    rollIntervalMs: number;
  };
  seedUsers: number;
  resultTtlSeconds: number;
  rateLimit: { userMax: number; userWindowMs: number; globalMax: number; globalWindowMs: number };
  /** Abuse limits of the HTTP door (SPEC §3.1); a max of 0 turns a limit off. */
  abuse: {
    ipMax: number;
    ipWindowMs: number;
    /** Proxy hops of X-Forwarded-For to trust (0: the socket's peer is the client). */
    trustProxy: number;
    hashUserMax: number;
    hashUserWindowMs: number;
    /** Open SSE streams and long-polls: per client IP (on each gateway) and per gateway. */
    waitsPerIp: number;
    waitsPerGateway: number;
  };
  /** Who may act for a user (SPEC §3.1). */
  auth: {
    mode: 'open' | 'jwt';
    /** One of the three: an HS256 secret, an RS256/ES256 public key, or a JWKS URL. */
    secret: string | null;
    publicKey: KeyObject | null;
    jwksUrl: string | null;
    issuer: string | null;
    audience: string | null;
  };
  metricsToken: string | null;
  /** Path of a NATS credentials file (JWT + nkey seed), or null. */
  natsCreds: string | null;
  queue: {
    storage: 'file' | 'memory';
    replicas: number;
    ackWaitMs: number;
    maxDeliver: number;
    delayMs: number;
    duplicateWindowMs: number;
    maxAckPending: number;
    dlqMaxAgeHours: number;
    dlqMaxMessages: number;
    /** How long a submit retries its publish through a leader election or reconnection (0 = no retry). */
    publishRetryMs: number;
  };
  worker: {
    concurrency: number;
    retryAttempts: number;
    retryBaseMs: number;
    batchSize: number;
    batchMs: number;
    /** Nice level of a worker-only process (see app/main.ts). */
    nice: number;
    /** Messages a second a worker takes while a gateway on its machine is in a crowd (0 = as usual). */
    crowdRate: number;
    /** The longest an order waits for a crowd: older ones are fetched at full size (0 = no limit). */
    crowdMaxWaitMs: number;
  };
  /** The admission outbox's recovery on gateways (lib/purchase/outbox.ts). */
  outbox: { checkMs: number; graceMs: number; maxAgeMs: number };
  /** How often a gateway re-reads its in-memory sale flags (sold out, paused) from Redis. */
  flagCheckMs: number;
  poll: { minMs: number; maxMs: number; longPollMaxMs: number };
  cache: { resultLruSize: number };
  http: { bodyLimit: string };
  db: { poolMax: number; writerPoolMax: number; lockTimeoutMs: number };
  alerts: {
    webhookUrl: string | null;
    failureRatio: number;
    backlogMax: number;
    windowMs: number;
    /** Consecutive snapshots a condition must hold to raise an alert, and to resolve it. */
    hold: number;
    /** Results (or submits) a window needs before a ratio rule may fire. */
    minSamples: number;
    /** Share of submits answered 5030/5000 that raises the gateway error alert. */
    errorRatio: number;
  };
  monitor: { intervalMs: number };
}

export interface RedisSentinels {
  /** The primary's name as the sentinels monitor it (REDIS_SENTINEL_NAME). */
  name: string;
  hosts: { host: string; port: number }[];
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`Invalid configuration ${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

const DEV_HASH_SECRET = 'dev-only-hash-secret-change-me-in-production';

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => ({
  type: 'number',
  integer: true,
  min,
  max,
  convert: true,
});
const url = (protocols: string[]) => ({
  type: 'string',
  custom: (value: string, errors: { type: string; actual: unknown }[]) => {
    try {
      const parsed = new URL(value);
      if (!protocols.includes(parsed.protocol)) errors.push({ type: 'url', actual: value });
    } catch {
      errors.push({ type: 'url', actual: value });
    }
    return value;
  },
});

/** Variable name → [default, fastest-validator rule]. */
const schema = {
  NODE_ENV: ['development', { type: 'enum', values: ['development', 'production', 'test'] }],
  PORT: ['3000', int(0, 65535)],
  HOST: ['0.0.0.0', { type: 'string', min: 1 }],
  DATABASE_URL: ['postgres://postgres@127.0.0.1:5432/miaosha', url(['postgres:', 'postgresql:'])],
  REDIS_URL: ['redis://127.0.0.1:6379', url(['redis:', 'rediss:'])],
  REDIS_SENTINELS: ['', { type: 'string', pattern: /^$|^[^\s,:]+:\d{1,5}(,[^\s,:]+:\d{1,5})*$/ }],
  REDIS_SENTINEL_NAME: ['mymaster', { type: 'string', pattern: /^[A-Za-z0-9._-]{1,64}$/ }],
  NATS_URL: ['nats://127.0.0.1:4222', { type: 'string', min: 1 }],
  NAMESPACE: ['miaosha', { type: 'string', pattern: /^[a-zA-Z][a-zA-Z0-9_-]{0,39}$/ }],
  LOG_LEVEL: ['info', { type: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] }],
  SERVICES: ['all', { type: 'string', min: 1 }],
  ADMIN_TOKEN: ['', { type: 'string' }],
  HASH_SECRET: ['', { type: 'string' }],
  HASH_TTL_SECONDS: ['3600', int(1, 7 * 24 * 3600)],
  SALE_WINDOW: [
    '00:00-24:00',
    { type: 'string', pattern: /^([01]\d|2[0-4]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$/ },
  ],
  SALE_TZ: ['UTC', { type: 'string', min: 1 }],
  SALE_DAYS: ['3', int(1, 60)],
  SALE_DEFAULT_TOTALS: ['100,150,200', { type: 'string', pattern: /^\d+(,\d+)*$/ }],
  SALE_ROLL_INTERVAL_MS: ['60000', int(1000)],
  SEED_USERS: ['100000', int(0, 10_000_000)],
  RESULT_TTL_HOURS: ['24', int(1, 24 * 365)],
  RATE_LIMIT_USER_MAX: ['5', int(0)],
  RATE_LIMIT_USER_WINDOW_MS: ['1000', int(1)],
  RATE_LIMIT_GLOBAL_MAX: ['0', int(0)],
  RATE_LIMIT_GLOBAL_WINDOW_MS: ['1000', int(1)],
  RATE_LIMIT_IP_MAX: ['300', int(0)],
  RATE_LIMIT_IP_WINDOW_MS: ['10000', int(1000)],
  TRUST_PROXY: ['0', int(0, 10)],
  VERIFY_HASH_USER_MAX: ['10', int(0)],
  VERIFY_HASH_WINDOW_MS: ['60000', int(1000)],
  WAIT_SLOTS_PER_IP: ['20', int(0)],
  WAIT_SLOTS_PER_GATEWAY: ['5000', int(0)],
  AUTH_MODE: ['', { type: 'enum', values: ['', 'open', 'jwt'] }],
  AUTH_JWT_SECRET: ['', { type: 'string' }],
  AUTH_JWT_PUBLIC_KEY: ['', { type: 'string' }],
  AUTH_JWKS_URL: ['', { type: 'string' }],
  AUTH_JWT_ISSUER: ['', { type: 'string' }],
  AUTH_JWT_AUDIENCE: ['', { type: 'string' }],
  METRICS_TOKEN: ['', { type: 'string' }],
  NATS_CREDS: ['', { type: 'string' }],
  QUEUE_STORAGE: ['file', { type: 'enum', values: ['file', 'memory'] }],
  QUEUE_REPLICAS: ['1', int(1, 5)],
  QUEUE_ACK_WAIT_MS: ['5000', int(1000)],
  QUEUE_MAX_DELIVER: ['5', int(1, 1000)],
  QUEUE_DELAY_MS: ['2000', int(0)],
  QUEUE_DUPLICATE_WINDOW_MS: ['120000', int(1000)],
  QUEUE_MAX_ACK_PENDING: ['20000', int(1, 1_000_000)],
  QUEUE_DLQ_MAX_AGE_HOURS: ['168', int(1, 24 * 365)],
  QUEUE_DLQ_MAX_MESSAGES: ['100000', int(1)],
  QUEUE_PUBLISH_RETRY_MS: ['10000', int(0, 60_000)],
  WORKER_CONCURRENCY: ['500', int(1, 100_000)],
  WORKER_RETRY_ATTEMPTS: ['3', int(0, 100)],
  WORKER_RETRY_BASE_MS: ['100', int(1)],
  WORKER_BATCH_SIZE: ['500', int(1, 10_000)],
  WORKER_BATCH_MS: ['5', int(0, 10_000)],
  WORKER_NICE: ['10', int(0, 19)],
  WORKER_CROWD_RATE: ['50', int(0, 100_000)],
  WORKER_CROWD_MAX_WAIT_MS: ['10000', int(0, 600_000)],
  WORKER_PROCESSES: ['2', int(0, 16)],
  OUTBOX_CHECK_MS: ['1000', int(100, 60_000)],
  OUTBOX_GRACE_MS: ['15000', int(1000)],
  OUTBOX_MAX_AGE_MS: ['600000', int(1000)],
  FLAG_CHECK_MS: ['2000', int(100, 60_000)],
  POLL_MIN_MS: ['500', int(10)],
  POLL_MAX_MS: ['5000', int(10)],
  LONG_POLL_MAX_MS: ['30000', int(0, 30000)],
  RESULT_LRU_SIZE: ['10000', int(0)],
  HTTP_BODY_LIMIT: ['16kb', { type: 'string', pattern: /^\d+(b|kb|mb)$/ }],
  DB_POOL_MAX: ['10', int(1, 1000)],
  DB_WRITER_POOL_MAX: ['4', int(1, 1000)],
  DB_LOCK_TIMEOUT_MS: ['2000', int(1)],
  ALERT_WEBHOOK_URL: ['', { type: 'string' }],
  ALERT_FAILURE_RATIO: ['0.5', { type: 'number', min: 0, max: 1, convert: true }],
  ALERT_BACKLOG_MAX: ['10000', int(0)],
  ALERT_WINDOW_MS: ['10000', int(100)],
  ALERT_HOLD: ['3', int(1, 1000)],
  ALERT_MIN_SAMPLES: ['20', int(1)],
  ALERT_ERROR_RATIO: ['0.05', { type: 'number', min: 0, max: 1, convert: true }],
  MONITOR_INTERVAL_MS: ['1000', int(50, 60_000)],
} as const;

type VarName = keyof typeof schema;

// The `url` rule's custom check takes (value, errors): the new checker signature, as the broker uses.
const validator = new Validator({ useNewCustomCheckerFunction: true });

function parseClock(text: string, variable: string): number {
  const [h, m] = text.split(':').map(Number);
  const minutes = h * 60 + m;
  if (minutes > 1440) throw new ConfigError(variable, `time ${text} is past 24:00`);
  return minutes;
}

function checkTimeZone(tz: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new ConfigError('SALE_TZ', `unknown time zone "${tz}"`);
  }
}

function parseSentinels(list: string, name: string): RedisSentinels | null {
  if (!list) return null;
  const hosts = list.split(',').map((entry) => {
    const at = entry.lastIndexOf(':');
    const port = Number(entry.slice(at + 1));
    if (port < 1 || port > 65535)
      throw new ConfigError('REDIS_SENTINELS', `port of "${entry}" is out of range`);
    return { host: entry.slice(0, at), port };
  });
  return { name, hosts };
}

function parseServices(list: string): ServiceName[] {
  if (list.trim() === 'all') return [...ALL_SERVICES];
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const name of names) {
    if (!(ALL_SERVICES as readonly string[]).includes(name)) {
      throw new ConfigError(
        'SERVICES',
        `unknown service "${name}" (known: ${ALL_SERVICES.join(', ')}, or all)`,
      );
    }
  }
  if (names.length === 0) throw new ConfigError('SERVICES', 'no service selected');
  return [...new Set(names)] as ServiceName[];
}

/** A supervisor only for the default start: SERVICES names a real deployment's node, run as it is. */
function supervisorOf(services: string | undefined, workers: number): Config['supervisor'] {
  return (services === undefined || services === '') && workers > 0 ? { workers } : null;
}

/**
 * AUTH_MODE (jwt by default in production) and its key: exactly one of the secret, the PEM public key
 * and the JWKS URL, checked here so that a bad key stops the start rather than every sign-in.
 */
function authConfig(v: <T>(name: VarName) => T, nodeEnv: Config['env']): Config['auth'] {
  const mode = v<string>('AUTH_MODE') || (nodeEnv === 'production' ? 'jwt' : 'open');
  const secret = v<string>('AUTH_JWT_SECRET') || null;
  const pem = v<string>('AUTH_JWT_PUBLIC_KEY');
  const jwksUrl = v<string>('AUTH_JWKS_URL') || null;
  const given = [secret, pem, jwksUrl].filter(Boolean).length;
  if (mode === 'jwt' && given !== 1) {
    throw new ConfigError(
      'AUTH_JWT_SECRET',
      'AUTH_MODE=jwt needs exactly one of AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY or AUTH_JWKS_URL',
    );
  }
  if (secret && secret.length < 32)
    throw new ConfigError('AUTH_JWT_SECRET', 'must be at least 32 characters');
  let publicKey: KeyObject | null = null;
  if (pem) {
    try {
      // A PEM in one line of an env file may carry its line breaks as "\n".
      publicKey = createPublicKey(pem.replace(/\\n/g, '\n'));
    } catch {
      throw new ConfigError('AUTH_JWT_PUBLIC_KEY', 'is not a PEM public key');
    }
    if (publicKey.asymmetricKeyType !== 'rsa' && publicKey.asymmetricKeyType !== 'ec') {
      throw new ConfigError('AUTH_JWT_PUBLIC_KEY', 'must be an RSA (RS256) or P-256 (ES256) key');
    }
  }
  if (jwksUrl) {
    try {
      if (!['https:', 'http:'].includes(new URL(jwksUrl).protocol)) throw new Error('scheme');
    } catch {
      throw new ConfigError('AUTH_JWKS_URL', `"${jwksUrl}" is not an http(s) URL`);
    }
  }
  return {
    mode: mode as Config['auth']['mode'],
    secret,
    publicKey,
    jwksUrl,
    issuer: v<string>('AUTH_JWT_ISSUER') || null,
    audience: v<string>('AUTH_JWT_AUDIENCE') || null,
  };
}

/**
 * Reads and validates the configuration. Throws a ConfigError naming the first bad variable.
 * `warn` receives notes about insecure development defaults.
 */
export function loadConfig(env: Env = process.env, warn: (msg: string) => void = () => {}): Config {
  const raw: Record<string, unknown> = {};
  for (const [name, [fallback, rule]] of Object.entries(schema)) {
    const value = env[name] === undefined || env[name] === '' ? fallback : env[name];
    const holder = { v: value };
    const check = validator.validate(holder, { v: rule } as never);
    if (check !== true) {
      const first = Array.isArray(check) ? check[0] : undefined;
      throw new ConfigError(name, `"${value}" is not valid (${first?.type ?? 'invalid'})`);
    }
    raw[name] = holder.v;
  }
  const v = <T>(name: VarName) => raw[name] as T;

  const nodeEnv = v<Config['env']>('NODE_ENV');
  let hashSecret = v<string>('HASH_SECRET');
  if (!hashSecret) {
    if (nodeEnv === 'production') {
      throw new ConfigError('HASH_SECRET', 'is required in production (at least 32 characters)');
    }
    hashSecret = nodeEnv === 'test' ? randomBytes(32).toString('hex') : DEV_HASH_SECRET;
    warn(
      `HASH_SECRET is not set: using ${nodeEnv === 'test' ? 'a random' : 'a fixed development'} secret. ` +
        'Set HASH_SECRET (32+ characters) before exposing the service.',
    );
  } else if (hashSecret.length < 32) {
    throw new ConfigError('HASH_SECRET', 'must be at least 32 characters');
  }
  const adminToken = v<string>('ADMIN_TOKEN') || null;
  if (adminToken && adminToken.length < 16) {
    throw new ConfigError('ADMIN_TOKEN', 'must be at least 16 characters');
  }
  if (!adminToken) warn('ADMIN_TOKEN is not set: the admin API is disabled (answers 4001).');

  const [startText, endText] = v<string>('SALE_WINDOW').split('-');
  const windowStart = parseClock(startText, 'SALE_WINDOW');
  const windowEnd = parseClock(endText, 'SALE_WINDOW');
  if (windowEnd <= windowStart) throw new ConfigError('SALE_WINDOW', 'end must be after start');
  const timeZone = v<string>('SALE_TZ');
  checkTimeZone(timeZone);

  const pollMin = v<number>('POLL_MIN_MS');
  const pollMax = v<number>('POLL_MAX_MS');
  if (pollMax < pollMin) throw new ConfigError('POLL_MAX_MS', 'must not be below POLL_MIN_MS');

  if (v<number>('OUTBOX_MAX_AGE_MS') < v<number>('OUTBOX_GRACE_MS'))
    throw new ConfigError('OUTBOX_MAX_AGE_MS', 'must not be below OUTBOX_GRACE_MS');

  const metricsToken = v<string>('METRICS_TOKEN') || null;
  if (metricsToken && metricsToken.length < 16) {
    throw new ConfigError('METRICS_TOKEN', 'must be at least 16 characters');
  }
  const natsCreds = v<string>('NATS_CREDS') || null;
  if (natsCreds && !existsSync(natsCreds)) throw new ConfigError('NATS_CREDS', `no file at "${natsCreds}"`);
  const auth = authConfig(v, nodeEnv);
  if (auth.mode === 'open' && nodeEnv === 'production') {
    warn('AUTH_MODE=open in production: any client can act for any user id.');
  }
  for (const name of ['RATE_LIMIT_IP_WINDOW_MS', 'VERIFY_HASH_WINDOW_MS'] as const) {
    // The Redis limiter counts in whole seconds.
    if (v<number>(name) % 1000 !== 0) throw new ConfigError(name, 'must be a multiple of 1000');
  }

  const webhook = v<string>('ALERT_WEBHOOK_URL') || null;
  if (webhook) {
    try {
      new URL(webhook);
    } catch {
      throw new ConfigError('ALERT_WEBHOOK_URL', `"${webhook}" is not a URL`);
    }
  }

  return {
    env: nodeEnv,
    port: v('PORT'),
    host: v('HOST'),
    databaseUrl: v('DATABASE_URL'),
    redisUrl: v('REDIS_URL'),
    redisSentinels: parseSentinels(v('REDIS_SENTINELS'), v('REDIS_SENTINEL_NAME')),
    natsUrl: v('NATS_URL'),
    namespace: v('NAMESPACE'),
    logLevel: v('LOG_LEVEL'),
    services: parseServices(v('SERVICES')),
    supervisor: supervisorOf(env.SERVICES, v('WORKER_PROCESSES')),
    adminToken,
    hashSecret,
    hashTtlSeconds: v('HASH_TTL_SECONDS'),
    sale: {
      windowStart,
      windowEnd,
      timeZone,
      days: v('SALE_DAYS'),
      defaultTotals: v<string>('SALE_DEFAULT_TOTALS').split(',').map(Number),
      rollIntervalMs: v('SALE_ROLL_INTERVAL_MS'),
    },
    seedUsers: v('SEED_USERS'),
    resultTtlSeconds: v<number>('RESULT_TTL_HOURS') * 3600,
    rateLimit: {
      userMax: v('RATE_LIMIT_USER_MAX'),
      userWindowMs: v('RATE_LIMIT_USER_WINDOW_MS'),
      globalMax: v('RATE_LIMIT_GLOBAL_MAX'),
      globalWindowMs: v('RATE_LIMIT_GLOBAL_WINDOW_MS'),
    },
    abuse: {
      ipMax: v('RATE_LIMIT_IP_MAX'),
      ipWindowMs: v('RATE_LIMIT_IP_WINDOW_MS'),
      trustProxy: v('TRUST_PROXY'),
      hashUserMax: v('VERIFY_HASH_USER_MAX'),
      hashUserWindowMs: v('VERIFY_HASH_WINDOW_MS'),
      waitsPerIp: v('WAIT_SLOTS_PER_IP'),
      waitsPerGateway: v('WAIT_SLOTS_PER_GATEWAY'),
    },
    auth,
    metricsToken,
    natsCreds,
    queue: {
      storage: v('QUEUE_STORAGE'),
      replicas: v('QUEUE_REPLICAS'),
      ackWaitMs: v('QUEUE_ACK_WAIT_MS'),
      maxDeliver: v('QUEUE_MAX_DELIVER'),
      delayMs: v('QUEUE_DELAY_MS'),
      duplicateWindowMs: v('QUEUE_DUPLICATE_WINDOW_MS'),
      maxAckPending: v('QUEUE_MAX_ACK_PENDING'),
      dlqMaxAgeHours: v('QUEUE_DLQ_MAX_AGE_HOURS'),
      dlqMaxMessages: v('QUEUE_DLQ_MAX_MESSAGES'),
      publishRetryMs: v('QUEUE_PUBLISH_RETRY_MS'),
    },
    worker: {
      concurrency: v('WORKER_CONCURRENCY'),
      retryAttempts: v('WORKER_RETRY_ATTEMPTS'),
      retryBaseMs: v('WORKER_RETRY_BASE_MS'),
      batchSize: v('WORKER_BATCH_SIZE'),
      batchMs: v('WORKER_BATCH_MS'),
      nice: v('WORKER_NICE'),
      crowdRate: v('WORKER_CROWD_RATE'),
      crowdMaxWaitMs: v('WORKER_CROWD_MAX_WAIT_MS'),
    },
    outbox: {
      checkMs: v('OUTBOX_CHECK_MS'),
      graceMs: v('OUTBOX_GRACE_MS'),
      maxAgeMs: v('OUTBOX_MAX_AGE_MS'),
    },
    flagCheckMs: v('FLAG_CHECK_MS'),
    poll: { minMs: pollMin, maxMs: pollMax, longPollMaxMs: v('LONG_POLL_MAX_MS') },
    cache: { resultLruSize: v('RESULT_LRU_SIZE') },
    http: { bodyLimit: v('HTTP_BODY_LIMIT') },
    db: {
      poolMax: v('DB_POOL_MAX'),
      writerPoolMax: v('DB_WRITER_POOL_MAX'),
      lockTimeoutMs: v('DB_LOCK_TIMEOUT_MS'),
    },
    alerts: {
      webhookUrl: webhook,
      failureRatio: v('ALERT_FAILURE_RATIO'),
      backlogMax: v('ALERT_BACKLOG_MAX'),
      windowMs: v('ALERT_WINDOW_MS'),
      hold: v('ALERT_HOLD'),
      minSamples: v('ALERT_MIN_SAMPLES'),
      errorRatio: v('ALERT_ERROR_RATIO'),
    },
    monitor: { intervalMs: v('MONITOR_INTERVAL_MS') },
  };
}

/** Variable names with their defaults, for the README and `--help`. */
export const CONFIG_DEFAULTS: Record<string, string> = Object.fromEntries(
  Object.entries(schema).map(([name, [fallback]]) => [name, fallback]),
);
