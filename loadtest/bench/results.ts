import type { LatencySummary, LoadResult } from './load';

/** One row of the report table. */
export interface Figure {
  id: string;
  figure: string;
  value: number | string | null;
  unit: string;
  baseline: number | null;
  /** value / baseline. */
  ratio: number | null;
  target: string;
  /** null: not evaluated (smoke run, or no baseline). */
  pass: boolean | null;
  p50: number | null;
  p99: number | null;
  /** Connection errors and timeouts / answers other than 2xx. */
  errors: string;
  note?: string;
}

/** An invariant or a validity condition of a measurement: a failed one fails the run. */
export interface Check {
  scenario: string;
  name: string;
  ok: boolean;
  detail: string;
}

export class Results {
  readonly figures: Figure[] = [];
  readonly checks: Check[] = [];
  readonly details: Record<string, unknown> = {};

  constructor(readonly smoke: boolean) {}

  figure(f: Omit<Figure, 'pass'> & { pass?: boolean | null }): Figure {
    const row: Figure = { ...f, pass: this.smoke ? null : (f.pass ?? null) };
    this.figures.push(row);
    return row;
  }

  check(scenario: string, name: string, ok: boolean, detail = ''): boolean {
    this.checks.push({ scenario, name, ok, detail });
    return ok;
  }

  /** The throughput row of a load scenario compared with its echo baseline. */
  throughput(
    id: string,
    label: string,
    load: LoadResult,
    baseline: LoadResult | undefined,
    minRatio: number,
    maxP99Ms?: number,
    note?: string,
  ): Figure {
    const ratio = baseline ? round(load.rps / Math.max(1, baseline.rps), 2) : null;
    let pass: boolean | null = ratio === null ? null : ratio >= minRatio;
    if (pass !== null && maxP99Ms !== undefined) pass = pass && (load.latencyMs.p99 ?? Infinity) <= maxP99Ms;
    return this.figure({
      id,
      figure: label,
      value: load.rps,
      unit: 'req/s',
      baseline: baseline?.rps ?? null,
      ratio,
      target: `>= ${minRatio} x echo${maxP99Ms !== undefined ? `, p99 <= ${maxP99Ms} ms` : ''}`,
      pass,
      ...latencyColumns(load.latencyMs),
      errors: errorsColumn(load),
      note,
    });
  }

  get invariantsOk(): boolean {
    return this.checks.every((c) => c.ok);
  }

  get targetsOk(): boolean {
    return this.figures.every((f) => f.pass !== false);
  }
}

export const round = (x: number, digits = 0) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export const latencyColumns = (l: LatencySummary) => ({ p50: l.p50, p99: l.p99 });

export function errorsColumn(load: LoadResult): string {
  const other = Object.entries(load.statusCodes)
    .filter(([code]) => !code.startsWith('2'))
    .map(([code, n]) => `${n}x${code}`);
  return `${load.errors} / ${load.non2xx}${other.length ? ` (${other.join(', ')})` : ''}`;
}
