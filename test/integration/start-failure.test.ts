import { freePort, ServiceProcess } from '../helpers/processes';
import { isolatedEnv, uniqueNamespace } from '../helpers/app';

/**
 * `npm start` without its servers: the process says which server it could not reach, where it
 * looked, and the command that starts it, then exits 1 — no stack trace, no endless reconnecting.
 */
describe('start without the servers', () => {
  it('names each unreachable server, its address and the command that starts it', async () => {
    const [pgPort, redisPort, natsPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const node = new ServiceProcess({
      name: 'no-servers',
      env: isolatedEnv(uniqueNamespace('nf'), {
        DATABASE_URL: `postgres://postgres@127.0.0.1:${pgPort}/miaosha`,
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        NATS_URL: `nats://127.0.0.1:${natsPort}`,
      }),
    });
    const exit = await node.exited;
    const out = node.output(200);
    expect(exit.code).toBe(1);
    expect(out).toContain(
      `Cannot reach PostgreSQL at 127.0.0.1:${pgPort} (DATABASE_URL). Start it with: docker compose up -d postgres`,
    );
    expect(out).toContain(
      `Cannot reach Redis at 127.0.0.1:${redisPort} (REDIS_URL). Start it with: docker compose up -d redis`,
    );
    expect(out).toContain(
      `Cannot reach NATS at 127.0.0.1:${natsPort} (NATS_URL). Start it with: docker compose up -d nats`,
    );
    expect(out).not.toMatch(/^\s+at /m); // no stack trace
  });

  it('is satisfied by one reachable address of a list (a cluster, sentinels)', async () => {
    const closed = await freePort();
    const node = new ServiceProcess({
      name: 'one-of-three',
      env: isolatedEnv(uniqueNamespace('nf'), {
        NATS_URL: `nats://127.0.0.1:${closed},nats://127.0.0.1:4222`,
        REDIS_SENTINELS: `127.0.0.1:${closed}`,
      }),
    });
    const exit = await node.exited;
    const out = node.output(200);
    expect(exit.code).toBe(1);
    expect(out).toContain(`Cannot reach Redis Sentinel at 127.0.0.1:${closed} (REDIS_SENTINELS)`);
    expect(out).not.toContain('Cannot reach NATS');
    expect(out).not.toContain('Cannot reach PostgreSQL');
  });
});
