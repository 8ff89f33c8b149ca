import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * Samples the processes of a benchmark from /proc (Linux): the peak RSS of each service process
 * every 200 ms, and the CPU time spent by each party (load generator, service processes, Redis,
 * NATS, PostgreSQL, everything else) per phase, to say where the time of a scenario went.
 * Elsewhere (no /proc) it records nothing and says so.
 */

let clockTicks = 100;
try {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // keep the usual 100
}

export const procAvailable = (() => {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
})();

interface Stat {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime, seconds. */
  cpu: number;
  /** cutime + cstime: reaped children, seconds. */
  childCpu: number;
}

export function readStat(pid: number): Stat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < 0) return null;
  const comm = text.slice(open + 1, close);
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 (state): field n is fields[n - 3].
  const at = (n: number) => Number(fields[n - 3]);
  return {
    pid,
    ppid: at(4),
    comm,
    cpu: (at(14) + at(15)) / clockTicks,
    childCpu: (at(16) + at(17)) / clockTicks,
  };
}

/** Resident set size in bytes (VmRSS), or null when the process is gone. */
export function readRss(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function allStats(): Stat[] {
  const stats: Stat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat) stats.push(stat);
  }
  return stats;
}

/** The live child processes of `pid`. */
export function childrenOf(pid: number): number[] {
  return allStats()
    .filter((s) => s.ppid === pid)
    .map((s) => s.pid);
}

/** The SERVICES a service process was started with ('' when unknown). */
export function serviceList(pid: number): string {
  try {
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    return environ.find((e) => e.startsWith('SERVICES='))?.slice('SERVICES='.length) ?? '';
  } catch {
    return '';
  }
}

/** Machine-wide busy and total CPU seconds since boot (all cores). */
function machineCpu(): { busy: number; irq: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    // user nice system idle iowait irq softirq steal
    const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = v.reduce((a, b) => a + b, 0) / clockTicks;
    const idle = (v[3] + v[4]) / clockTicks;
    return { busy: total - idle, irq: (v[5] + v[6]) / clockTicks };
  } catch {
    return { busy: 0, irq: 0 };
  }
}

/** Servers the service depends on, found by process name. */
const SERVER_GROUPS: Record<string, string[]> = {
  redis: ['redis-server'],
  nats: ['nats-server'],
  postgres: ['postgres', 'postmaster'],
};

/**
 * CPU seconds of a group of processes found by name: the live ones, plus what their root processes
 * reaped (a PostgreSQL backend that exited during the phase is counted through its postmaster).
 */
function groupCpu(stats: Stat[], names: string[]): number {
  const members = stats.filter((s) => names.includes(s.comm));
  const pids = new Set(members.map((s) => s.pid));
  let sum = 0;
  for (const s of members) sum += s.cpu + (pids.has(s.ppid) ? 0 : s.childCpu);
  return sum;
}

export interface Watched {
  label: string;
  pid: number;
  /** Counted in the RSS target (service processes, not the echo server). */
  service: boolean;
}

interface Snapshot {
  at: number;
  cpu: Record<string, number>;
  machine: { busy: number; irq: number };
}

export interface PhaseStats {
  phase: string;
  seconds: number;
  /** Average cores used per party over the phase (1.0 = one core fully busy). */
  cores: Record<string, number>;
  /** Peak RSS of each watched process during the phase, MB. */
  rssPeakMb: Record<string, number>;
  /** Requests (or orders) handled during the phase, for the CPU cost per request. */
  requests?: number;
}

/** One party's CPU time per request of the phase (µs); null when it used none or nothing was counted. */
export function cpuPerRequestUs(phase: PhaseStats | undefined, party: string): number | null {
  const cores = phase?.cores[party];
  return cores && phase.requests ? (cores * phase.seconds * 1e6) / phase.requests : null;
}

const MB = 1024 * 1024;
const round2 = (x: number) => Math.round(x * 100) / 100;

export class Monitor {
  private readonly watched: Watched[] = [];
  private readonly peak = new Map<string, number>();
  private phasePeak = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private current?: { phase: string; snapshot: Snapshot };
  readonly phases: PhaseStats[] = [];

  watch(target: Watched): void {
    this.watched.push(target);
  }

  start(): void {
    if (!procAvailable || this.timer) return;
    this.timer = setInterval(() => this.sampleRss(), 200);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private sampleRss(): void {
    for (const w of this.watched) {
      const rss = readRss(w.pid);
      if (rss === null) continue;
      if (rss > (this.peak.get(w.label) ?? 0)) this.peak.set(w.label, rss);
      if (rss > (this.phasePeak.get(w.label) ?? 0)) this.phasePeak.set(w.label, rss);
    }
  }

  private snapshot(): Snapshot {
    const cpu: Record<string, number> = {};
    const usage = process.cpuUsage();
    cpu['load generator'] = (usage.user + usage.system) / 1e6;
    if (procAvailable) {
      const stats = allStats();
      const byPid = new Map(stats.map((s) => [s.pid, s]));
      for (const w of this.watched) cpu[w.label] = byPid.get(w.pid)?.cpu ?? 0;
      for (const [label, names] of Object.entries(SERVER_GROUPS)) cpu[label] = groupCpu(stats, names);
    }
    return { at: Date.now(), cpu, machine: machineCpu() };
  }

  /** Starts a measured phase (ends the current one). */
  begin(phase: string): void {
    if (this.current) this.end();
    this.phasePeak = new Map();
    this.sampleRss();
    this.current = { phase, snapshot: this.snapshot() };
  }

  end(): PhaseStats | undefined {
    if (!this.current) return undefined;
    this.sampleRss();
    const { phase, snapshot: from } = this.current;
    this.current = undefined;
    const to = this.snapshot();
    const seconds = Math.max(0.001, (to.at - from.at) / 1000);
    const cores: Record<string, number> = {};
    let known = 0;
    for (const [label, value] of Object.entries(to.cpu)) {
      // A process that ended during the phase reads 0 at the end: count nothing rather than a negative.
      const used = Math.max(0, value - (from.cpu[label] ?? 0));
      cores[label] = round2(used / seconds);
      known += used;
    }
    if (procAvailable) {
      // Interrupts (loopback networking) belong to no process; the rest is other work on the machine.
      const busy = to.machine.busy - from.machine.busy;
      const irq = to.machine.irq - from.machine.irq;
      cores['kernel irq'] = round2(irq / seconds);
      cores['other (rest of the machine)'] = round2(Math.max(0, busy - known - irq) / seconds);
      cores['machine total'] = round2(busy / seconds);
    }
    const rssPeakMb: Record<string, number> = {};
    for (const [label, rss] of this.phasePeak) rssPeakMb[label] = Math.round((rss / MB) * 10) / 10;
    const stats: PhaseStats = { phase, seconds: round2(seconds), cores, rssPeakMb };
    this.phases.push(stats);
    return stats;
  }

  /** Peak RSS per watched process over the whole run, MB. */
  peaks(): { label: string; service: boolean; peakMb: number }[] {
    return this.watched.map((w) => ({
      label: w.label,
      service: w.service,
      peakMb: Math.round(((this.peak.get(w.label) ?? 0) / MB) * 10) / 10,
    }));
  }
}
