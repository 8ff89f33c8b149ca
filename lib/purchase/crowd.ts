import { hostname } from 'node:os';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/** How often a gateway looks at its own load: a crowd's end reaches the workers within two checks. */
const CROWD_CHECK_MS = 50;
/** How long a worker believes a gateway's crowd report (a gateway that died mid-crowd stops counting). */
const REPORT_TTL_MS = 10 * CROWD_CHECK_MS;
/**
 * During a crowd a worker pauses this long before each fetch of WORKER_CROWD_RATE's share: each
 * fetch and its batch cost the worker, Redis and the database about as much as a few dozen orders,
 * so one a second costs far less per order than fetches of twenty every 100 ms did.
 */
export const CROWD_PAUSE_MS = 1000;
/** A gateway is in a crowd while its event loop is at least this busy and it admits purchases. */
const CROWD_MIN_UTILIZATION = 0.5;
/** The event loop's busyness is taken over this many checks: one quiet moment does not end a crowd. */
const UTILIZATION_CHECKS = 4;
/**
 * How long admissions must keep a gateway busy before its workers yield, so a burst of a moment does
 * not hold orders back. A flash sale's orders keep flowing by the runway rule below, not by this
 * grace: a quarter of a second of it still had the workers at full speed through the first
 * half-second of every crowd, which cost the gateway a third of that half-second.
 */
export const CROWD_GRACE_MS = 100;
/**
 * A crowd that will have admitted the stock left within this long, at its admission rate, is not
 * yielded to: it is answered from memory once the stock is gone, and the orders it made are what its
 * buyers are waiting for. On a slower machine a flash sale's stock takes longer than the grace.
 */
const CROWD_MIN_RUNWAY_MS = 3000;

/** What a gateway says of its load (the broadcast `purchase.crowd`). */
export interface CrowdReport {
  nodeID: string;
  host: string;
  crowd: boolean;
}

/**
 * A crowd is admissions arriving while the gateway's event loop is busy. The crowd after a sell-out
 * is answered from memory and admits nothing: the workers then have every cycle the gateway leaves,
 * so the orders of a flash crowd are decided while its refusals are still being answered.
 */
export const inCrowd = (utilization: number, admitted: number): boolean =>
  admitted > 0 && utilization >= CROWD_MIN_UTILIZATION;

/**
 * How long the stock left lasts at the rate of `admitted` admissions in `windowMs` (Infinity while
 * the stock is unknown); a crowd with a shorter runway than CROWD_MIN_RUNWAY_MS is not yielded to.
 */
export const runwayMs = (stockLeft: number, admitted: number, windowMs: number): number =>
  admitted > 0 ? (stockLeft * windowMs) / admitted : Infinity;

export const lasts = (runway: number): boolean => runway >= CROWD_MIN_RUNWAY_MS;

/**
 * A gateway's view of its own crowd, checked every CROWD_CHECK_MS: reported once it has lasted
 * CROWD_GRACE_MS, while it lasts (each report holds for REPORT_TTL_MS), and once when it ends, so
 * workers resume within a check.
 */
export class CrowdWatch {
  private admitted = 0;
  /** The most stock an admission of this check left on its day (-1: none told). */
  private stockLeft = -1;
  /** Admissions of the last UTILIZATION_CHECKS checks, oldest first. */
  private readonly counts: number[] = [];
  private crowd = false;
  /** Since when every check found admissions at a busy event loop (undefined: the last did not). */
  private busySince?: number;
  /** The event loop's counters at the last UTILIZATION_CHECKS checks, oldest first. */
  private readonly loops: EventLoopUtilization[] = [performance.eventLoopUtilization()];
  private timer?: NodeJS.Timeout;

  constructor(private readonly report: (crowd: boolean) => void) {}

  /** One purchase admitted, leaving `stockLeft` tickets on its day (NaN when unknown). */
  admission(stockLeft: number): void {
    this.admitted++;
    if (stockLeft > this.stockLeft) this.stockLeft = stockLeft;
  }

  start(): void {
    this.timer = setInterval(() => this.check(), CROWD_CHECK_MS);
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.crowd) this.report(false);
    this.crowd = false;
  }

  private check(): void {
    const loop = performance.eventLoopUtilization();
    // The admission rate over the window gives the stock's runway.
    this.counts.push(this.admitted);
    if (this.counts.length > UTILIZATION_CHECKS) this.counts.shift();
    const admitted = this.counts.reduce((sum, n) => sum + n, 0);
    const runway =
      this.stockLeft < 0 ? Infinity : runwayMs(this.stockLeft, admitted, this.counts.length * CROWD_CHECK_MS);
    // Admissions of this check only: when they stop (sold out, the crowd gone) the crowd ends at once.
    const busy =
      inCrowd(performance.eventLoopUtilization(loop, this.loops[0]).utilization, this.admitted) &&
      lasts(runway);
    this.loops.push(loop);
    if (this.loops.length > UTILIZATION_CHECKS) this.loops.shift();
    this.admitted = 0;
    this.stockLeft = -1;
    const at = Date.now();
    this.busySince = busy ? (this.busySince ?? at) : undefined;
    const crowd = this.busySince !== undefined && at - this.busySince >= CROWD_GRACE_MS;
    if (crowd || this.crowd) this.report(crowd);
    this.crowd = crowd;
  }
}

/**
 * A worker's view of the crowds on its own machine. Only gateways on the same host count: there the
 * orders and the admissions share the cores, while a worker on another machine takes nothing from
 * a gateway by working.
 */
export class CrowdNearby {
  private readonly until = new Map<string, number>();

  constructor(private readonly host: string = hostname()) {}

  onReport(report: CrowdReport, now = Date.now()): void {
    if (report.host !== this.host) return;
    if (report.crowd) this.until.set(report.nodeID, now + REPORT_TTL_MS);
    else this.until.delete(report.nodeID);
  }

  active(now = Date.now()): boolean {
    for (const [nodeID, until] of this.until) {
      if (until > now) return true;
      this.until.delete(nodeID);
    }
    return false;
  }
}
