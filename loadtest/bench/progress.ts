/** Progress on stderr: one line per step, and a status line rewritten in place on a terminal. */
export class Progress {
  private statusShown = false;
  private lastPlainStatus = 0;
  private readonly started = Date.now();

  constructor(
    private readonly enabled: boolean,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  private get tty(): boolean {
    return this.stream.isTTY === true;
  }

  private stamp(): string {
    const s = Math.round((Date.now() - this.started) / 1000);
    return `[bench ${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}]`;
  }

  /** A step worth a line of its own. */
  line(text: string): void {
    if (!this.enabled) return;
    this.clearStatus();
    this.stream.write(`${this.stamp()} ${text}\n`);
  }

  /** A transient status (rewritten on a terminal; at most every 5 s otherwise). */
  status(text: string): void {
    if (!this.enabled) return;
    if (this.tty) {
      const width = (this.stream.columns || 100) - 1;
      this.stream.write(`\r${`${this.stamp()}   ${text}`.slice(0, width).padEnd(width)}`);
      this.statusShown = true;
    } else if (Date.now() - this.lastPlainStatus >= 5000) {
      this.lastPlainStatus = Date.now();
      this.stream.write(`${this.stamp()}   ${text}\n`);
    }
  }

  clearStatus(): void {
    if (this.statusShown && this.tty) {
      this.stream.write(`\r${' '.repeat((this.stream.columns || 100) - 1)}\r`);
    }
    this.statusShown = false;
  }
}
