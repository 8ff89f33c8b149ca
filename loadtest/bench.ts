/**
 * `npm run bench`: the performance benchmark of SPEC §6 (see `npm run bench -- --help`).
 * Exit code 1 when an invariant fails (or, with --strict, a target is missed); 2 on bad usage.
 */
import { writeFileSync } from 'node:fs';
import { parseOptions, USAGE, UsageError } from './bench/options';
import { renderReport } from './bench/report';
import { runBench } from './bench/run';

async function main(): Promise<number> {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (!opts) {
    console.log(USAGE);
    return 0;
  }
  const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();
  const report = await runBench(opts, command);
  console.log(`\n${renderReport(report)}\n`);
  if (opts.out) {
    writeFileSync(opts.out, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`Results written to ${opts.out}`);
  }
  if (!report.invariantsOk) return 1;
  if (opts.strict && !opts.smoke && !report.targetsOk) return 1;
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('Benchmark failed:', err instanceof Error ? err.stack : err);
    process.exit(1);
  },
);
