import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * `npm run cycles` (part of `npm run lint`) runs madge with the options in package.json. An import
 * cycle made only of type imports is still a cycle between modules: the checker must see it.
 */
describe('import cycle checker', () => {
  const root = path.resolve(__dirname, '../..');
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'cycles-'));
    writeFileSync(path.join(dir, 'a.ts'), "import type { B } from './b';\nexport interface A { b?: B }\n");
    writeFileSync(path.join(dir, 'b.ts'), "import type { A } from './a';\nexport interface B { a?: A }\n");
    writeFileSync(path.join(dir, 'c.ts'), "import type { A } from './a';\nexport type C = A;\n");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds a cycle of type-only imports and fails', () => {
    const run = spawnSync(path.join(root, 'node_modules/.bin/madge'), ['--circular', '--json', dir], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(JSON.parse(run.stdout)).toEqual([['a.ts', 'b.ts']]);
    expect(run.status).toBe(1);
  });
});
