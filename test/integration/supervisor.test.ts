import { readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { isolatedEnv, uniqueNamespace } from '../helpers/app';
import {
  Deployment,
  freePort,
  Gateway,
  killAll,
  ServiceProcess,
  waitFor,
  waitTerminal,
  type SubmitData,
} from '../helpers/processes';

/**
 * `npm start` without SERVICES (app/supervisor.ts): one supervisor process runs the default layout —
 * a gateway and WORKER_PROCESSES workers, each a child in a session of its own, the workers at
 * WORKER_NICE — restarts a child that dies, stops them all on SIGTERM, and leaves none behind when
 * it is killed itself.
 */

jest.setTimeout(240_000);

const WORKER_NICE = 5;
const STOCK = 50;

afterAll(async () => {
  await killAll();
});

/** The pid of each child, from the supervisor's newest "<name> (pid N) ready" line. */
function readyPids(proc: ServiceProcess): Map<string, number> {
  const pids = new Map<string, number>();
  for (const line of proc.matching(/"mod":"supervisor".*\(pid \d+\) ready/)) {
    const [, name, pid] = /"msg":"(\S+) \(pid (\d+)\) ready/.exec(line)!;
    pids.set(name, Number(pid));
  }
  return pids;
}

/** "pid (comm) state ppid pgrp session …" */
function stat(pid: number): { ppid: number; session: number } {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const [, ppid, , session] = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(ppid), session: Number(session) };
}

/** Running (an exited child not yet reaped is a zombie: state Z). */
const alive = (pid: number) => {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
};

/** Waits until the supervisor has a ready child `name` other than `oldPid`; returns its pid. */
function restarted(proc: ServiceProcess, name: string, oldPid: number): Promise<number> {
  return waitFor(
    async () => {
      const pid = readyPids(proc).get(name);
      return pid !== undefined && pid !== oldPid ? pid : undefined;
    },
    120_000,
    () => `${name} was not restarted\n${proc.output()}`,
    100,
  );
}

