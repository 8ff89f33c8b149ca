/**
 * Submit outcomes counted since the last report. The hot path only increments a number; the
 * purchase service drains it once per interval into a `metrics.submits` event for the monitor.
 */
export class SubmitCounter {
  private counts: Record<string, number> = {};
  private empty = true;

  add(outcome: string): void {
    this.counts[outcome] = (this.counts[outcome] ?? 0) + 1;
    this.empty = false;
  }

  /** The counts since the previous drain, or null when nothing was submitted. */
  drain(): Record<string, number> | null {
    if (this.empty) return null;
    const counts = this.counts;
    this.counts = {};
    this.empty = true;
    return counts;
  }
}
