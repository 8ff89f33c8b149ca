import { generateKeyPairSync } from 'node:crypto';
import { ALL_SERVICES, ConfigError, loadConfig } from '../../config';

const SECRET = 'a-perfectly-long-hash-secret-0123456789';
const TOKEN = 'admin-token-0123456789';
const JWT_SECRET = 'a-jwt-signing-secret-0123456789abcdef';

/** A complete, valid environment; each case overrides one variable. */
const base = (overrides: Record<string, string | undefined> = {}) => ({
  NODE_ENV: 'test',
  HASH_SECRET: SECRET,
  ADMIN_TOKEN: TOKEN,
  ...overrides,
});

function configErrorOf(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('works with an empty environment and applies the documented defaults', () => {
    const config = loadConfig({});
    expect(config.env).toBe('development');
    expect(config.port).toBe(3000);
    expect(config.host).toBe('0.0.0.0');
    expect(config.databaseUrl).toBe('postgres://postgres@127.0.0.1:5432/miaosha');
    expect(config.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(config.natsUrl).toBe('nats://127.0.0.1:4222');
    expect(config.namespace).toBe('miaosha');
    expect(config.services).toEqual([...ALL_SERVICES]);
    expect(config.adminToken).toBeNull();
    expect(config.hashSecret.length).toBeGreaterThanOrEqual(32);
    expect(config.hashTtlSeconds).toBe(3600);
    expect(config.sale).toMatchObject({
      windowStart: 0,
      windowEnd: 1440,
      timeZone: 'UTC',
      days: 3,
      defaultTotals: [100, 150, 200],
    });
    expect(config.seedUsers).toBe(100000);
    expect(config.resultTtlSeconds).toBe(24 * 3600);
    expect(config.poll.minMs).toBeLessThanOrEqual(config.poll.maxMs);
    expect(config.http.bodyLimit).toBe('16kb');
    expect(config.worker.nice).toBe(10);
    expect(config.supervisor).toEqual({ workers: 2 });
  });

  it('supervises the default layout only when SERVICES is not set and WORKER_PROCESSES > 0', () => {
    expect(loadConfig(base({ WORKER_PROCESSES: '3' })).supervisor).toEqual({ workers: 3 });
    expect(loadConfig(base({ SERVICES: '' })).supervisor).toEqual({ workers: 2 });
    // A deployment's node names its services, all of them included: it runs them itself.
    expect(loadConfig(base({ SERVICES: 'all' })).supervisor).toBeNull();
    expect(loadConfig(base({ SERVICES: 'purchase-worker' })).supervisor).toBeNull();
    expect(loadConfig(base({ WORKER_PROCESSES: '0' })).supervisor).toBeNull();
  });

  it('treats empty strings as unset', () => {
    const config = loadConfig(base({ PORT: '', SALE_TZ: '', SERVICES: '' }));
    expect(config.port).toBe(3000);
    expect(config.sale.timeZone).toBe('UTC');
    expect(config.services).toEqual([...ALL_SERVICES]);
  });

  it('reads and converts given values', () => {
    const config = loadConfig(
      base({
        PORT: '8080',
        NAMESPACE: 'shop_2-b',
        SALE_WINDOW: '08:00-16:30',
        SALE_TZ: 'Asia/Shanghai',
        SALE_DAYS: '5',
        SERVICES: 'api, purchase,api',
        RESULT_TTL_HOURS: '2',
        DATABASE_URL: 'postgresql://u:p@db.example:5433/shop',
      }),
    );
    expect(config.port).toBe(8080);
    expect(config.namespace).toBe('shop_2-b');
    expect(config.sale.windowStart).toBe(8 * 60);
    expect(config.sale.windowEnd).toBe(16 * 60 + 30);
    expect(config.sale.timeZone).toBe('Asia/Shanghai');
    expect(config.sale.days).toBe(5);
    expect(config.services).toEqual(['api', 'purchase']);
    expect(config.resultTtlSeconds).toBe(7200);
    expect(config.adminToken).toBe(TOKEN);
    expect(config.hashSecret).toBe(SECRET);
    expect(config.databaseUrl).toBe('postgresql://u:p@db.example:5433/shop');
  });

  it('accepts a window that ends at midnight', () => {
    const config = loadConfig(base({ SALE_WINDOW: '20:00-24:00' }));
    expect(config.sale.windowEnd).toBe(1440);
  });

  const bad: [string, Record<string, string | undefined>][] = [
    ['PORT', { PORT: 'abc' }],
    ['PORT', { PORT: '70000' }],
    ['PORT', { PORT: '-1' }],
    ['PORT', { PORT: '80.5' }],
    ['NAMESPACE', { NAMESPACE: 'my.namespace' }],
    ['NAMESPACE', { NAMESPACE: 'has space' }],
    ['NAMESPACE', { NAMESPACE: '1starts-with-digit' }],
    ['NAMESPACE', { NAMESPACE: 'x'.repeat(41) }],
    ['SALE_WINDOW', { SALE_WINDOW: '25:00-26:00' }],
    ['SALE_WINDOW', { SALE_WINDOW: '24:30-24:45' }],
    ['SALE_WINDOW', { SALE_WINDOW: '16:00-08:00' }],
    ['SALE_WINDOW', { SALE_WINDOW: '10:00-10:00' }],
    ['SALE_WINDOW', { SALE_WINDOW: '8-16' }],
    ['SALE_TZ', { SALE_TZ: 'Mars/Base' }],
    ['SALE_DAYS', { SALE_DAYS: '0' }],
    ['SERVICES', { SERVICES: 'bogus' }],
    ['SERVICES', { SERVICES: 'api,bogus' }],
    ['SERVICES', { SERVICES: ',' }],
    ['HASH_SECRET', { HASH_SECRET: 'too-short' }],
    ['HASH_SECRET', { NODE_ENV: 'production', HASH_SECRET: undefined }],
    ['ADMIN_TOKEN', { ADMIN_TOKEN: 'short' }],
    ['POLL_MAX_MS', { POLL_MIN_MS: '1000', POLL_MAX_MS: '500' }],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://root@127.0.0.1:3306/miaosha' }],
    ['DATABASE_URL', { DATABASE_URL: 'not a url' }],
    ['REDIS_URL', { REDIS_URL: 'http://127.0.0.1:6379' }],
    ['NODE_ENV', { NODE_ENV: 'staging' }],
    ['LOG_LEVEL', { LOG_LEVEL: 'verbose' }],
    ['RESULT_TTL_HOURS', { RESULT_TTL_HOURS: '0' }],
    ['HTTP_BODY_LIMIT', { HTTP_BODY_LIMIT: 'lots' }],
    ['QUEUE_STORAGE', { QUEUE_STORAGE: 'disk' }],
    ['WORKER_NICE', { WORKER_NICE: '20' }],
    ['WORKER_NICE', { WORKER_NICE: '-5' }],
    ['WORKER_PROCESSES', { WORKER_PROCESSES: '17' }],
    ['WORKER_PROCESSES', { WORKER_PROCESSES: 'two' }],
    ['ALERT_WEBHOOK_URL', { ALERT_WEBHOOK_URL: 'not a url' }],
    ['AUTH_MODE', { AUTH_MODE: 'oauth' }],
    ['AUTH_JWT_SECRET', { NODE_ENV: 'production' }], // jwt by default there, and no key given
    ['AUTH_JWT_SECRET', { AUTH_MODE: 'jwt' }],
    ['AUTH_JWT_SECRET', { AUTH_MODE: 'jwt', AUTH_JWT_SECRET: 'short' }],
    ['AUTH_JWT_SECRET', { AUTH_MODE: 'jwt', AUTH_JWT_SECRET: JWT_SECRET, AUTH_JWKS_URL: 'https://id/jwks' }],
    ['AUTH_JWT_PUBLIC_KEY', { AUTH_MODE: 'jwt', AUTH_JWT_PUBLIC_KEY: 'not a pem' }],
    ['AUTH_JWKS_URL', { AUTH_MODE: 'jwt', AUTH_JWKS_URL: 'file:///etc/keys' }],
    ['METRICS_TOKEN', { METRICS_TOKEN: 'short' }],
    ['NATS_CREDS', { NATS_CREDS: '/no/such/user.creds' }],
    ['RATE_LIMIT_IP_MAX', { RATE_LIMIT_IP_MAX: '-1' }],
    ['RATE_LIMIT_IP_WINDOW_MS', { RATE_LIMIT_IP_WINDOW_MS: '1500' }],
    ['VERIFY_HASH_WINDOW_MS', { VERIFY_HASH_WINDOW_MS: '500' }],
    ['TRUST_PROXY', { TRUST_PROXY: 'yes' }],
    ['WAIT_SLOTS_PER_IP', { WAIT_SLOTS_PER_IP: '1.5' }],
    ['REDIS_SENTINELS', { REDIS_SENTINELS: '127.0.0.1' }],
    ['REDIS_SENTINELS', { REDIS_SENTINELS: 'a:26379,,b:26379' }],
    ['REDIS_SENTINELS', { REDIS_SENTINELS: 'a:70000' }],
    ['REDIS_SENTINEL_NAME', { REDIS_SENTINELS: 'a:26379', REDIS_SENTINEL_NAME: 'my master' }],
    ['QUEUE_PUBLISH_RETRY_MS', { QUEUE_PUBLISH_RETRY_MS: '-1' }],
  ];

  it('reads the Redis sentinels (none by default)', () => {
    expect(loadConfig(base()).redisSentinels).toBeNull();
    expect(
      loadConfig(base({ REDIS_SENTINELS: '10.0.0.1:26379,sentinel-b:26380', REDIS_SENTINEL_NAME: 'tickets' }))
        .redisSentinels,
    ).toEqual({
      name: 'tickets',
      hosts: [
        { host: '10.0.0.1', port: 26379 },
        { host: 'sentinel-b', port: 26380 },
      ],
    });
  });

  it.each(bad)('refuses a bad %s (%j) with a ConfigError naming it', (variable, overrides) => {
    const err = configErrorOf(base(overrides));
    expect(err.variable).toBe(variable);
    expect(err.message).toContain(variable);
  });

  it('lets production start with its secrets set, signing users in with JWTs by default', () => {
    const config = loadConfig(base({ NODE_ENV: 'production', AUTH_JWT_SECRET: JWT_SECRET }));
    expect(config.env).toBe('production');
    expect(config.hashSecret).toBe(SECRET);
    expect(config.auth).toMatchObject({ mode: 'jwt', secret: JWT_SECRET, publicKey: null, jwksUrl: null });
    expect(loadConfig(base({ NODE_ENV: 'production', AUTH_MODE: 'open' })).auth.mode).toBe('open');
  });

  it('keeps the open mode outside production, and the abuse limits on by default', () => {
    const config = loadConfig(base());
    expect(config.auth.mode).toBe('open');
    expect(config.abuse.ipMax).toBeGreaterThan(0);
    expect(config.abuse.hashUserMax).toBeGreaterThan(0);
    expect(config.abuse.waitsPerIp).toBeGreaterThan(0);
    expect(config.abuse.waitsPerGateway).toBeGreaterThan(0);
    expect(config.abuse.trustProxy).toBe(0);
  });

  it('takes an RS256 or ES256 public key in PEM, also with its line breaks written as \\n', () => {
    for (const type of ['rsa', 'ec'] as const) {
      const { publicKey } =
        type === 'rsa'
          ? generateKeyPairSync('rsa', { modulusLength: 2048 })
          : generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const config = loadConfig(base({ AUTH_MODE: 'jwt', AUTH_JWT_PUBLIC_KEY: pem.replace(/\n/g, '\\n') }));
      expect(config.auth.publicKey?.asymmetricKeyType).toBe(type);
    }
  });

  it('tells the warn callback about missing secrets', () => {
    const warnings: string[] = [];
    const config = loadConfig({ NODE_ENV: 'development' }, (msg) => warnings.push(msg));
    expect(config.adminToken).toBeNull();
    expect(warnings.some((w) => w.includes('HASH_SECRET'))).toBe(true);
    expect(warnings.some((w) => w.includes('ADMIN_TOKEN'))).toBe(true);
  });

  it('does not warn when the secrets are set', () => {
    const warnings: string[] = [];
    loadConfig(base(), (msg) => warnings.push(msg));
    expect(warnings).toEqual([]);
  });

  it('uses a random hash secret per load in tests and a stable one in development', () => {
    expect(loadConfig({ NODE_ENV: 'test' }).hashSecret).not.toBe(loadConfig({ NODE_ENV: 'test' }).hashSecret);
    expect(loadConfig({}).hashSecret).toBe(loadConfig({}).hashSecret);
  });
});
