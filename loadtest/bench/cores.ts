import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';

/** A fixed piece of work (hashing), timed inside the child so that its start-up does not count. */
const WORK =
  "const { createHash } = require('node:crypto'); const t = process.hrtime.bigint();" +
  "for (let i = 0; i < 100000; i++) createHash('sha256').update('x' + i).digest();" +
  'process.stdout.write(String(Number(process.hrtime.bigint() - t) / 1e6));';

/** Cores whose times for the same work differ by more than this are reported as uneven. */
export const UNEVEN_CORES = 1.15;

/**
 * Each core's time (ms) for the same work, pinned to it with taskset, best of two rounds; null
 * without taskset. On some VMs one vCPU is markedly slower than another (its host core is busier):
 * a process the scheduler keeps there is slower for as long as that lasts (minutes, on the VMs seen),
 * so a ratio between two processes then says as much about the cores they landed on as about their
 * work. Taken before and after the run.
 */
export function coreTimes(rounds = 2): number[] | null {
  const best: number[] = new Array<number>(cpus().length).fill(Infinity);
  for (let round = 0; round < rounds; round++) {
    for (let core = 0; core < best.length; core++) {
      const run = spawnSync('taskset', ['-c', String(core), process.execPath, '-e', WORK], {
        encoding: 'utf8',
      });
      const ms = Number(run.stdout);
      if (run.status !== 0 || !Number.isFinite(ms)) return null;
      best[core] = Math.min(best[core], Math.round(ms));
    }
  }
  return best;
}

/** One line for the report: each core's time, and a warning when they are uneven. */
export function coreLine(times: number[] | null, when: string): string | null {
  if (!times?.length) return null;
  const spread = Math.max(...times) / Math.min(...times);
  const each = times.map((ms, core) => `cpu${core} ${ms} ms`).join(', ');
  return (
    `Core speed check ${when} (the same work pinned to each core): ${each}` +
    (spread > UNEVEN_CORES
      ? ` - the cores differ by ${spread.toFixed(2)} x: a process the scheduler keeps on the slower one ` +
        'costs more per request for its whole life, whatever it runs; read ratios between processes with that in mind.'
      : '.')
  );
}
