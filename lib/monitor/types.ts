/** The monitoring contract shared by the monitor service, its HTTP routes and the dashboard page. */

export type Severity = 'warning' | 'critical';

export interface Alert {
  /** Unique per raise: `<rule>-<epoch ms of the raising snapshot>`. */
  id: string;
  rule: string;
  severity: Severity;
  message: string;
  value: number | null;
  raisedAt: string;
  resolvedAt?: string;
}

export interface QueueSnapshot {
  backlog: number;
  waiting: number;
  inProgress: number;
  /** Worker instances (purchase-worker services) available in the registry. */
  consumers: number;
  deadLetters: number;
  redelivered: number;
}

export interface NodeStat {
  nodeID: string;
  services: string[];
  rssMb: number;
  heapUsedMb: number;
  /** Host CPU utilisation as Moleculer reports it for the node (heartbeat sample, else load average). */
  cpuPercent: number;
  uptimeSeconds: number;
}

export interface Dependencies {
  postgres: boolean;
  redis: boolean;
  nats: boolean;
}

export interface MonitorSnapshot {
  at: string;
  windowSeconds: number;
  submits: {
    perSec: number;
    /** Per second over the window. */
    byOutcome: Record<string, number>;
    /** Since the monitor started. */
    total: Record<string, number>;
    /** Raw counts over the window (what the ratio rules use). */
    window: Record<string, number>;
  };
  results: {
    successPerSec: number;
    failedPerSec: number;
    /** success / (success + failed) over the window; null without results. */
    successRatio: number | null;
    totalSuccess: number;
    totalFailed: number;
    /** FAILED for a system reason (dead-lettered, 5xxx), per second: sold out and duplicates excluded. */
    systemFailedPerSec: number;
    /** Transitions per second over the window, by status. */
    byStatus: Record<string, number>;
    /** Raw counts over the window. */
    window: { success: number; failed: number; systemFailed: number };
  };
  /** Submit-to-terminal latency in ms over the window. */
  latency: { p50: number | null; p95: number | null; p99: number | null };
  queue: QueueSnapshot | null;
  nodes: NodeStat[];
  dependencies: Dependencies;
  alerts: Alert[];
}

/** What a gateway reports every interval: submits by outcome since its previous report. */
export interface SubmitReport {
  nodeID: string;
  counts: Record<string, number>;
}
