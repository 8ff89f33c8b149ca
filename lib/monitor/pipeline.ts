import {
  asyncScheduler,
  interval,
  map,
  merge,
  mergeMap,
  reduce,
  scan,
  startWith,
  window,
  withLatestFrom,
  type Observable,
  type SchedulerLike,
} from 'rxjs';
import type { ResultRecord } from '../purchase/results';
import type { Dependencies, MonitorSnapshot, NodeStat, QueueSnapshot, SubmitReport } from './types';

export interface MonitorInputs {
  /** `purchase.results` batches from the workers. */
  results$: Observable<ResultRecord[]>;
  /** `metrics.submits` reports from the gateways. */
  submits$: Observable<SubmitReport>;
  queue$: Observable<QueueSnapshot | null>;
  nodes$: Observable<NodeStat[]>;
  /** No snapshot is produced before the first dependency check answers. */
  dependencies$: Observable<Dependencies>;
}

export interface PipelineOptions {
  intervalMs: number;
  windowMs: number;
  scheduler?: SchedulerLike;
}

type Counts = Record<string, number>;

interface Bucket {
  submits: Counts;
  byStatus: Counts;
  success: number;
  failed: number;
  systemFailed: number;
  latencies: number[];
  /** Latencies offered to the reservoir so far. */
  seen: number;
}

interface WindowState {
  buckets: Bucket[];
  totals: { submits: Counts; success: number; failed: number };
}

type Sample = { results: ResultRecord[] } | { submits: Counts };

// Bounds the memory and the sort of a flash crowd: percentiles come from a uniform sample per interval.
const MAX_LATENCIES_PER_BUCKET = 5000;

/** FAILED for a reason other than the sale's own rules (sold out, already bought, bad request). */
export function isSystemFailure(record: ResultRecord): boolean {
  if (record.status !== 'FAILED') return false;
  const code = record.errorCode;
  return code === undefined || Number.isNaN(code) || code < 1000 || (code >= 5000 && code < 6000);
}

function add(into: Counts, from: Counts): void {
  for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n;
}

const emptyBucket = (): Bucket => ({
  submits: {},
  byStatus: {},
  success: 0,
  failed: 0,
  systemFailed: 0,
  latencies: [],
  seen: 0,
});

/**
 * Counts a sample into its interval's bucket as it arrives. The records of a batch are let go at
 * once: held until the interval's end (up to a second), the records of a crowd's orders survived
 * the gateway's young-generation collections and filled its old generation.
 */
function addSample(bucket: Bucket, sample: Sample): Bucket {
  if ('submits' in sample) {
    add(bucket.submits, sample.submits);
    return bucket;
  }
  for (const r of sample.results) {
    bucket.byStatus[r.status] = (bucket.byStatus[r.status] ?? 0) + 1;
    if (r.status !== 'SUCCESS' && r.status !== 'FAILED') continue;
    if (r.status === 'SUCCESS') bucket.success++;
    else {
      bucket.failed++;
      if (isSystemFailure(r)) bucket.systemFailed++;
    }
    const ms = Date.parse(r.completedAt ?? r.updatedAt) - Date.parse(r.queuedAt);
    if (!Number.isFinite(ms) || ms < 0) continue;
    // Reservoir sampling keeps every latency equally likely to be in the bucket.
    bucket.seen++;
    if (bucket.latencies.length < MAX_LATENCIES_PER_BUCKET) bucket.latencies.push(ms);
    else {
      const slot = Math.floor(Math.random() * bucket.seen);
      if (slot < MAX_LATENCIES_PER_BUCKET) bucket.latencies[slot] = ms;
    }
  }
  return bucket;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil(p * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

const round2 = (n: number) => Math.round(n * 100) / 100;

function buildSnapshot(
  state: WindowState,
  opts: { intervalMs: number; size: number; at: number },
  queue: QueueSnapshot | null,
  nodes: NodeStat[],
  dependencies: Dependencies,
): MonitorSnapshot {
  const submits: Counts = {};
  const byStatus: Counts = {};
  let success = 0;
  let failed = 0;
  let systemFailed = 0;
  const latencies: number[] = [];
  for (const b of state.buckets) {
    add(submits, b.submits);
    add(byStatus, b.byStatus);
    success += b.success;
    failed += b.failed;
    systemFailed += b.systemFailed;
    for (const ms of b.latencies) latencies.push(ms);
  }
  latencies.sort((a, b) => a - b);
  // Rates over the part of the window seen so far, so the first seconds are not under-reported.
  const seconds = Math.max(1, state.buckets.length) * (opts.intervalMs / 1000);
  const rate = (n: number) => round2(n / seconds);
  const perSec = (counts: Counts) =>
    Object.fromEntries(Object.entries(counts).map(([key, n]) => [key, rate(n)]));
  const submitted = Object.values(submits).reduce((a, b) => a + b, 0);
  return {
    at: new Date(opts.at).toISOString(),
    windowSeconds: (opts.size * opts.intervalMs) / 1000,
    submits: {
      perSec: rate(submitted),
      byOutcome: perSec(submits),
      total: { ...state.totals.submits },
      window: submits,
    },
    results: {
      successPerSec: rate(success),
      failedPerSec: rate(failed),
      successRatio: success + failed > 0 ? round2(success / (success + failed)) : null,
      totalSuccess: state.totals.success,
      totalFailed: state.totals.failed,
      systemFailedPerSec: rate(systemFailed),
      byStatus: perSec(byStatus),
      window: { success, failed, systemFailed },
    },
    latency: {
      p50: percentile(latencies, 0.5),
      p95: percentile(latencies, 0.95),
      p99: percentile(latencies, 0.99),
    },
    queue,
    nodes,
    dependencies,
    alerts: [],
  };
}

/**
 * The metrics pipeline: events counted per interval into buckets (a `window` per tick), a
 * sliding window of the last `windowMs` of buckets (`scan`), joined with the latest queue, node
 * and dependency readings into one snapshot per tick (alerts are attached downstream).
 */
export function monitorSnapshots(inputs: MonitorInputs, opts: PipelineOptions): Observable<MonitorSnapshot> {
  const scheduler = opts.scheduler ?? asyncScheduler;
  const size = Math.max(1, Math.round(opts.windowMs / opts.intervalMs));
  const samples$: Observable<Sample> = merge(
    inputs.results$.pipe(map((results) => ({ results }))),
    inputs.submits$.pipe(map((report) => ({ submits: report.counts }))),
  );
  const initial: WindowState = { buckets: [], totals: { submits: {}, success: 0, failed: 0 } };
  return samples$.pipe(
    window(interval(opts.intervalMs, scheduler)),
    // A new bucket for each interval (its seed), emitted as the interval closes.
    mergeMap((samples) => samples.pipe(reduce(addSample, emptyBucket()))),
    scan((state: WindowState, bucket: Bucket): WindowState => {
      const submits = { ...state.totals.submits };
      add(submits, bucket.submits);
      return {
        buckets: [...state.buckets, bucket].slice(-size),
        totals: {
          submits,
          success: state.totals.success + bucket.success,
          failed: state.totals.failed + bucket.failed,
        },
      };
    }, initial),
    withLatestFrom(
      inputs.queue$.pipe(startWith(null)),
      inputs.nodes$.pipe(startWith([] as NodeStat[])),
      inputs.dependencies$,
    ),
    map(([state, queue, nodes, deps]) =>
      buildSnapshot(state, { intervalMs: opts.intervalMs, size, at: scheduler.now() }, queue, nodes, deps),
    ),
  );
}
