import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseOptions, SCENARIOS, serviceNodeOptions, USAGE, UsageError } from '../../loadtest/bench/options';
import { Latencies } from '../../loadtest/bench/load';
import { PairAllocator } from '../../loadtest/bench/scenarios';
import { benchEnv, layoutServices } from '../../loadtest/bench/setup';
import { Results } from '../../loadtest/bench/results';
import { renderReport, type BenchReport } from '../../loadtest/bench/report';
import { coreLine, coreTimes } from '../../loadtest/bench/cores';
import { CONFIG_DEFAULTS, loadConfig } from '../../config';

const parse = (...args: string[]) => {
  const opts = parseOptions(args);
  if (!opts) throw new Error('help');
  return opts;
};

describe('bench options', () => {
  it('defaults to a full run of every scenario', () => {
    const o = parse();
    expect(o).toMatchObject({ duration: 10, connections: 64, scale: 1, gateways: 1, smoke: false });
    expect(o.only).toEqual([...SCENARIOS]);
    expect(o).toMatchObject({ flashUsers: 20_000, flashStock: 5_000, drainMessages: 20_000 });
  });

  it('smoke shrinks every number, and explicit options still win', () => {
    const o = parse('--smoke', '--connections', '4');
    expect(o.smoke).toBe(true);
    expect(o.duration).toBeLessThanOrEqual(1);
    expect(o.connections).toBe(4);
    expect(o.flashUsers).toBeLessThan(1000);
    expect(o.flashStock).toBeLessThan(o.flashUsers);
  });

  it('scale multiplies the flash crowd and the drain burst', () => {
    expect(parse('--scale', '0.5')).toMatchObject({
      flashUsers: 10_000,
      flashStock: 2_500,
      drainMessages: 10_000,
    });
  });

  it('--only keeps the canonical order and refuses unknown names', () => {
    expect(parse('--only', 'flash,echo').only).toEqual(['echo', 'flash']);
    expect(() => parse('--only', 'flash,nope')).toThrow(UsageError);
    expect(() => parse('--only', '')).toThrow(UsageError);
  });

  it('refuses bad numbers and unknown flags; --help gives null', () => {
    expect(() => parse('--connections', '0')).toThrow(UsageError);
    expect(() => parse('--gateways', '1.5')).toThrow(UsageError);
    expect(() => parse('--duration', 'x')).toThrow(UsageError);
    expect(() => parse('--bogus')).toThrow(UsageError);
    expect(parseOptions(['--help'])).toBeNull();
  });

  it('leaves WORKER_NICE to the service unless --worker-nice (0-19) is given', () => {
    expect(parse().workerNice).toBeNull();
    expect(parse('--worker-nice', '0').workerNice).toBe(0);
    expect(() => parse('--worker-nice', '20')).toThrow(UsageError);
    expect(() => parse('--worker-nice', '-1')).toThrow(UsageError);
  });
});

