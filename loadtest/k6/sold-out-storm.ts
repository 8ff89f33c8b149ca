/**
 * Sold-out storm: a constant RATE of purchase submits against a day that has no stock left. Every answer
 * must be 6002 (HTTP 409) and fast: the sold-out path is the one a real flash sale serves most.
 *
 * setup() sells the day out first: with ADMIN_TOKEN by setting its total to what is already sold, otherwise
 * by buying the remaining tickets with users BUYOUT_USER_OFFSET+1.. (at most BUYOUT_MAX_USERS of them).
 *
 *   k6 run -e RATE=500 -e DURATION=30s -e ADMIN_TOKEN=... loadtest/k6/sold-out-storm.ts
 */
import { Counter, Rate } from 'k6/metrics';
import type { Options } from 'k6/options';
import {
  CODES,
  REJECTION_DISPLAY_THRESHOLDS,
  abortRun,
  constantArrival,
  envDuration,
  envInt,
  fetchHashBook,
  fetchResultsBatch,
  findDay,
  finishRun,
  hashFor,
  isTerminal,
  iterationUser,
  listDays,
  loadConfig,
  prepareSale,
  runOptions,
  sleepMs,
  submitPurchase,
} from './lib.ts';
import type { K6Config, SaleSetup } from './lib.ts';

const rate = envInt('RATE', 500, 1);
const duration = envDuration('DURATION', '30s');
// Users 90001..92000 by default: they never get a ticket, so they can be reused across runs and wraps.
const config = loadConfig({ users: 2000, userOffset: 90000, hashBatch: 2000, pollBackoff: 1 });
const buyoutOffset = envInt('BUYOUT_USER_OFFSET', 95000, 0);
const buyoutMax = envInt('BUYOUT_MAX_USERS', 5000, 1);
if (buyoutOffset < config.userOffset + config.users && config.userOffset < buyoutOffset + buyoutMax) {
  throw new Error(
    'BUYOUT_USER_OFFSET/BUYOUT_MAX_USERS overlap USER_OFFSET/USERS: storm users must not own tickets',
  );
}

/** 1 for each submit answered 6002, 0 otherwise. */
const soldOutAnswers = new Rate('sold_out_answers');
/** Submits accepted although the day was sold out (each one is an oversell attempt). */
const acceptedOnSoldOut = new Counter('accepted_on_sold_out');

export const options: Options = {
  scenarios: {
    sold_out_storm: {
      executor: 'constant-arrival-rate',
      ...constantArrival(config, rate, duration, { preAllocated: Math.ceil(rate / 10), max: rate }),
    },
  },
  thresholds: {
    // The sold-out answer is pure admission work: it must meet the submit target with room to spare.
    'http_req_duration{name:submit}': ['p(99)<50'],
    sold_out_answers: ['rate>0.99'],
    accepted_on_sold_out: ['count==0'],
    'http_req_failed{name:submit}': ['rate<0.01'],
    checks: ['rate>0.99'],
    invariant_violations: ['count==0'],
    ...REJECTION_DISPLAY_THRESHOLDS,
  },
  // Buying out without ADMIN_TOKEN: waves of 100 buyers, each waiting for its results.
  ...runOptions(config, Math.ceil(buyoutMax / 100) * 5),
};

/** Buys the remaining tickets of `date` with fresh users, waiting for each wave to settle. */
function buyOut(cfg: K6Config, date: string): void {
  let nextUser = buyoutOffset + 1;
  const lastUser = buyoutOffset + buyoutMax;
  for (let day = findDay(listDays(cfg), date); day.remaining > 0; day = findDay(listDays(cfg), date)) {
    if (nextUser > lastUser) {
      abortRun(`could not sell out ${date}: ${day.remaining} tickets left after ${buyoutMax} buyers`);
    }
    const wave = Math.min(day.remaining, 100, lastUser - nextUser + 1);
    const book = fetchHashBook(cfg, date, nextUser, wave);
    let pending: string[] = [];
    for (let userId = nextUser; userId < nextUser + wave; userId++) {
      const hash = hashFor(cfg, book, userId);
      if (hash === null) continue;
      const submit = submitPurchase(cfg, userId, date, hash, { tags: { name: 'buyout-submit' } });
      if (submit.accepted !== null) pending.push(submit.accepted.messageId);
    }
    nextUser += wave;
    // Wait for the wave to be decided: failed purchases may hand their ticket back.
    const deadline = Date.now() + cfg.terminalTimeoutMs;
    while (pending.length > 0 && Date.now() < deadline) {
      sleepMs(250);
      const done = fetchResultsBatch(cfg, pending, { phase: 'buyout' })
        .all.filter(isTerminal)
        .map((result) => result.messageId);
      pending = pending.filter((id) => done.indexOf(id) < 0);
    }
  }
}

export function setup(): SaleSetup {
  const sale = prepareSale(config, { prefer: 'sold-out', stock: 0 });
  if (findDay(listDays(config), sale.date).remaining > 0) buyOut(config, sale.date);
  const day = findDay(listDays(config), sale.date);
  if (day.remaining !== 0 || !day.soldOut) {
    abortRun(`${sale.date} is not sold out (remaining=${day.remaining}, soldOut=${day.soldOut})`);
  }
  return sale;
}

export default function (sale: SaleSetup): void {
  const userId = iterationUser(config);
  const hash = hashFor(config, sale.book, userId);
  if (hash === null) return;
  const submit = submitPurchase(config, userId, sale.date, hash, { expectedCodes: [CODES.SOLD_OUT] });
  soldOutAnswers.add(submit.code === CODES.SOLD_OUT);
  if (submit.accepted !== null) acceptedOnSoldOut.add(1);
}

export function teardown(sale: SaleSetup): void {
  finishRun(config, sale);
}
