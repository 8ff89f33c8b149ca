/**
 * `npm run bench:worker`: the worker's own CPU per message, in one process, without the servers.
 * The real PurchaseWorker (machine, order writer, result recorder, acks) consumes a queue of fake
 * JetStream messages whose PostgreSQL and Redis calls answer on the next turn, so what is measured
 * is the worker's JavaScript and garbage collection alone. On a shared 2-core VM the full bench
 * cannot resolve a change of a few per cent in the worker; this can, run pinned to one core
 * (`taskset -c 1 npm run bench:worker`) and alternated with the build it is compared to.
 * `--heap FILE.heapprofile` also writes a sampling allocation profile (every allocation, collected or
 * not) and prints the bytes allocated per message.
 */
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type Redis from 'ioredis';
import type { JsMsg } from 'nats';
import type { Sequelize } from 'sequelize';
import { loadConfig } from '../../config';
import type { PlacedRow } from '../../lib/purchase/order-writer';
import type { PurchaseQueue } from '../../lib/purchase/queue';
import { PurchaseWorker } from '../../lib/purchase/worker';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '60000' },
    rounds: { type: 'string', default: '4' },
    heap: { type: 'string' },
  },
});
const perRound = Number(values.messages);
const rounds = Number(values.rounds);

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const encoder = new TextEncoder();
let queued = 0;
let seq = 0;
let acked = 0;

/** `place_orders` granting every request, one turn later. */
const db = {
  async query(_sql: string, { bind }: { bind: [string, string[], number[], number] }): Promise<PlacedRow[]> {
    await nextTurn();
    return bind[1].map((m, i) => ({
      n: i + 1,
      outcome: 'inserted',
      orderNo: `O-${m}`,
      ticketCode: `T-${m}`,
    }));
  },
};
/** RECORD writes every transition and SETTLE finds every reservation pending, one turn later. */
const redis = {
  async record(args: (string | number)[]): Promise<number[]> {
    await nextTurn();
    return new Array<number>(Number(args[0])).fill(1);
  },
  async settle(args: (string | number)[]): Promise<number[]> {
    await nextTurn();
    return new Array<number>((args.length - 3) / 5).fill(1);
  },
};

function message(): JsMsg {
  const s = ++seq;
  const body = { messageId: `m-${s}`, userId: s, date: '2026-12-01', queuedAt: new Date().toISOString() };
  const ignore = () => undefined;
  return {
    data: encoder.encode(JSON.stringify(body)),
    seq: s,
    subject: 'purchase',
    info: { deliveryCount: 1, timestampNanos: Date.now() * 1e6 },
    ack: () => void acked++,
    nak: ignore,
    working: ignore,
    term: ignore,
  } as unknown as JsMsg;
}

/** A pull consumer over `queued` messages: each fetch hands out up to its size, the next turn. */
const consumer = {
  fetch({ max_messages }: { max_messages: number }) {
    const n = Math.min(max_messages, queued);
    queued -= n;
    let stopped = false;
    return Promise.resolve({
      stop: () => void (stopped = true),
      async *[Symbol.asyncIterator]() {
        if (n === 0) return void (await new Promise((r) => setTimeout(r, 5)));
        await nextTurn();
        for (let i = 0; i < n && !stopped; i++) yield message();
      },
    });
  },
};
const queue = {
  js: { consumers: { get: () => Promise.resolve(consumer) } },
  names: { stream: 'purchase', consumer: 'workers' },
  deadLetter: () => Promise.resolve(),
};

async function main(): Promise<void> {
  const worker = new PurchaseWorker(
    loadConfig(process.env),
    db as unknown as Sequelize,
    redis as unknown as Redis,
    queue as unknown as PurchaseQueue,
    { publish: () => undefined, log: console },
  );
  await worker.start();
  const session = new Session();
  session.connect();
  if (values.heap)
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 32_768,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  for (let round = 1; round <= rounds; round++) {
    const target = acked + perRound;
    queued += perRound;
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    while (acked < target) await new Promise((r) => setTimeout(r, 2));
    const wallUs = Number(process.hrtime.bigint() - started) / 1e3;
    const { user, system } = process.cpuUsage(cpu);
    console.log(
      `round ${round}: ${((user + system) / perRound).toFixed(1)} µs of CPU per message ` +
        `(${(wallUs / perRound).toFixed(1)} µs wall)${round === 1 ? ', warm-up' : ''}`,
    );
  }
  if (values.heap) {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(values.heap, JSON.stringify(profile));
    type Node = (typeof profile)['head'];
    const bytes = (node: Node): number =>
      node.children.reduce((sum, child) => sum + bytes(child), node.selfSize);
    console.log(
      `allocated: ~${(bytes(profile.head) / (perRound * rounds) / 1024).toFixed(1)} KB per message; ` +
        `profile in ${values.heap} (open it in Chrome DevTools' Memory tab)`,
    );
  }
  session.disconnect();
  await worker.stop();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
