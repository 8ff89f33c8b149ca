import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { ConfigError, loadConfig, type Config } from '../config';
import { createBroker } from './broker';
import { unreachableServers } from './preflight';

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

async function main(): Promise<void> {
  const config = loadConfig(process.env, (msg) => console.warn(`[config] ${msg}`));
  yieldToGateways(config);
  const missing = await unreachableServers(config);
  if (missing.length) {
    for (const line of missing) console.error(line);
    process.exit(1);
  }
  const broker = createBroker(config);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    broker.logger.info(`${signal} received, stopping gracefully`);
    await broker.stop().catch((err) => broker.logger.error('Stop failed', err));
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  await broker.start();
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(err.message);
  } else {
    console.error('Start failed:', err instanceof Error ? err.message : err);
  }
  process.exit(1);
});
