/**
 * Polling mix: a constant RATE of purchases, each followed to its terminal state with one of three client
 * strategies picked at random by MIX weights:
 *   single - GET .../purchase/result, sleeping pollIntervalMs between polls, backing off (POLL_BACKOFF)
 *            while the status does not move and following the server's hint when it gives one;
 *   batch  - POST .../purchase/results with the message plus up to BATCH_SIZE-1 earlier ids of the same VU
 *            (a client dashboard refreshing its orders), same adaptive interval;
 *   long   - GET .../purchase/result?waitMs=LONG_POLL_WAIT_MS, re-issued until terminal.
 *
 *   k6 run -e RATE=50 -e DURATION=1m -e MIX=single=50,batch=30,long=20 -e ADMIN_TOKEN=... \
 *     loadtest/k6/polling-mix.ts
 */
import type { Options } from 'k6/options';
import {
  REJECTION_DISPLAY_THRESHOLDS,
  constantArrival,
  envInt,
  envString,
  finishRun,
  iterationUser,
  prepareSale,
  purchaseFlow,
  runOptions,
  steadyRun,
} from './lib.ts';
import type { PollMode, SaleSetup } from './lib.ts';

// Enough tickets (with ADMIN_TOKEN) for every purchase to be accepted, so that every iteration polls.
const { rate, duration, config, stock } = steadyRun({
  rate: 50,
  duration: '1m',
  userOffset: 20000,
  hashBatch: 5000,
  pollBackoff: 1.5,
});
const batchSize = envInt('BATCH_SIZE', 20, 1, 100);

const MODE_OF_NAME: Readonly<Record<string, PollMode>> = { single: 'interval', batch: 'batch', long: 'long' };

/** Parses MIX ("single=50,batch=30,long=20") into cumulative weights. */
function parseMix(spec: string): { mode: PollMode; upTo: number }[] {
  const table: { mode: PollMode; upTo: number }[] = [];
  let sum = 0;
  for (const part of spec.split(',')) {
    const match = /^\s*(\w+)\s*=\s*(\d+(?:\.\d+)?)\s*$/.exec(part);
    const mode = match === null ? undefined : MODE_OF_NAME[match[1]];
    if (match === null || mode === undefined) {
      throw new Error(`MIX must look like single=50,batch=30,long=20; bad part "${part}"`);
    }
    sum += parseFloat(match[2]);
    table.push({ mode, upTo: sum });
  }
  if (sum <= 0) throw new Error('MIX weights must add up to more than 0');
  return table.map((entry) => ({ mode: entry.mode, upTo: entry.upTo / sum }));
}

const mix = parseMix(envString('MIX', 'single=50,batch=30,long=20'));

/** messageIds this VU submitted before, newest first: the companions of a batch query. */
const recentIds: string[] = [];

export const options: Options = {
  scenarios: {
    polling_mix: {
      executor: 'constant-arrival-rate',
      ...constantArrival(config, rate, duration, { preAllocated: rate * 2, max: rate * 10 }),
    },
  },
  thresholds: {
    'http_req_duration{name:submit}': ['p(99)<50'],
    // Result reads are served from cache: as cheap as admission. A batch reads up to BATCH_SIZE results.
    'http_req_duration{name:result}': ['p(99)<50'],
    'http_req_duration{name:results-batch}': ['p(99)<100'],
    // Whatever the client strategy, the purchase is decided within the product target.
    'purchase_terminal_latency{mode:interval}': ['p(99)<2000'],
    'purchase_terminal_latency{mode:batch}': ['p(99)<2000'],
    'purchase_terminal_latency{mode:long}': ['p(99)<2000'],
    // Display-only: result requests per purchase for each strategy.
    'result_polls{mode:interval}': ['avg>=0'],
    'result_polls{mode:batch}': ['avg>=0'],
    'result_polls{mode:long}': ['avg>=0'],
    'http_req_failed{name:submit}': ['rate<0.01'],
    'http_req_failed{name:result}': ['rate<0.01'],
    'http_req_failed{name:results-batch}': ['rate<0.01'],
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
  const draw = Math.random();
  const mode = (mix.find((entry) => draw < entry.upTo) ?? mix[mix.length - 1]).mode;
  const outcome = purchaseFlow(config, sale, iterationUser(config), {
    mode,
    companions: recentIds.slice(0, batchSize - 1),
  });
  const accepted = outcome.submit?.accepted;
  if (accepted) {
    recentIds.unshift(accepted.messageId);
    if (recentIds.length > 99) recentIds.length = 99;
  }
}

export function teardown(sale: SaleSetup): void {
  finishRun(config, sale);
}