describe('bench options, exactly', () => {
  const usageError = (...args: string[]) => {
    try {
      parseOptions(args);
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      expect((err as Error).name).toBe('UsageError');
      return (err as Error).message;
    }
    throw new Error(`accepted ${args.join(' ')}`);
  };

  it('gives every default, and the smoke ones', () => {
    expect(parse()).toEqual({
      duration: 10,
      warmup: 2,
      connections: 64,
      scale: 1,
      gateways: 1,
      workers: 2,
      out: null,
      only: [...SCENARIOS],
      smoke: false,
      strict: false,
      fromSource: false,
      flashUsers: 20_000,
      flashStock: 5_000,
      drainMessages: 20_000,
      workerNice: null,
      nodeOptions: serviceNodeOptions(),
      progress: true,
    });
    expect(parse('--smoke')).toMatchObject({ duration: 1, warmup: 0.5, connections: 8, scale: 0.02 });
  });

  it('takes every flag', () => {
    expect(
      parse(
        '--strict',
        '--from-source',
        '--no-progress',
        '--out',
        'r.json',
        '--node-options=--max-old-space-size=128',
        '--duration',
        '0.5',
        '--warmup',
        '0.5',
        '--gateways',
        '16',
        '--workers',
        '16',
        '--worker-nice',
        '19',
      ),
    ).toMatchObject({
      strict: true,
      fromSource: true,
      progress: false,
      out: 'r.json',
      nodeOptions: '--max-old-space-size=128',
      duration: 0.5,
      warmup: 0.5,
      gateways: 16,
      workers: 16,
      workerNice: 19,
    });
  });

  it('reads the node options of npm start from package.json', () => {
    const pkg = JSON.parse(readFileSync(`${__dirname}/../../package.json`, 'utf8')) as {
      config: { nodeOptions: string };
    };
    expect(serviceNodeOptions()).toBe(pkg.config.nodeOptions);
    expect(serviceNodeOptions()).not.toBe('');
  });

  it('trims --only and skips empty names', () => {
    expect(parse('--only', ' flash , echo,').only).toEqual(['echo', 'flash']);
  });

  it('says what is wrong with each option', () => {
    expect(usageError('--connections', '0')).toBe('--connections must be an integer >= 1 (got "0")');
    expect(usageError('--duration', 'x')).toBe('--duration must be a number >= 0.5 (got "x")');
    expect(usageError('--warmup=-1')).toBe('--warmup must be a number >= 0 (got "-1")');
    expect(usageError('--scale', '0')).toBe('--scale must be a number >= 0.001 (got "0")');
    expect(usageError('--gateways', '0')).toBe('--gateways must be an integer >= 1 (got "0")');
    expect(usageError('--workers=-1')).toBe('--workers must be an integer >= 0 (got "-1")');
    expect(usageError('--worker-nice', '1.5')).toBe('--worker-nice must be an integer >= 0 (got "1.5")');
    expect(usageError('--worker-nice', '20')).toBe('--worker-nice must be 0-19 (got "20")');
    expect(usageError('--gateways', '17')).toBe('at most 16 gateways and 16 workers');
    expect(usageError('--workers', '17')).toBe('at most 16 gateways and 16 workers');
    expect(usageError('--only', 'nope')).toBe(
      `--only takes a list of: echo, floor, submit, default, storm, poll, drain, flash (got "nope")`,
    );
    expect(usageError('stray')).toMatch(/stray/);
  });

  it('documents every option and scenario in the usage text', () => {
    expect(USAGE.startsWith('Usage: npm run bench -- [options]\n')).toBe(true);
    expect(USAGE).toContain(
      'comma-separated subset of: echo, floor, submit, default, storm, poll, drain, flash\n',
    );
    for (const flag of [
      '--duration',
      '--warmup',
      '--strict',
      '--from-source',
      '--worker-nice',
      '--no-progress',
    ])
      expect(USAGE).toContain(flag);
  });
});

describe('bench environment', () => {
  it('isolates the instance and runs it in production mode with generated secrets', () => {
    const { env, passedThrough } = benchEnv('benchabc', parse(), {
      DATABASE_URL: 'postgres://u@db.example:5433/mine',
      NAMESPACE: 'prod',
      PORT: '80',
      WORKER_BATCH_SIZE: '1000',
      HASH_SECRET: 'x'.repeat(40),
    });
    expect(env).toMatchObject({
      NODE_ENV: 'production',
      NAMESPACE: 'benchabc',
      LOG_LEVEL: 'warn',
      WORKER_BATCH_SIZE: '1000',
      // The production default, not the test environment's equal priority.
      WORKER_NICE: CONFIG_DEFAULTS.WORKER_NICE,
    });
    expect(env.DATABASE_URL).toBe('postgres://u@db.example:5433/miaosha_benchabc');
    expect(env.HASH_SECRET).not.toBe('x'.repeat(40));
    expect(passedThrough).toEqual({ WORKER_BATCH_SIZE: '1000' });
    const config = loadConfig(env);
    expect(config.env).toBe('production');
    expect(config.adminToken).toEqual(expect.any(String));
  });

  it('splits gateways and workers, or runs everything in one process', () => {
    expect(layoutServices(0).gateway).toBe('all');
    const split = layoutServices(2);
    expect(split.worker).toBe('purchase-worker');
    expect(split.gateway.split(',')).toEqual(expect.arrayContaining(['api', 'tickets', 'purchase']));
    expect(split.gateway).not.toContain('purchase-worker');
  });
});

