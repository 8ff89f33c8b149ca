import Redis from 'ioredis';
import { connect } from 'nats';
import pg from 'pg';
import { parseOptions } from '../../loadtest/bench/options';
import { FIGURE_ORDER, runBench } from '../../loadtest/bench/run';
import { queueNames } from '../../lib/purchase/queue';
import type { BenchReport } from '../../loadtest/bench/report';
import { CONFIG_DEFAULTS } from '../../config';

const setting = (name: string) => process.env[name] || CONFIG_DEFAULTS[name];

/**
 * `npm run bench -- --smoke` in-process: every scenario with tiny numbers against real NATS,
 * Redis and PostgreSQL. Checks the invariants and that the run cleaned up after itself; the
 * timings are not checked (a benchmark, not a timed test). The service runs from source (tsx) so
 * the test does not depend on a fresh `dist/`.
 */
describe('bench --smoke', () => {
  let report: BenchReport;

  beforeAll(async () => {
    const opts = parseOptions(['--smoke', '--from-source', '--no-progress']);
    if (!opts) throw new Error('no options');
    report = await runBench(opts, 'jest bench-smoke');
  }, 180_000);

  it('runs every scenario and every invariant holds', () => {
    const failed = report.checks.filter((c) => !c.ok);
    expect(report.error).toBeUndefined();
    expect(failed).toEqual([]);
    expect(report.invariantsOk).toBe(true);
    expect(new Set(report.checks.map((c) => c.scenario))).toEqual(
      new Set(['echo', 'floor', 'submit', 'default', 'storm', 'poll', 'drain', 'flash', 'all']),
    );
  });

  it('reports every figure, without judging timings in smoke mode', () => {
    const ids = report.figures.map((f) => f.id);
    expect(ids).toEqual(expect.arrayContaining([...FIGURE_ORDER]));
    expect(ids.some((id) => id.startsWith('rss-'))).toBe(true);
    // The default start ran as `npm start` does: a supervisor and its gateway and two workers.
    expect(ids).toEqual(
      expect.arrayContaining(['rss-npm-start gateway', 'rss-npm-start worker-1', 'rss-npm-start worker-2']),
    );
    expect(report.figures.every((f) => f.pass === null)).toBe(true);
    for (const id of ['echo-post', 'floor', 'submit', 'default', 'storm', 'poll']) {
      expect(report.figures.find((f) => f.id === id)?.value).toEqual(expect.any(Number));
    }
  });

  it('leaves nothing behind: database, Redis keys, streams (the service and the floor)', async () => {
    const ns = report.meta.namespace;
    const adminUrl = new URL(setting('DATABASE_URL'));
    adminUrl.pathname = '/postgres';
    const admin = new pg.Client({ connectionString: adminUrl.toString() });
    await admin.connect();
    try {
      const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [
        `miaosha_${ns}`,
      ]);
      expect(rowCount).toBe(0);
    } finally {
      await admin.end();
    }
    const redis = new Redis(setting('REDIS_URL'));
    try {
      const left: string[] = [];
      let cursor = '0';
      do {
        const [next, found] = await redis.scan(cursor, 'MATCH', `${ns}*`, 'COUNT', 1000);
        cursor = next;
        left.push(...found);
      } while (cursor !== '0');
      expect(left).toEqual([]);
    } finally {
      redis.disconnect();
    }
    const nc = await connect({ servers: setting('NATS_URL').split(',') });
    try {
      const jsm = await nc.jetstreamManager();
      for (const namespace of [ns, `${ns}floor`]) {
        await expect(jsm.streams.info(queueNames(namespace).stream)).rejects.toThrow(/not found/i);
        await expect(jsm.streams.info(queueNames(namespace).dlqStream)).rejects.toThrow(/not found/i);
      }
    } finally {
      await nc.close();
    }
  });
});
