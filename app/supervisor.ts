import { fork, type ChildProcess } from 'node:child_process';
import pino, { type Logger } from 'pino';
import { ALL_SERVICES, type Config } from '../config';

/** One process of the default layout: its name in the log, and the SERVICES it runs. */
export interface ChildSpec {
  name: string;
  services: string;
}

/** A message a supervised node sends once its broker started. */
export const READY = 'miaosha:ready';

const FIRST_RESTART_MS = 1000;
const MAX_RESTART_MS = 30_000;
/** A child that ran this long before it died is restarted at once again (it was not crash-looping). */
const STABLE_AFTER_MS = 60_000;
/** Longer than a broker's graceful stop (tracking.shutdownTimeout 10 s, then the connections). */
const STOP_GRACE_MS = 30_000;

/**
 * The measured best layout on one machine (README, Performance): one gateway process (HTTP,
 * admission, results, monitor) and separate worker processes, which lower their CPU priority
 * (WORKER_NICE) so the crowd's answers come first.
 */
export function defaultLayout(workers: number): ChildSpec[] {
  const gateway = ALL_SERVICES.filter((s) => s !== 'purchase-worker').join(',');
  return [
    { name: 'gateway', services: gateway },
    ...Array.from({ length: workers }, (_, i) => ({ name: `worker-${i + 1}`, services: 'purchase-worker' })),
  ];
}

interface Slot {
  spec: ChildSpec;
  child?: ChildProcess;
  startedAt: number;
  restartMs: number;
  ready: boolean;
  timer?: NodeJS.Timeout;
}

/**
 * `npm start` without SERVICES: runs the default layout as child processes of this one, each in a
 * session of its own (as a process manager starts services, so a worker's WORKER_NICE also holds
 * against Redis, NATS and PostgreSQL), writing to this process's stdout and stderr. A child that
 * dies is started again (backing off while it keeps dying); SIGTERM and SIGINT stop every child
 * gracefully. A child stops by itself when this process is gone (its IPC channel closes).
 */
export class Supervisor {
  private readonly slots: Slot[];
  private readonly log: Logger;
  private stopping = false;
  private started = false;

  constructor(
    config: Config,
    private readonly entry: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.slots = defaultLayout(config.supervisor?.workers ?? 0).map((spec) => ({
      spec,
      startedAt: 0,
      restartMs: FIRST_RESTART_MS,
      ready: false,
    }));
    this.log = pino({ level: config.logLevel, base: { pid: process.pid, mod: 'supervisor' } });
  }

  /**
   * Starts the gateway, then the workers once it is ready, and resolves once all of them report
   * ready. The gateway alone first: it migrates and seeds, and the workers wait for its tickets
   * service anyway (gateways started beside their workers also came up slow for good more often in
   * the bench; docs/performance.md). A child that dies before its first start completed (e.g. the
   * database is unreachable) stops the others and rejects, as a single process exits when it cannot
   * start.
   */
  start(): Promise<void> {
    this.log.info(`starting ${this.slots.map((s) => s.spec.name).join(', ')}`);
    const [gateway, ...workers] = this.slots;
    let workersSpawned = false;
    return new Promise((resolve, reject) => {
      const onReady = () => {
        if (gateway.ready && !workersSpawned) {
          workersSpawned = true;
          for (const worker of workers) this.spawn(worker, onReady, onEarlyExit);
        }
        if (this.started || !this.slots.every((s) => s.ready)) return;
        this.started = true;
        this.log.info('every process started');
        resolve();
      };
      const onEarlyExit = (slot: Slot, code: number | null, signal: NodeJS.Signals | null) => {
        reject(new Error(`${slot.spec.name} stopped during start (code ${code}, signal ${signal})`));
      };
      this.spawn(gateway, onReady, onEarlyExit);
    });
  }

  private spawn(
    slot: Slot,
    onReady: () => void,
    onEarlyExit: (slot: Slot, code: number | null, signal: NodeJS.Signals | null) => void,
  ): void {
    const child = fork(this.entry, [], {
      env: { ...this.env, SERVICES: slot.spec.services },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      detached: true,
    });
    slot.child = child;
    slot.startedAt = Date.now();
    this.log.info(`${slot.spec.name} started (pid ${child.pid}, SERVICES=${slot.spec.services})`);
    child.on('message', (message) => {
      if (message !== READY) return;
      slot.ready = true;
      this.log.info(`${slot.spec.name} (pid ${child.pid}) ready`);
      onReady();
    });
    child.once('exit', (code, signal) => {
      slot.child = undefined;
      if (this.stopping) return;
      if (!this.started) {
        onEarlyExit(slot, code, signal);
        return;
      }
      const ranMs = Date.now() - slot.startedAt;
      if (ranMs >= STABLE_AFTER_MS) slot.restartMs = FIRST_RESTART_MS;
      this.log.warn(
        `${slot.spec.name} (pid ${child.pid}) exited (code ${code}, signal ${signal}); ` +
          `restarting in ${slot.restartMs} ms`,
      );
      slot.timer = setTimeout(() => {
        slot.timer = undefined;
        if (!this.stopping) this.spawn(slot, onReady, onEarlyExit);
      }, slot.restartMs);
      slot.restartMs = Math.min(MAX_RESTART_MS, slot.restartMs * 2);
    });
  }

  /** SIGTERM to every child (a graceful broker stop each), SIGKILL for any still there after the grace. */
  async stop(reason: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info(`${reason}: stopping ${this.slots.filter((s) => s.child).length} process(es)`);
    await Promise.all(
      this.slots.map(async (slot) => {
        clearTimeout(slot.timer);
        const child = slot.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          this.log.warn(
            `${slot.spec.name} (pid ${child.pid}) still running after ${STOP_GRACE_MS} ms: SIGKILL`,
          );
          child.kill('SIGKILL');
        }, STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }),
    );
    this.log.info('every process stopped');
  }
}
