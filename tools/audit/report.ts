/** The audit's report: its checks, the figures per day, and the report as text. */

export type CheckId =
  | 'stock-balance'
  | 'sold-equals-orders'
  | 'one-order-per-user-day'
  | 'orders-have-success'
  | 'success-has-order'
  | 'cache-converges'
  | 'queue-drained'
  | 'no-stuck-messages'
  | 'no-stranded-admissions'
  | 'dead-letters';

export type CheckStatus = 'pass' | 'warn' | 'fail';

export type Figures = Record<string, number | string | boolean | null>;

export interface AuditCheck {
  id: CheckId;
  title: string;
  status: CheckStatus;
  /** One line with the figures that matter. */
  summary: string;
  figures: Figures;
  /** The first offending items (at most `sampleLimit`), readable. */
  problems: string[];
}

export interface DayFigures {
  date: string;
  status: string;
  total: number;
  sold: number;
  remaining: number;
  validOrders: number;
  cancelledOrders: number;
  /** Admission stock in Redis (null: no key). */
  cacheStock: number | null;
  /** In-flight reservations in Redis (`day:<date>:pending`). */
  pending: number;
}

export interface AuditReport {
  ok: boolean;
  namespace: string;
  at: string;
  live: boolean;
  checks: AuditCheck[];
  /** Failed check ids, in report order. */
  failed: CheckId[];
  warnings: CheckId[];
  days: DayFigures[];
  totals: {
    days: number;
    total: number;
    sold: number;
    remaining: number;
    validOrders: number;
    cancelledOrders: number;
    /** Cached result records by status. */
    results: Record<string, number>;
    backlog: number | null;
    deadLetters: number | null;
  };
}

export interface AuditOptions {
  /**
   * The service is taking traffic: cache convergence and the queue backlog are only warnings
   * (they are meaningful when idle). Default false.
   */
  live?: boolean;
  /** A non-terminal result not updated for this long counts as stuck. Default 60000 ms. */
  stuckAfterMs?: number;
  /** Restrict the per-day checks to these dates (default: every day in the database). */
  dates?: string[];
  /** How many offending items each check lists. Default 10. */
  sampleLimit?: number;
  /** Clock, for tests. */
  now?: () => Date;
}

const TITLES: Record<CheckId, string> = {
  'stock-balance': 'sold <= total and sold + remaining = total (database)',
  'sold-equals-orders': 'sold = valid orders, per day',
  'one-order-per-user-day': 'at most one valid order per (user, day)',
  'orders-have-success': 'every order has a SUCCESS result where a result is cached',
  'success-has-order': 'no SUCCESS result without its order',
  'cache-converges': 'cache stock = database remaining - pending reservations; claims match orders',
  'queue-drained': 'queue backlog (pending + unacknowledged) is empty',
  'no-stuck-messages': 'no message stuck in a non-terminal status',
  'no-stranded-admissions': 'no admission left unpublished (outbox) with its ticket reserved',
  'dead-letters': 'dead-letter queue',
};

export class Check {
  readonly problems: string[] = [];
  problemCount = 0;
  constructor(
    readonly id: CheckId,
    private readonly limit: number,
  ) {}
  problem(text: string): void {
    this.problemCount++;
    if (this.problems.length < this.limit) this.problems.push(text);
  }
  done(status: CheckStatus, summary: string, figures: Figures): AuditCheck {
    const more = this.problemCount - this.problems.length;
    const problems = more > 0 ? [...this.problems, `… and ${more} more`] : this.problems;
    return { id: this.id, title: TITLES[this.id], status, summary, figures, problems };
  }
}

export const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

const MARK: Record<CheckStatus, string> = { pass: '✔', warn: '!', fail: '✘' };

/** The report as readable text: one line per check with its figures, problems indented below. */
export function formatReport(report: AuditReport): string {
  const lines = [
    `Audit of namespace "${report.namespace}" at ${report.at}${report.live ? ' (live)' : ''}`,
    '',
  ];
  for (const ch of report.checks) {
    lines.push(`${MARK[ch.status]} ${ch.id.padEnd(22)} ${ch.summary}`);
    for (const p of ch.problems) lines.push(`    - ${p}`);
  }
  lines.push('');
  if (report.days.length) {
    lines.push('  date        status    total   sold  remaining  orders  cancelled  cache  pending');
    for (const d of report.days) {
      lines.push(
        `  ${d.date}  ${d.status.padEnd(8)} ${String(d.total).padStart(6)} ${String(d.sold).padStart(6)} ` +
          `${String(d.remaining).padStart(10)} ${String(d.validOrders).padStart(7)} ${String(d.cancelledOrders).padStart(10)} ` +
          `${String(d.cacheStock ?? '-').padStart(6)} ${String(d.pending).padStart(8)}`,
      );
    }
    lines.push('');
  }
  const results = Object.entries(report.totals.results)
    .map(([s, n]) => `${s} ${n}`)
    .join(', ');
  lines.push(`Results cached: ${results || 'none'}`);
  lines.push(
    report.ok
      ? `OK: every check passed${report.warnings.length ? ` (warnings: ${report.warnings.join(', ')})` : ''}`
      : `FAILED: ${report.failed.join(', ')}`,
  );
  return lines.join('\n');
}
