/**
 * Flash crowd: arrivals ramp from 0 to RATE per second, hold for DURATION, ramp down. Every iteration is a
 * different user who submits one purchase for the sale day and follows it to SUCCESS/FAILED, polling every
 * `pollIntervalMs` (or long-polling with LONG_POLL=1).
 *
 *   k6 run -e RATE=300 -e DURATION=10s -e STOCK=100 -e ADMIN_TOKEN=... loadtest/k6/flash-crowd.ts
 */
import type { Options } from 'k6/options';
import {
  REJECTION_DISPLAY_THRESHOLDS,
  durationSeconds,
  envDuration,
  envFlag,
  envInt,
  finishRun,
  gracefulStop,
  iterationUser,
  loadConfig,
  prepareSale,
  purchaseFlow,
  runOptions,
} from './lib.ts';
import type { SaleSetup } from './lib.ts';

const rate = envInt('RATE', 300, 1);
const rampUp = envDuration('RAMP_UP', '5s');
const hold = envDuration('DURATION', '10s');
const rampDown = envDuration('RAMP_DOWN', '5s');
/** Iterations the arrival plan starts, so that by default every iteration gets its own user. */
const plannedArrivals = Math.ceil(
  rate * (durationSeconds(rampUp) / 2 + durationSeconds(hold) + durationSeconds(rampDown) / 2),
);

const config = loadConfig({ users: plannedArrivals, userOffset: 0, hashBatch: 20000, pollBackoff: 1 });
const stock = envInt('STOCK', 100, 0);
const longPoll = envFlag('LONG_POLL');

export const options: Options = {
  scenarios: {
    flash_crowd: {
      executor: 'ramping-arrival-rate',
      startRate: 0,
      timeUnit: '1s',
      preAllocatedVUs: envInt('PRE_VUS', rate, 1),
      maxVUs: envInt('MAX_VUS', rate * 5, 1),
      stages: [
        { duration: rampUp, target: rate },
        { duration: hold, target: rate },
        { duration: rampDown, target: 0 },
      ],
      gracefulStop: gracefulStop(config),
    },
  },
  thresholds: {
    // Product targets: admission answers in < 50 ms, a purchase is decided in < 2 s (p99).
    'http_req_duration{name:submit}': ['p(99)<50'],
    purchase_terminal_latency: ['p(99)<2000'],
    // Transport/server errors only: 409/429 business rejections are declared expected on submit.
    'http_req_failed{name:submit}': ['rate<0.01'],
    'http_req_failed{name:result}': ['rate<0.01'],
    'http_req_failed{name:result-long}': ['rate<0.01'],
    checks: ['rate>0.99'],
    invariant_violations: ['count==0'],
    ...REJECTION_DISPLAY_THRESHOLDS,
  },
  ...runOptions(config),
};

export function setup(): SaleSetup {
  return prepareSale(config, { prefer: 'available', stock });
}

export default function (sale: SaleSetup): void {
  purchaseFlow(config, sale, iterationUser(config), { mode: longPoll ? 'long' : 'interval' });
}

export function teardown(sale: SaleSetup): void {
  finishRun(config, sale);
}
