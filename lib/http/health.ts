import type { ServerResponse } from 'node:http';
import type Redis from 'ioredis';
import type { ServiceBroker } from 'moleculer';
import type { Sequelize } from 'sequelize';
import { ERRORS } from '../errors';
import { sendEnvelope } from './envelope';

export interface DependencyState {
  up: boolean;
  latencyMs?: number;
  error?: string;
}

export interface Health {
  /** `starting` until every local service has started: a balancer must not send traffic yet. */
  status: 'up' | 'down' | 'starting';
  node: string;
  uptimeSeconds: number;
  dependencies: Record<'postgres' | 'redis' | 'nats', DependencyState>;
}

async function probe(check: () => Promise<unknown>, timeoutMs = 2000): Promise<DependencyState> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), timeoutMs);
      }),
    ]);
    return { up: true, latencyMs: Date.now() - started };
  } catch (err) {
    // The health answer is public: say what failed, never the driver's message (names, hosts).
    return {
      up: false,
      error: err instanceof Error && err.message === 'timed out' ? 'timed out' : 'unreachable',
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Each dependency as this node sees it (PostgreSQL through its main pool). */
export async function checkHealth(
  broker: ServiceBroker,
  stores: { db: Sequelize; redis: Redis },
): Promise<Health> {
  // Moleculer's NATS transporter flags only a closed connection, not one that dropped and is
  // reconnecting: a round trip (PING/PONG) through its client tells.
  const transit = broker.transit as unknown as
    { connected?: boolean; tx?: { client?: { flush?: () => Promise<void> } } } | undefined;
  const client = transit?.tx?.client;
  const [postgres, redis, nats] = await Promise.all([
    probe(() => stores.db.query('SELECT 1')),
    probe(() => stores.redis.ping()),
    transit?.connected
      ? client?.flush
        ? probe(() => client.flush!())
        : Promise.resolve<DependencyState>({ up: true })
      : Promise.resolve<DependencyState>({ up: false, error: 'disconnected' }),
  ]);
  const dependencies = { postgres, redis, nats };
  const up = Object.values(dependencies).every((d) => d.up);
  return {
    status: !broker.started ? 'starting' : up ? 'up' : 'down',
    node: broker.nodeID,
    uptimeSeconds: Math.round(process.uptime()),
    dependencies,
  };
}

/** 200 with the report when up; 503 (5030) with the same report while starting or down. */
export function sendHealth(res: ServerResponse, health: Health): void {
  const up = health.status === 'up';
  sendEnvelope(res, up ? 200 : 503, {
    code: up ? 200 : ERRORS.UNAVAILABLE.code,
    message: up ? 'success' : ERRORS.UNAVAILABLE.message,
    data: health,
  });
}