describe('npm start: the supervisor runs the default layout', () => {
  let dep: Deployment;
  let supervisor: ServiceProcess;
  let gateway: Gateway;
  let user = 0;

  const startSupervisor = async (name: string, env: Record<string, string> = {}) => {
    const port = await freePort();
    // No SERVICES: exactly what `npm start` runs.
    const proc = new ServiceProcess({ name, env: { ...dep.env, PORT: String(port), ...env } });
    await proc.waitForLine(/"mod":"supervisor".*every process started/, 150_000);
    return new Gateway(proc, port);
  };

  /** A purchase end to end through the supervised gateway: submit, then the order made. */
  const purchase = async () => {
    const userId = ++user;
    const date = dep.dates[0];
    const answer = await gateway.post<SubmitData>('/api/tickets/v2/purchase', {
      userId,
      date,
      verifyHash: dep.hash(userId, date),
    });
    expect(answer.body.code).toBe(200);
    const final = await waitTerminal(dep, gateway, [answer.body.data.messageId], 60_000);
    expect(final.get(answer.body.data.messageId)).toMatchObject({ status: 'SUCCESS', userId });
  };

  beforeAll(async () => {
    const namespace = uniqueNamespace('sv');
    dep = new Deployment(
      namespace,
      isolatedEnv(namespace, {
        LOG_LEVEL: 'info',
        WORKER_NICE: String(WORKER_NICE),
        QUEUE_ACK_WAIT_MS: '3000',
      }),
    );
    gateway = await startSupervisor('npm-start');
    supervisor = gateway.process;
    dep.gateways.push(gateway);
    await dep.setStock(dep.dates[0], STOCK);
  });

  afterAll(async () => {
    await dep?.destroy();
  });

  it('starts a gateway and two workers, each in its own session, the workers at WORKER_NICE', async () => {
    const pids = readyPids(supervisor);
    expect([...pids.keys()].sort()).toEqual(['gateway', 'worker-1', 'worker-2']);
    for (const pid of pids.values()) {
      expect(stat(pid)).toEqual({ ppid: supervisor.pid, session: pid });
    }
    expect(getPriority(pids.get('gateway')!)).toBe(0);
    expect(getPriority(pids.get('worker-1')!)).toBe(WORKER_NICE);
    expect(getPriority(pids.get('worker-2')!)).toBe(WORKER_NICE);
    // The gateway first (it migrates and seeds), the workers once it is ready.
    const log = supervisor.matching(/"mod":"supervisor"/);
    const gatewayReady = log.findIndex((line) => /gateway \(pid \d+\) ready/.test(line));
    expect(gatewayReady).toBeGreaterThanOrEqual(0);
    for (const worker of ['worker-1', 'worker-2'])
      expect(log.findIndex((line) => line.includes(`${worker} started`))).toBeGreaterThan(gatewayReady);
    await purchase();
  });

  it('restarts a killed child: a killed gateway serves again, killed workers make orders again', async () => {
    const before = readyPids(supervisor);
    process.kill(before.get('gateway')!, 'SIGKILL');
    const newGateway = await restarted(supervisor, 'gateway', before.get('gateway')!);
    expect(stat(newGateway).ppid).toBe(supervisor.pid);
    await dep.waitHealthy(gateway, 60_000);

    // Both workers at once: an order can only be made by a restarted one.
    process.kill(before.get('worker-1')!, 'SIGKILL');
    process.kill(before.get('worker-2')!, 'SIGKILL');
    const [w1, w2] = await Promise.all([
      restarted(supervisor, 'worker-1', before.get('worker-1')!),
      restarted(supervisor, 'worker-2', before.get('worker-2')!),
    ]);
    expect([getPriority(w1), getPriority(w2)]).toEqual([WORKER_NICE, WORKER_NICE]);
    await purchase();
    expect(supervisor.running).toBe(true);
  });

  it('SIGTERM stops every child gracefully, then the supervisor exits 0', async () => {
    const pids = [...readyPids(supervisor).values()];
    supervisor.signal('SIGTERM');
    const exit = await waitFor(
      async () => (supervisor.running ? undefined : supervisor.exited),
      60_000,
      () => `the supervisor did not exit\n${supervisor.output()}`,
    );
    expect(exit).toEqual({ code: 0, signal: null });
    expect(pids.filter(alive)).toEqual([]);
    // One log stream: each child wrote its graceful stop to the supervisor's output.
    for (const pid of pids) {
      expect(
        supervisor.matching(new RegExp(`"pid":${pid},.*SIGTERM received, stopping gracefully`)),
      ).toHaveLength(1);
    }
  });

  it('a child that cannot start stops the whole start: exit code 1, no child left', async () => {
    const proc = new ServiceProcess({
      name: 'npm-start-no-db',
      // PostgreSQL answers (so the start-up check passes) but knows no such role: the gateway's
      // first start fails.
      env: {
        ...dep.env,
        PORT: String(await freePort()),
        DATABASE_URL: 'postgres://no_such_role_miaosha@127.0.0.1:5432/none',
      },
    });
    const exit = await proc.exited;
    expect(exit).toEqual({ code: 1, signal: null });
    expect(proc.matching(/Start failed: gateway stopped during start/)).toHaveLength(1);
    const started = proc
      .matching(/"mod":"supervisor".*started \(pid \d+/)
      .map((line) => Number(/started \(pid (\d+)/.exec(line)![1]));
    // The workers start only once the gateway is ready: it never was.
    expect(started).toHaveLength(1);
    expect(started.filter(alive)).toEqual([]);
  });

  it('a supervisor killed outright leaves no child behind', async () => {
    const second = await startSupervisor('npm-start-2', { WORKER_PROCESSES: '1' });
    const pids = [...readyPids(second.process).values()];
    expect(pids).toHaveLength(2);
    await second.process.kill();
    await waitFor(
      async () => (pids.some(alive) ? undefined : true),
      60_000,
      () => `children still running: ${pids.filter(alive).join(', ')}\n${second.process.output()}`,
    );
    expect(second.process.matching(/supervisor gone, stopping gracefully/)).toHaveLength(2);
  });
});
