import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CONFIG_DEFAULTS } from '../../config';

/** The scenarios of SPEC §6, plus the echo ceiling they are compared with. */
export const SCENARIOS = ['echo', 'floor', 'submit', 'default', 'storm', 'poll', 'drain', 'flash'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** The bench's default layout, measured best on 2 cores (and what `npm start` runs). */
export const BEST_LAYOUT = { gateways: 1, workers: 2 } as const;

export interface BenchOptions {
  /** Seconds of measured load per throughput scenario (echo, submit, storm, poll). */
  duration: number;
  /** Seconds of unmeasured load before each throughput scenario (JIT, connection pools). */
  warmup: number;
  /** Concurrent HTTP connections of the load generator. */
  connections: number;
  /** Multiplies the flash crowd (users and stock) and the drain burst. */
  scale: number;
  /** Gateway processes (api + tickets + purchase). */
  gateways: number;
  /** Worker processes (purchase-worker); 0 runs the worker inside every gateway process. */
  workers: number;
  /** Where to write the JSON report (null: not written). */
  out: string | null;
  only: Scenario[];
  /** Tiny numbers; only the invariants decide the exit code. */
  smoke: boolean;
  /** Also fail (exit code 1) when a performance target is missed. */
  strict: boolean;
  /** Run the service from the TypeScript sources through tsx instead of the production build in dist/. */
  fromSource: boolean;
  /** Flash crowd size and stock (already scaled). */
  flashUsers: number;
  flashStock: number;
  /** Messages in the order-drain burst (already scaled). */
  drainMessages: number;
  /** WORKER_NICE of the worker processes (0-19); null: the service's default. */
  workerNice: number | null;
  /** Extra node flags for the service processes (e.g. --max-old-space-size=256), to study memory. */
  nodeOptions: string;
  /** Progress output (false in tests). */
  progress: boolean;
}

export const USAGE = `Usage: npm run bench -- [options]

Starts its own service instances (production build, own namespace, database and ports), measures
the echo ceiling and every scenario of SPEC §6 with autocannon, prints a table and cleans up.

Options:
  --duration <s>       seconds per throughput scenario (default 10; smoke 1)
  --warmup <s>         unmeasured seconds before each throughput scenario (default 2; smoke 0.5)
  --connections <n>    concurrent connections of the load generator (default 64; smoke 8)
  --scale <x>          multiplies the flash crowd (20000 users, 5000 tickets) and the drain burst
                       (20000 orders) (default 1; smoke 0.02)
  --gateways <n>       gateway processes (default 1)
  --workers <n>        separate worker processes; 0 = the worker runs inside each gateway (default 2: measured best on 2 cores)
  --only <list>        comma-separated subset of: ${SCENARIOS.join(', ')}
                       (echo is measured too whenever floor, submit, default, storm or poll runs;
                       default = \`npm start\` as it is, replacing the bench's layout at the end)
  --out <file>         write the results as JSON to this file
  --smoke              tiny numbers, checks the invariants only (exit code 1 if one fails)
  --strict             exit code 1 also when a performance target is missed
  --from-source        run the service from the TypeScript sources (tsx) instead of dist/
  --worker-nice <n>    WORKER_NICE of the worker processes: 0-19, 0 = as urgent as the gateways
                       (default: the service's default, ${CONFIG_DEFAULTS.WORKER_NICE})
  --node-options <s>   NODE_OPTIONS for the service processes (default: what \`npm start\` uses,
                       package.json config.nodeOptions)
  --no-progress        no progress lines on stderr (the table is still printed)
  --help               this text

The service's tuning variables (WORKER_*, QUEUE_*, DB_POOL_MAX, RESULT_LRU_SIZE, RATE_LIMIT_GLOBAL_*,
...) are taken from the environment, e.g. \`WORKER_BATCH_SIZE=1000 npm run bench\`; the isolation
ones (NAMESPACE, database name, PORT, SERVICES, secrets) are always the bench's own.
`;

export class UsageError extends Error {
  override name = 'UsageError';
}

function number(
  name: string,
  text: string | undefined,
  fallback: number,
  min: number,
  integer = true,
): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new UsageError(
      `--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min} (got "${text}")`,
    );
  }
  return value;
}

/** Parses the command line (without `node script`); throws UsageError on bad input; null for --help. */
export function parseOptions(argv: string[]): BenchOptions | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        duration: { type: 'string' },
        warmup: { type: 'string' },
        connections: { type: 'string' },
        scale: { type: 'string' },
        gateways: { type: 'string' },
        workers: { type: 'string' },
        only: { type: 'string' },
        out: { type: 'string' },
        smoke: { type: 'boolean', default: false },
        strict: { type: 'boolean', default: false },
        'from-source': { type: 'boolean', default: false },
        'node-options': { type: 'string' },
        'worker-nice': { type: 'string' },
        'no-progress': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return null;
  const smoke = v.smoke === true;

  let only: Scenario[] = [...SCENARIOS];
  if (v.only !== undefined) {
    const names = v.only
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const unknown = names.filter((n) => !(SCENARIOS as readonly string[]).includes(n));
    if (unknown.length || names.length === 0) {
      throw new UsageError(`--only takes a list of: ${SCENARIOS.join(', ')} (got "${v.only}")`);
    }
    only = SCENARIOS.filter((s) => names.includes(s));
  }

  const scale = number('scale', v.scale, smoke ? 0.02 : 1, 0.001, false);
  const duration = number('duration', v.duration, smoke ? 1 : 10, 0.5, false);
  const options: BenchOptions = {
    duration,
    warmup: number('warmup', v.warmup, smoke ? 0.5 : 2, 0, false),
    connections: number('connections', v.connections, smoke ? 8 : 64, 1),
    scale,
    gateways: number('gateways', v.gateways, BEST_LAYOUT.gateways, 1),
    workers: number('workers', v.workers, BEST_LAYOUT.workers, 0),
    out: v.out ?? null,
    only,
    smoke,
    strict: v.strict === true,
    fromSource: v['from-source'] === true,
    flashUsers: Math.max(8, Math.round(20_000 * scale)),
    flashStock: Math.max(2, Math.round(5_000 * scale)),
    drainMessages: Math.max(10, Math.round(20_000 * scale)),
    workerNice: v['worker-nice'] === undefined ? null : number('worker-nice', v['worker-nice'], 0, 0),
    nodeOptions: v['node-options'] ?? serviceNodeOptions(),
    progress: v['no-progress'] !== true,
  };
  if (options.workerNice !== null && options.workerNice > 19)
    throw new UsageError(`--worker-nice must be 0-19 (got "${options.workerNice}")`);
  if (options.gateways > 16 || options.workers > 16)
    throw new UsageError('at most 16 gateways and 16 workers');
  return options;
}

/** The V8 flags `npm start` gives the service (package.json config.nodeOptions), so both run alike. */
export function serviceNodeOptions(): string {
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    config?: { nodeOptions?: string };
  };
  return pkg.config?.nodeOptions ?? '';
}
