import { hostname } from 'node:os';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/** How often a gateway looks at its own load: a crowd's end reaches the workers within two checks. */
const CROWD_CHECK_MS = 50;
/** How long a worker believes a gateway's crowd report (a gateway that died mid-crowd stops counting). */
const REPORT_TTL_MS = 10 * CROWD_CHECK_MS;
/**
 * During a crowd a worker pauses this long before each fetch of WORKER_CROWD_RATE's share: few
 * fetches of a hundred cost the worker and the database far less per order than many of twenty.
 */
export const CROWD_PAUSE_MS = 500;
/** A gateway is in a crowd while its event loop is at least this busy and it admits purchases. */
const CROWD_MIN_UTILIZATION = 0.5;
/** The event loop's busyness is taken over this many checks: one quiet moment does not end a crowd. */
const UTILIZATION_CHECKS = 4;
/**
 * How long admissions must keep a gateway busy before its workers yield: a flash sale's stock is
 * admitted in about a second, and its buyers learn their results within the 2 s of SPEC §6 only if
 * the orders are made meanwhile; a crowd that lasts longer gets the cores for its answers.
 */
const CROWD_GRACE_MS = 1000;

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
 * A gateway's view of its own crowd, checked every CROWD_CHECK_MS: reported once it has lasted
 * CROWD_GRACE_MS, while it lasts (each report holds for REPORT_TTL_MS), and once when it ends, so
 * workers resume within a check.
 */
export class CrowdWatch {
  private admitted = 0;
  private crowd = false;
  /** Since when every check found admissions at a busy event loop (undefined: the last did not). */
  private busySince?: number;
  /** The event loop's counters at the last UTILIZATION_CHECKS checks, oldest first. */
  private readonly loops: EventLoopUtilization[] = [performance.eventLoopUtilization()];
  private timer?: NodeJS.Timeout;

  constructor(private readonly report: (crowd: boolean) => void) {}

  admission(): void {
    this.admitted++;
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
    // Admissions of this check only: when they stop (sold out, the crowd gone) the crowd ends at once.
    const busy = inCrowd(performance.eventLoopUtilization(loop, this.loops[0]).utilization, this.admitted);
    this.loops.push(loop);
    if (this.loops.length > UTILIZATION_CHECKS) this.loops.shift();
    this.admitted = 0;
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
