/**
 * Soak: a moderate constant RATE of purchases (submit, then poll every pollIntervalMs) for DURATION
 * (30 minutes by default). Leaks cannot be seen from outside directly, so this looks for their symptom:
 * latency that creeps up as the run goes on. Every sample is tagged with the run phase
 * (warmup < 5 % < early < 35 % < middle < 65 % < late), the same latency targets apply to the early and the
 * late phase, and `submit_latency_drift` compares each late submit with the same VU's early median.
 *
 *   k6 run -e RATE=20 -e DURATION=30m -e ADMIN_TOKEN=... loadtest/k6/soak.ts
 */
import exec from 'k6/execution';
import { Trend } from 'k6/metrics';
import type { Options } from 'k6/options';
import {
  REJECTION_DISPLAY_THRESHOLDS,
  constantArrival,
  envInt,
  finishRun,
  iterationUser,
  prepareSale,
  purchaseFlow,
  runOptions,
  steadyRun,
} from './lib.ts';
import type { SaleSetup } from './lib.ts';

// With ADMIN_TOKEN, enough tickets for every purchase: otherwise the soak soon only measures "sold out".
const { rate, duration, config, stock } = steadyRun({
  rate: 20,
  duration: '30m',
  userOffset: 40000,
  hashBatch: 5000,
  pollBackoff: 1,
});

/** Late-phase submit duration divided by the VU's early-phase median (both floored at DRIFT_FLOOR_MS). */
const submitLatencyDrift = new Trend('submit_latency_drift');
const driftFloorMs = envInt('DRIFT_FLOOR_MS', 5, 1);
const MAX_EARLY_SAMPLES = 500;
const earlySubmitMs: number[] = [];
let earlyMedianMs: number | null = null;

export const options: Options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      ...constantArrival(config, rate, duration, { preAllocated: rate * 2, max: rate * 10 }),
    },
  },
  thresholds: {
    // Whole run; aborts early once it is clearly broken rather than after 30 minutes.
    'http_req_duration{name:submit}': [{ threshold: 'p(99)<50', abortOnFail: true, delayAbortEval: '2m' }],
    // Flat latency: the same targets must hold at the start and at the end of the run.
    'http_req_duration{name:submit,phase:early}': ['p(99)<50'],
    'http_req_duration{name:submit,phase:late}': ['p(99)<50'],
    'http_req_duration{name:result,phase:early}': ['p(99)<50'],
    'http_req_duration{name:result,phase:late}': ['p(99)<50'],
    'purchase_terminal_latency{phase:early}': ['p(99)<2000'],
    'purchase_terminal_latency{phase:late}': ['p(99)<2000'],
    // Late submits typically no more than 1.5x the early median of the same VU.
    submit_latency_drift: ['med<1.5'],
    'http_req_failed{name:submit}': ['rate<0.01'],
    'http_req_failed{name:result}': ['rate<0.01'],
    'http_req_failed{name:verify-hash}': ['rate<0.01'],
    checks: ['rate>0.99'],
    invariant_violations: ['count==0'],
    ...REJECTION_DISPLAY_THRESHOLDS,
  },
  ...runOptions(config),
};

function phaseOf(progress: number): string {
  if (progress < 0.05) return 'warmup';
  if (progress < 0.35) return 'early';
  if (progress < 0.65) return 'middle';
  return 'late';
}

function median(values: readonly number[]): number {
  const sorted = values.slice().sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function trackDrift(phase: string, submitMs: number): void {
  if (phase === 'early') {
    if (earlySubmitMs.length < MAX_EARLY_SAMPLES) earlySubmitMs.push(submitMs);
    return;
  }
  if (phase !== 'late') return;
  // VUs that started after the early phase have no baseline of their own and do not contribute.
  if (earlyMedianMs === null && earlySubmitMs.length >= 20) earlyMedianMs = median(earlySubmitMs);
  if (earlyMedianMs === null) return;
  submitLatencyDrift.add(Math.max(submitMs, driftFloorMs) / Math.max(earlyMedianMs, driftFloorMs));
}

export function setup(): SaleSetup {
  return prepareSale(config, { prefer: 'available', stock });
}

export default function (sale: SaleSetup): void {
  const phase = phaseOf(exec.scenario.progress);
  // VU-level tag: every sample of this iteration (HTTP and custom metrics) carries the phase.
  exec.vu.metrics.tags.phase = phase;
  const outcome = purchaseFlow(config, sale, iterationUser(config), { mode: 'interval' });
  if (outcome.submit !== null && outcome.submit.res.status !== 0) {
    trackDrift(phase, outcome.submit.res.timings.duration);
  }
}

export function teardown(sale: SaleSetup): void {
  finishRun(config, sale);
}
