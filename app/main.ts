import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { ConfigError, loadConfig, type Config } from '../config';
import { unreachableServers } from './preflight';
import { READY, Supervisor } from './supervisor';

const AUTOGROUP = '/proc/self/autogroup';

/**
 * A worker-only node gives way to everything else on its machine (WORKER_NICE): when a crowd
 * arrives, the gateways' answers come first and the orders drain with the CPU that is left. A node
 * that also serves HTTP keeps its priority.
 */
function yieldToGateways(config: Config): void {
  const { services, worker } = config;
  if (worker.nice === 0 || !services.includes('purchase-worker') || services.includes('api')) return;
  try {
    setPriority(worker.nice);
    // Linux schedules each session's processes as one group (autogroup) against the other
    // sessions, and a process's own nice counts only inside its group: against Redis, NATS and
    // PostgreSQL it would not yield at all. A node leading its own session sets its group's nice
    // too; one sharing a session (started from a shell with others) must not slow its neighbours.
    if (existsSync(AUTOGROUP) && leadsOwnSession()) writeFileSync(AUTOGROUP, String(worker.nice));
  } catch (err) {
    console.warn(`[config] WORKER_NICE ${worker.nice} not fully applied: ${(err as Error).message}`);
  }
}

/** Whether this process leads its session (Linux; false where /proc is missing). */
function leadsOwnSession(): boolean {
  let stat: string;
  try {
    stat = readFileSync('/proc/self/stat', 'utf8');
  } catch {
    return false;
  }
  // "pid (comm) state ppid pgrp session …": the command name may hold spaces and parentheses.
  const [, , , session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(session) === process.pid;
}

/** The default start: the best layout for one machine, as child processes of this one. */
async function supervise(config: Config): Promise<void> {
  const supervisor = new Supervisor(config, __filename);
  const stop = async (signal: string) => {
    await supervisor.stop(`${signal} received`);
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  try {
    await supervisor.start();
  } catch (err) {
    await supervisor.stop('start failed');
    throw err;
  }
}

/** One node running the services SERVICES names. */
async function run(config: Config): Promise<void> {
  yieldToGateways(config);
  // Loaded here, not at the top: a supervisor runs no service and stays small.
  const { createBroker } = await import('./broker');
  const broker = createBroker(config);
  let stopping = false;
  const stop = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    broker.logger.info(`${reason}, stopping gracefully`);
    await broker.stop().catch((err) => broker.logger.error('Stop failed', err));
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM received'));
  process.once('SIGINT', () => void stop('SIGINT received'));
  // Started by a supervisor: its IPC channel closes when it is gone, however it died; no orphans.
  if (process.send) process.once('disconnect', () => void stop('supervisor gone'));
  await broker.start();
  process.send?.(READY);
}

async function main(): Promise<void> {
  const config = loadConfig(process.env, (msg) => console.warn(`[config] ${msg}`));
  // A server that cannot be reached is named, with where it was looked for and how to start it.
  const missing = await unreachableServers(config);
  if (missing.length) {
    for (const line of missing) console.error(line);
    process.exit(1);
  }
  await (config.supervisor ? supervise(config) : run(config));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(err.message);
  } else {
    console.error('Start failed:', err instanceof Error ? err.message : err);
  }
  process.exit(1);
});
