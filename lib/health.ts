import type { ServiceBroker } from 'moleculer';
import type { Runtime } from './runtime';

export interface DependencyState {
  up: boolean;
  latencyMs?: number;
  error?: string;
}

export interface Health {
  status: 'up' | 'down';
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
    return { up: false, error: err instanceof Error ? err.message : 'unreachable' };
  } finally {
    clearTimeout(timer);
  }
}

/** Each dependency as this node sees it. */
export async function checkHealth(broker: ServiceBroker, rt: Runtime): Promise<Health> {
  const transit = broker.transit as unknown as { connected?: boolean } | undefined;
  const [postgres, redis] = await Promise.all([
    probe(() => rt.db.query('SELECT 1')),
    probe(() => rt.redis.ping()),
  ]);
  const nats: DependencyState = transit?.connected ? { up: true } : { up: false, error: 'disconnected' };
  const dependencies = { postgres, redis, nats };
  return {
    status: Object.values(dependencies).every((d) => d.up) ? 'up' : 'down',
    node: broker.nodeID,
    uptimeSeconds: Math.round(process.uptime()),
    dependencies,
  };
}
