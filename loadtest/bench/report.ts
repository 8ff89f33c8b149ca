import { coreLine } from './cores';
import { cpuPerRequestUs, type PhaseStats } from './monitor';
import type { Check, Figure } from './results';

export interface BenchReport {
  meta: {
    startedAt: string;
    finishedAt: string;
    seconds: number;
    node: string;
    cpus: number;
    cpuModel: string;
    platform: string;
    namespace: string;
    layout: { gateways: number; workers: number; processes: string[] };
    command: string;
    /** Service variables taken from the caller's environment (tuning experiments). */
    serviceEnv: Record<string, string>;
    /** Each core's time for the same pinned work (ms), before and after the run; null where not measured. */
    coreMs?: { before: number[] | null; after: number[] | null };
  };
  options: Record<string, unknown>;
  figures: Figure[];
  checks: Check[];
  /** CPU use per party (cores) and peak RSS per process, per phase. */
  phases: PhaseStats[];
  rss: { label: string; service: boolean; peakMb: number }[];
  /** Phases during which other work on the machine took CPU (their figures understate the service). */
  contended: string[];
  details: Record<string, unknown>;
  invariantsOk: boolean;
  targetsOk: boolean;
  error?: string;
}

const fmt = (v: number | string | null | undefined, digits = 0): string => {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') return v;
  return digits ? v.toFixed(digits) : Math.round(v).toLocaleString('en-US');
};

const ms = (v: number | null) =>
  v === null ? '-' : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v).toString();

function table(header: string[], rows: string[][], right: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    '| ' +
    cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ') +
    ' |';
  const sep =
    '|' + widths.map((w, i) => (right.has(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|') + '|';
  return [line(header), sep, ...rows.map(line)].join('\n');
}

/** Phases during which processes outside the benchmark used a noticeable share of the CPU. */
export function contendedPhases(phases: PhaseStats[], threshold = 0.25): string[] {
  return phases
    .filter((p) => (p.cores['other (rest of the machine)'] ?? 0) > threshold)
    .map((p) => `${p.phase} (${p.cores['other (rest of the machine)']})`);
}

const passText = (p: boolean | null) => (p === null ? 'n/a' : p ? 'PASS' : 'FAIL');

/** The human-readable report: figures, where the CPU went, memory, invariants. */
export function renderReport(report: BenchReport): string {
  const out: string[] = [];
  const { meta } = report;
  out.push(
    `Benchmark ${meta.startedAt} - ${meta.cpus} x ${meta.cpuModel}, node ${meta.node}, ` +
      `layout ${meta.layout.gateways} gateway(s) + ${meta.layout.workers} worker(s) ` +
      `(${meta.layout.processes.join(', ')}), ${meta.seconds} s`,
  );
  if (Object.keys(meta.serviceEnv).length)
    out.push(`Service environment from the caller: ${JSON.stringify(meta.serviceEnv)}`);
  for (const [when, times] of Object.entries(meta.coreMs ?? {})) {
    const line = coreLine(times, `${when} the run`);
    if (line) out.push(line);
  }
  out.push('');
  out.push(
    table(
      ['Figure', 'Value', 'Baseline', 'Ratio', 'Target', 'Pass', 'p50 ms', 'p99 ms', 'Errors / non-2xx'],
      report.figures.map((f) => [
        f.figure,
        `${typeof f.value === 'number' ? fmt(f.value) : (f.value ?? '-')}${f.unit && typeof f.value === 'number' ? ` ${f.unit}` : ''}`,
        fmt(f.baseline),
        fmt(f.ratio, 2),
        f.target,
        passText(f.pass),
        ms(f.p50),
        ms(f.p99),
        f.errors,
      ]),
      new Set([1, 2, 3, 6, 7]),
    ),
  );
  const notes = report.figures.filter((f) => f.note);
  if (notes.length) {
    out.push('');
    for (const f of notes) out.push(`  ${f.id}: ${f.note}`);
  }

  if (report.phases.length) {
    const parties = [...new Set(report.phases.flatMap((p) => Object.keys(p.cores)))];
    out.push('', 'CPU per party during each phase (cores; 1.00 = one core busy):');
    out.push(
      table(
        ['Phase', 's', ...parties],
        report.phases.map((p) => [p.phase, fmt(p.seconds, 1), ...parties.map((k) => fmt(p.cores[k], 2))]),
        new Set(Array.from({ length: parties.length + 1 }, (_, i) => i + 1)),
      ),
    );
    const costly = report.phases.filter((p) => p.requests);
    const own = parties.filter((k) => !['machine total', 'other (rest of the machine)'].includes(k));
    if (costly.length) {
      out.push(
        '',
        'CPU time per request (µs; drain: per order, flash crowd: per user) - less sensitive to other load:',
      );
      out.push(
        table(
          ['Phase', 'requests', ...own],
          costly.map((p) => [p.phase, fmt(p.requests), ...own.map((k) => fmt(cpuPerRequestUs(p, k)))]),
          new Set(Array.from({ length: own.length + 1 }, (_, i) => i + 1)),
        ),
      );
    }
    const labels = [...new Set(report.phases.flatMap((p) => Object.keys(p.rssPeakMb)))];
    if (labels.length) {
      out.push('', 'Peak RSS per process during each phase (MB):');
      out.push(
        table(
          ['Phase', ...labels],
          report.phases.map((p) => [p.phase, ...labels.map((l) => fmt(p.rssPeakMb[l], 1))]),
          new Set(labels.map((_, i) => i + 1)),
        ),
      );
    }
  }

  const busy = report.contended;
  if (busy.length) {
    out.push(
      '',
      `Warning: other work on this machine used CPU during ${busy.join(', ')} ` +
        '(column "other"): those figures understate the service; rerun on a quiet machine.',
    );
  }

  out.push('', 'Invariants and validity checks:');
  for (const c of report.checks) {
    out.push(`  ${c.ok ? 'ok  ' : 'FAIL'} [${c.scenario}] ${c.name}${c.detail ? ` (${c.detail})` : ''}`);
  }
  if (report.error) out.push('', `Run aborted: ${report.error}`);
  out.push(
    '',
    `Invariants: ${report.invariantsOk ? 'all hold' : 'VIOLATED'}; ` +
      `performance targets: ${report.figures.some((f) => f.pass !== null) ? (report.targetsOk ? 'all met' : 'some missed') : 'not evaluated'}`,
  );
  return out.join('\n');
}
