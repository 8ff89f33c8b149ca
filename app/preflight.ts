import net from 'node:net';
import type { Config } from '../config';

/** A server the service needs, where it looks for it, and how a newcomer starts one. */
interface Server {
  name: string;
  variable: string;
  /** host:port candidates; one answering is enough (a cluster, sentinels). */
  addresses: { host: string; port: number }[];
  start: string;
}

const DEFAULT_PORTS: Record<string, number> = {
  'postgres:': 5432,
  'postgresql:': 5432,
  'redis:': 6379,
  'rediss:': 6379,
};

function address(url: string, defaultPort: number): { host: string; port: number } {
  const parsed = new URL(url.includes('://') ? url : `nats://${url}`);
  return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port) || defaultPort };
}

function servers(config: Config): Server[] {
  const db = new URL(config.databaseUrl);
  const redis: Server = config.redisSentinels
    ? {
        name: 'Redis Sentinel',
        variable: 'REDIS_SENTINELS',
        addresses: config.redisSentinels.hosts,
        start: 'docker compose --profile cluster up -d (see docs/scale-out.md)',
      }
    : {
        name: 'Redis',
        variable: 'REDIS_URL',
        addresses: [address(config.redisUrl, DEFAULT_PORTS[new URL(config.redisUrl).protocol])],
        start: 'docker compose up -d redis   (or Debian: sudo apt-get install redis-server)',
      };
  return [
    {
      name: 'PostgreSQL',
      variable: 'DATABASE_URL',
      addresses: [address(config.databaseUrl, DEFAULT_PORTS[db.protocol])],
      start: 'docker compose up -d postgres   (or Debian: sudo apt-get install postgresql)',
    },
    redis,
    {
      name: 'NATS',
      variable: 'NATS_URL',
      addresses: config.natsUrl.split(',').map((u) => address(u.trim(), 4222)),
      start: 'docker compose up -d nats   (or Debian: sudo apt-get install nats-server && nats-server -js)',
    },
  ];
}

function reachable({ host, port }: { host: string; port: number }, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Before the broker starts: one message per server that accepts no connection at any of its
 * addresses — which one, where it was looked for, and the command that starts it — instead of the
 * stack trace (or the endless reconnecting) of the first client that needs it.
 */
export async function unreachableServers(config: Config, timeoutMs = 3000): Promise<string[]> {
  const checks = servers(config).map(async (server) => {
    const answers = await Promise.all(server.addresses.map((a) => reachable(a, timeoutMs)));
    if (answers.some(Boolean)) return null;
    const where = server.addresses.map((a) => `${a.host}:${a.port}`).join(', ');
    return `Cannot reach ${server.name} at ${where} (${server.variable}). Start it with: ${server.start}`;
  });
  return (await Promise.all(checks)).filter((m): m is string => m !== null);
}
