/**
 * `npm run test:guards [-- <part of a mutant's name>]`: for each guard mutant (lib/guards.ts), a
 * scratch copy of the tree with that one guard removed, and its tests run there with Jest. A mutant
 * that no test kills is a guard that a change could remove silently: the command then fails.
 * The named tests are first run once on the unmutated copy, so a failure means the mutant, not a
 * test that fails anyway.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { GuardMutant } from '../../lib/guard-mutant';
import { guardMutants } from '../../lib/guards';
import { listProblems, mutated } from './mutants';

const ROOT = resolve(__dirname, '../..');
/** Not copied: installed or generated, and big. node_modules is linked instead. */
const SKIPPED = new Set(['node_modules', '.git', 'dist', 'coverage', 'test-artifacts']);

interface JestReport {
  numRuntimeErrorTestSuites: number;
  testResults: { name: string; assertionResults: { fullName: string; status: string }[] }[];
}

interface Outcome {
  passed: boolean;
  failures: string[];
  seconds: number;
}

function scratchCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'guards-'));
  cpSync(ROOT, dir, {
    recursive: true,
    filter: (src) => !SKIPPED.has(src.slice(ROOT.length + 1).split('/')[0]),
  });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

/** Runs Jest on `tests` in `dir`; the failures are "file › test" lines. */
function runJest(dir: string, tests: string[]): Outcome {
  const started = Date.now();
  const out = join(dir, 'jest-report.json');
  const jest = spawnSync(
    process.execPath,
    [
      join(ROOT, 'node_modules/jest/bin/jest.js'),
      '--runInBand',
      '--forceExit',
      '--ci',
      '--json',
      `--outputFile=${out}`,
      ...tests,
    ],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 15 * 60_000 },
  );
  const seconds = Math.round((Date.now() - started) / 1000);
  let report: JestReport;
  try {
    report = JSON.parse(readFileSync(out, 'utf8')) as JestReport;
  } catch {
    return { passed: false, failures: [`jest wrote no report: ${jest.stderr.slice(-500)}`], seconds };
  }
  const failures = report.testResults.flatMap((file) =>
    file.assertionResults
      .filter((a) => a.status === 'failed')
      .map((a) => `${file.name.slice(dir.length + 1)} › ${a.fullName}`),
  );
  // A suite that could not run (e.g. its setup threw) has no failed assertion to name.
  if (report.numRuntimeErrorTestSuites > 0 && failures.length === 0)
    failures.push('a test suite failed to run');
  return { passed: jest.status === 0, failures, seconds };
}

function inScratch<T>(work: (dir: string) => T): T {
  const dir = scratchCopy();
  try {
    return work(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function main(): number {
  const only = process.argv[2];
  const mutants = guardMutants.filter((m) => !only || m.name.includes(only));
  const problems = listProblems(ROOT, guardMutants);
  if (problems.length) {
    console.error('The guard mutant list does not match the code:\n  ' + problems.join('\n  '));
    return 1;
  }
  const allTests = [...new Set(mutants.flatMap((m) => m.tests))];
  console.log(`Baseline: ${allTests.join(' ')} on the unmutated tree`);
  const baseline = inScratch((dir) => runJest(dir, allTests));
  if (!baseline.passed) {
    console.error(
      `The tests fail without any mutant (${baseline.seconds} s):\n  ${baseline.failures.join('\n  ')}`,
    );
    return 1;
  }
  console.log(`  passed in ${baseline.seconds} s`);

  const rows: { mutant: GuardMutant; outcome: Outcome }[] = [];
  for (const mutant of mutants) {
    const outcome = inScratch((dir) => {
      const path = join(dir, mutant.file);
      writeFileSync(path, mutated(readFileSync(path, 'utf8'), mutant));
      return runJest(dir, mutant.tests);
    });
    console.log(`${outcome.passed ? 'SURVIVED' : 'killed  '} ${mutant.name} (${outcome.seconds} s)`);
    rows.push({ mutant, outcome });
  }

  console.log('\n| guard removed | file | result | killed by |\n|---|---|---|---|');
  for (const { mutant, outcome } of rows) {
    const by = outcome.failures.slice(0, 3).join('<br>') + (outcome.failures.length > 3 ? '<br>…' : '');
    console.log(
      `| ${mutant.name} | ${mutant.file} | ${outcome.passed ? '**survived**' : 'killed'} | ${by} |`,
    );
  }
  const survived = rows.filter((r) => r.outcome.passed).length;
  console.log(`\n${rows.length - survived} of ${rows.length} guard mutants killed`);
  return survived ? 1 : 0;
}

process.exitCode = main();
