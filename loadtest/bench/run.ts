import { cpus } from 'node:os';
import { coreLine, coreTimes } from './cores';
import type { BenchOptions, Scenario } from './options';
import { Progress } from './progress';
import { contendedPhases, type BenchReport } from './report';
import { Results } from './results';
import {
  defaultStartScenario,
  drainScenario,
  echoScenario,
  finalInvariants,
  flashScenario,
  floorScenario,
  pollScenario,
  stormScenario,
  submitScenario,
} from './scenarios';
import { Bench } from './setup';

const RSS_TARGET_MB = 300;

/** The figures every full run reports, in the table's order (the SPEC's); the RSS rows follow. */
export const FIGURE_ORDER: readonly string[] = [
  'echo-post',
  'echo-get',
  'floor',
  'submit',
  'default',
  'cpu',
  'storm',
  'poll',
  'drain',
  'flash',
  'flash-outcome',
];

/**
 * Runs the benchmark: the echo ceiling, then the service scenarios, then the invariants; always
 * cleans up (children, database, Redis keys, streams), also on SIGINT/SIGTERM.
 */
export async function runBench(opts: BenchOptions, command = 'npm run bench'): Promise<BenchReport> {
  const progress = new Progress(opts.progress);
  const results = new Results(opts.smoke);
  const bench = new Bench(opts, progress);
  const startedAt = new Date();
  // Before anything else runs: the cores' speeds on an idle machine.
  const coresBefore = opts.smoke ? null : coreTimes();
  const cores = coreLine(coresBefore, 'before the run');
  if (cores) progress.line(cores);
  const wants = (s: Scenario) => opts.only.includes(s);
  let error: string | undefined;

  let interruptedAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // The same Ctrl-C can arrive twice (from the terminal, and relayed by tsx or npm): only a
    // second one a moment later forces the exit.
    if (interruptedAt) {
      if (Date.now() - interruptedAt < 1500) return;
      bench.killChildren();
      process.exit(130);
    }
    interruptedAt = Date.now();
    progress.line(`${signal}: stopping the service and cleaning up (${signal} again to force)`);
    void bench.cleanup().finally(() => process.exit(130));
  };
  const onExit = () => bench.killChildren();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);

  try {
    progress.line(
      `namespace ${bench.namespace}, database ${new URL(bench.config.databaseUrl).pathname.slice(1)}; ` +
        `${opts.gateways} gateway(s) + ${opts.workers} worker(s)${opts.fromSource ? ' (from source)' : ''}`,
    );
    if (['echo', 'floor', 'submit', 'default', 'storm', 'poll'].some((s) => wants(s as Scenario)))
      await echoScenario(bench, results);
    // Before the service starts: the floor has the machine to itself, like the echo.
    if (wants('floor')) await floorScenario(bench, results);
    if (['submit', 'default', 'storm', 'poll', 'drain', 'flash'].some((s) => wants(s as Scenario))) {
      progress.line('starting the service (migrations, seeding users)…');
      await bench.startService();
      progress.line(`service up: ${bench.children.map((c) => `${c.name} pid ${c.pid}`).join(', ')}`);
      // The resting footprint, before any load (memory and background CPU).
      bench.monitor.begin('idle after start');
      await new Promise((r) => setTimeout(r, 2000));
      bench.monitor.end();
      // The storm runs last: it hammers the day the flash crowd sold out (SPEC: "after the day is
      // sold out"). The table keeps the SPEC's order.
      if (wants('submit')) await submitScenario(bench, results);
      if (wants('poll')) await pollScenario(bench, results);
      if (wants('drain')) await drainScenario(bench, results);
      if (wants('flash')) await flashScenario(bench, results);
      if (wants('storm')) await stormScenario(bench, results);
      // Last: it replaces the bench's layout with the default start's.
      if (wants('default')) await defaultStartScenario(bench, results);
      await finalInvariants(bench, results);
    }
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    results.check('run', 'the run completed', false, error);
  } finally {
    bench.monitor.end();
    progress.line('cleaning up (stopping processes, dropping the database, Redis keys and streams)…');
    await bench.cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  }

  // Memory: each service process against the target, during the flash crowd (SPEC §6) and overall.
  const flash = bench.monitor.phases.find((p) => p.phase === 'flash crowd');
  for (const proc of bench.monitor.peaks().filter((p) => p.service)) {
    const during = flash?.rssPeakMb[proc.label] ?? null;
    const value = during ?? proc.peakMb;
    results.figure({
      id: `rss-${proc.label}`,
      figure: `peak RSS ${proc.label}${during !== null ? ' (flash crowd)' : ' (whole run)'}`,
      value,
      unit: 'MB',
      baseline: null,
      ratio: null,
      target: `< ${RSS_TARGET_MB} MB`,
      pass: value > 0 ? value < RSS_TARGET_MB : null,
      p50: null,
      p99: null,
      errors: '-',
      note: `peak over the whole run ${proc.peakMb} MB`,
    });
  }

  const rank = (id: string) => {
    const i = FIGURE_ORDER.indexOf(id);
    return i < 0 ? FIGURE_ORDER.length : i;
  };
  results.figures.sort((a, b) => rank(a.id) - rank(b.id));

  const coresAfter = opts.smoke ? null : coreTimes();
  const finishedAt = new Date();
  const cpu = cpus();
  return {
    meta: {
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      seconds: Math.round((finishedAt.getTime() - startedAt.getTime()) / 1000),
      node: process.version,
      cpus: cpu.length,
      cpuModel: cpu[0]?.model?.trim() ?? 'unknown',
      platform: `${process.platform} ${process.arch}`,
      namespace: bench.namespace,
      layout: {
        gateways: opts.gateways,
        workers: opts.workers,
        processes: bench.children.filter((c) => c.role !== 'baseline').map((c) => c.name),
      },
      command,
      serviceEnv: bench.passedThrough,
      coreMs: { before: coresBefore, after: coresAfter },
    },
    options: { ...opts },
    figures: results.figures,
    checks: results.checks,
    phases: bench.monitor.phases,
    rss: bench.monitor.peaks(),
    contended: contendedPhases(bench.monitor.phases),
    details: {
      ...results.details,
      childLogs: Object.fromEntries(
        bench.children
          .filter((c) => c.logLines > 0)
          .map((c) => [c.name, { lines: c.logLines, tail: c.tail }]),
      ),
    },
    invariantsOk: results.invariantsOk,
    targetsOk: results.targetsOk,
    ...(error ? { error } : {}),
  };
}
