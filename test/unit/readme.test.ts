import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CONFIG_DEFAULTS } from '../../config';

const readme = readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
const rows = readme.split('\n').filter((line) => line.startsWith('| `'));

describe('README', () => {
  it('names the start and test commands', () => {
    expect(readme).toContain('npm start');
    expect(readme).toContain('npm test');
  });

  it.each(Object.entries(CONFIG_DEFAULTS))('documents %s with its default', (name, fallback) => {
    // Rows may pair two variables ("`A` / `B` | `1` / `2`"): the default sits at the same index.
    const table = rows.map((line) => line.split('|').map((c) => c.trim()));
    const row = table.find((cells) => cells[1].split(' / ').includes(`\`${name}\``));
    expect(row).toBeDefined();
    if (fallback) {
      const index = row![1].split(' / ').indexOf(`\`${name}\``);
      expect(row![2].split(' / ')[index]).toBe(`\`${fallback}\``);
    }
  });
});
