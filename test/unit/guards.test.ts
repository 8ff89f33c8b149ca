import { resolve } from 'node:path';
import { guardMutants } from '../../lib/guards';
import { listProblems, mutated } from '../guards/mutants';

/** The guard mutant list (run by `npm run test:guards`) must not rot: each edit still applies. */
describe('guard mutants', () => {
  const root = resolve(__dirname, '../..');

  it('each find text is in its file exactly once, and each named test exists', () => {
    expect(listProblems(root, guardMutants)).toEqual([]);
  });

  it('takes the mutants of every file that holds guards: database, Lua scripts, V1 order, outbox, rebuild, hot routes', () => {
    const files = new Set(guardMutants.map((m) => m.file));
    expect([...files].sort()).toEqual([
      'lib/db/migrations.ts',
      'lib/purchase/outbox.ts',
      'lib/purchase/v1.ts',
      'lib/store/scripts.ts',
      'lib/tickets/stock.ts',
      'services/api.service.ts',
    ]);
  });

  it('reports a find text that is gone, one that is not unique, and a missing test file', () => {
    const base = {
      name: 'x',
      file: 'lib/db/migrations.ts',
      replace: '',
      tests: ['test/unit/guards.test.ts'],
    };
    expect(listProblems(root, [{ ...base, find: 'no such text in the migrations' }])).toEqual([
      'x: lib/db/migrations.ts holds its find text 0 times, not once',
    ]);
    expect(listProblems(root, [{ ...base, find: 'CREATE' }])[0]).toMatch(/holds its find text \d+ times/);
    expect(
      listProblems(root, [{ ...base, find: 'CREATE UNIQUE INDEX', tests: ['test/none.test.ts'] }]),
    ).toEqual(['x: no test file test/none.test.ts']);
  });

  it('applies the replacement literally, once', () => {
    const m = { name: 'x', file: 'f', find: 'a > 0', replace: "'$&'", tests: [] };
    expect(mutated('b; a > 0; a > 0', m)).toBe("b; '$&'; a > 0");
  });
});
