import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { ServiceBroker } from 'moleculer';
import { loadConfig, type Config } from '../../config';
import { createBroker } from '../../app/broker';
import { dropDatabase } from '../../lib/db';
import { PurchaseQueue } from '../../lib/purchase/queue';
import { runtimeOf, type Runtime } from '../../lib/runtime';
import { saleDates } from '../../lib/sale/calendar';
import { issueVerifyHash } from '../../lib/sale/verify-hash';
import { createRedis, deleteNamespace } from '../../lib/store/redis';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface Envelope<T = unknown> {
  code: number;
  message: string;
  data: T;
}

export interface HttpAnswer<T = unknown> {
  status: number;
  body: Envelope<T>;
  headers: Headers;
}

export interface TestApp {
  config: Config;
  broker: ServiceBroker;
  rt: Runtime;
  baseUrl: string;
  namespace: string;
  env: Record<string, string>;
  /** The sale days, today first. */
  dates: readonly string[];
  hash(userId: number, date: string): string;
  get<T = unknown>(path: string, headers?: Record<string, string>): Promise<HttpAnswer<T>>;
  post<T = unknown>(path: string, body?: unknown, headers?: Record<string, string>): Promise<HttpAnswer<T>>;
  put<T = unknown>(path: string, body?: unknown, headers?: Record<string, string>): Promise<HttpAnswer<T>>;
  admin: Record<string, string>;
  /** Stops the broker; with `cleanup` (default) drops the database, Redis keys and streams. */
  stop(cleanup?: boolean): Promise<void>;
}

export const uniqueNamespace = (prefix = 't'): string => `${prefix}${randomBytes(5).toString('hex')}`;

/** The environment of an isolated instance: own namespace (Redis prefix, streams, broker) and database. */
export function isolatedEnv(
  namespace: string,
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    NODE_ENV: 'test',
    NAMESPACE: namespace,
    DATABASE_URL: `postgres://postgres@127.0.0.1:5432/miaosha_${namespace}`,
    PORT: '0',
    HOST: '127.0.0.1',
    SEED_USERS: '3000',
    LOG_LEVEL: 'warn',
    ADMIN_TOKEN,
    HASH_SECRET: `test-secret-${namespace}-0123456789abcdef`,
    QUEUE_STORAGE: 'memory',
    RATE_LIMIT_USER_MAX: '50',
    // Every test client is 127.0.0.1 and some send thousands of requests: the per-IP and per-user
    // abuse limits are off here, and the tests of those limits turn them on.
    RATE_LIMIT_IP_MAX: '0',
    VERIFY_HASH_USER_MAX: '0',
    WAIT_SLOTS_PER_IP: '0',
    // Tests measure no scheduling: a worker node starved by the test's own load would only slow them.
    WORKER_NICE: '0',
    ...overrides,
  };
}

async function call<T>(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const res = await fetch(baseUrl + path, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: Envelope<T>;
  try {
    parsed = JSON.parse(text) as Envelope<T>;
  } catch {
    parsed = { code: -1, message: text, data: null as T };
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Starts a whole service (all services in one broker) on a random port, isolated from everything else. */
export async function startApp(overrides: Record<string, string> = {}): Promise<TestApp> {
  const namespace = overrides.NAMESPACE ?? uniqueNamespace();
  const env = isolatedEnv(namespace, overrides);
  const config = loadConfig(env);
  // Unique per broker: two instances may share a namespace (several gateways), and Moleculer stops
  // the process on a nodeID conflict.
  const broker = createBroker(config, `${namespace}-test-${process.pid}-${randomBytes(3).toString('hex')}`);
  await broker.start();
  const rt = runtimeOf(broker);
  let baseUrl = '';
  if (config.services.includes('api')) {
    const api = broker.getLocalService('api') as unknown as { server: Server };
    baseUrl = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
  }
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  return {
    config,
    broker,
    rt,
    baseUrl,
    namespace,
    env,
    dates: saleDates(rt.calendar),
    admin,
    hash: (userId, date) =>
      issueVerifyHash(config.hashSecret, userId, date, config.hashTtlSeconds).verifyHash,
    get: (path, headers) => call(baseUrl, 'GET', path, undefined, headers),
    post: (path, body, headers) => call(baseUrl, 'POST', path, body ?? {}, headers),
    put: (path, body, headers) => call(baseUrl, 'PUT', path, body ?? {}, headers),
    async stop(cleanup = true) {
      await broker.stop();
      if (cleanup) await cleanupNamespace(config);
    },
  };
}

/** Removes everything an isolated instance left behind: database, Redis keys, JetStream streams. */
export async function cleanupNamespace(config: Config, { keepDatabase = false } = {}): Promise<void> {
  const redis = createRedis(config, config.namespace);
  try {
    await deleteNamespace(redis, config.namespace);
  } finally {
    redis.disconnect();
  }
  const queue = await PurchaseQueue.open(config, 'cleanup');
  await queue.destroy();
  await queue.close();
  if (!keepDatabase) await dropDatabase(config.databaseUrl);
}

/** Polls until `check` returns a value (not undefined) or the deadline passes. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`Condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
}

export interface SseFrame {
  event: string;
  /** The frame's data lines joined and JSON-parsed. */
  data: unknown;
}

/**
 * Reads a Server-Sent Events body until the server ends it, handing every frame that carries data to
 * `onFrame` (event name `message` unless the frame names one). Rejects if the read fails (e.g. aborted).
 */
export async function readSse(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  onFrame: (frame: SseFrame) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trim());
      }
      if (data.length) onFrame({ event, data: JSON.parse(data.join('\n')) as unknown });
    }
  }
}
