import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * `npm run bench:worker` with tiny numbers: the real worker drives every fake message through its
 * machine to the ack (the tool waits for all acks, so a lost message would hang it past the test's
 * timeout), and the allocation profile is written. Its timings are printed, not checked.
 */
describe('bench:worker', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-worker-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('acks every message and reports its CPU and allocations per message', () => {
    const heap = join(dir, 'worker.heapprofile');
    const run = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'loadtest/bench/worker-path.ts',
        '--messages',
        '300',
        '--rounds',
        '2',
        '--heap',
        heap,
      ],
      { cwd: resolve(__dirname, '../..'), encoding: 'utf8', timeout: 60_000 },
    );
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/round 1: [\d.]+ µs of CPU per message .*warm-up/);
    expect(run.stdout).toMatch(/round 2: [\d.]+ µs of CPU per message/);
    expect(run.stdout).toMatch(/allocated: ~[\d.]+ KB per message/);
    const profile = JSON.parse(readFileSync(heap, 'utf8')) as { head: { children: unknown[] } };
    expect(profile.head.children.length).toBeGreaterThan(0);
  }, 90_000);
});