describe('bench helpers', () => {
  it('computes exact latency percentiles', () => {
    const l = new Latencies();
    for (let i = 100; i >= 1; i--) l.add(i);
    expect(l.summary()).toEqual({ count: 100, p50: 50, p90: 90, p99: 99, max: 100 });
    expect(new Latencies().summary().p99).toBeNull();
  });

  it('hands out each (user, day) pair once', () => {
    const pairs = new PairAllocator(3, ['d1', 'd2']);
    const taken = Array.from({ length: 6 }, () => pairs.take());
    expect(new Set(taken.map((p) => `${p.userId}@${p.date}`)).size).toBe(6);
    expect(taken[0]).toEqual({ userId: 1, date: 'd1' });
    expect(taken[3]).toEqual({ userId: 1, date: 'd2' });
  });

  it('judges ratios and latency targets, and nothing in smoke mode', () => {
    const load = (rps: number, p99: number) => ({
      title: 't',
      seconds: 1,
      completed: rps,
      rps,
      latencyMs: { count: rps, p50: 1, p90: 2, p99, max: p99 },
      statusCodes: { '200': rps },
      non2xx: 0,
      errors: 0,
      timeouts: 0,
    });
    const r = new Results(false);
    expect(r.throughput('a', 'a', load(600, 10), load(1000, 1), 0.6, 50).pass).toBe(true);
    expect(r.throughput('b', 'b', load(600, 51), load(1000, 1), 0.6, 50).pass).toBe(false);
    expect(r.throughput('c', 'c', load(500, 10), load(1000, 1), 0.6).pass).toBe(false);
    expect(r.targetsOk).toBe(false);
    const smoke = new Results(true);
    expect(smoke.throughput('a', 'a', load(1, 999), load(1000, 1), 0.6, 50).pass).toBeNull();
    smoke.check('x', 'holds', true);
    expect(smoke.invariantsOk).toBe(true);
    smoke.check('x', 'broken', false);
    expect(smoke.invariantsOk).toBe(false);
  });

  it('renders the table with every figure', () => {
    const r = new Results(false);
    r.figure({
      id: 'drain',
      figure: 'order drain',
      value: 6000,
      unit: 'orders/s',
      baseline: null,
      ratio: null,
      target: '>= 5000',
      pass: true,
      p50: null,
      p99: null,
      errors: '0 / 0',
    });
    const report: BenchReport = {
      meta: {
        startedAt: 'now',
        finishedAt: 'now',
        seconds: 1,
        node: 'v24',
        cpus: 2,
        cpuModel: 'cpu',
        platform: 'linux',
        namespace: 'benchx',
        layout: { gateways: 1, workers: 1, processes: ['gateway-1', 'worker-1'] },
        command: 'npm run bench',
        serviceEnv: {},
        coreMs: { before: [300, 210], after: null },
      },
      options: {},
      figures: r.figures,
      checks: [{ scenario: 'all', name: 'holds', ok: true, detail: '' }],
      phases: [
        { phase: 'submit', seconds: 10, cores: { 'gateway-1': 0.9 }, rssPeakMb: { 'gateway-1': 120 } },
      ],
      rss: [],
      contended: [],
      details: {},
      invariantsOk: true,
      targetsOk: true,
    };
    const text = renderReport(report);
    expect(text).toContain('6,000 orders/s');
    expect(text).toContain('PASS');
    expect(text).toMatch(/submit\s+\|\s+10\.0\s+\|\s+0\.90/);
    expect(text).toContain('Invariants: all hold');
    expect(text).toContain(
      'Core speed check before the run (the same work pinned to each core): cpu0 300 ms',
    );
    expect(text).not.toContain('Core speed check after');
  });

  it('times the same work on each core, and says when the cores are uneven', () => {
    const times = coreTimes(1);
    expect(times).toHaveLength(cpus().length);
    expect(times!.every((ms) => Number.isInteger(ms) && ms > 0)).toBe(true);

    expect(coreLine([300, 210], 'before')).toMatch(/cpu0 300 ms, cpu1 210 ms - the cores differ by 1\.43 x/);
    expect(coreLine([300, 290], 'after')).toBe(
      'Core speed check after (the same work pinned to each core): cpu0 300 ms, cpu1 290 ms.',
    );
    expect(coreLine(null, 'before')).toBeNull();
  });
});
