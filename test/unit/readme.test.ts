import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CONFIG_DEFAULTS } from '../../config';

const ROOT = path.join(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');
const readme = read('README.md');
const fullTable = read('docs/configuration.md');

/** The lines of one markdown section, from its `## ` heading to the next one. */
function section(text: string, heading: string): string {
  const lines = text.split('\n');
  const start = lines.indexOf(`## ${heading}`);
  if (start < 0) throw new Error(`no section "## ${heading}"`);
  const end = lines.findIndex((line, i) => i > start && line.startsWith('## '));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

interface ConfigRow {
  name: string;
  /** The default cell's entry for this variable: `value`, or free text where the default is empty. */
  fallback: string;
}

/**
 * The rows of every configuration table ("| variable | default | meaning |") in a text. A row may pair
 * two variables ("`A` / `B` | `1` / `2`"): the default sits at the same index.
 */
function configRows(text: string): ConfigRow[] {
  const rows: ConfigRow[] = [];
  let inTable = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith('|')) {
      inTable = false;
      continue;
    }
    const cells = line.split('|').map((c) => c.trim());
    if (cells[1] === 'variable') inTable = true;
    if (!inTable || !cells[1].startsWith('`')) continue;
    const names = cells[1].split(' / ');
    const fallbacks = cells[2].split(' / ');
    names.forEach((name, i) => rows.push({ name: name.replace(/`/g, ''), fallback: fallbacks[i] ?? '' }));
  }
  return rows;
}

/** A default written as the code has it: `value` for a set default, no code value for an empty one. */
function agrees(row: ConfigRow): boolean {
  const fallback = CONFIG_DEFAULTS[row.name];
  return fallback ? row.fallback === `\`${fallback}\`` : !row.fallback.startsWith('`');
}

describe('README', () => {
  it('names the start and test commands', () => {
    expect(readme).toContain('npm start');
    expect(readme).toContain('npm test');
  });

  it('stays a door: under 20 KB', () => {
    expect(Buffer.byteLength(readme)).toBeLessThan(20_000);
  });

  it('links every page of docs/, and every page it links exists', () => {
    const linked = new Set([...readme.matchAll(/\]\((docs\/[^)#]+)/g)].map((m) => m[1]));
    const pages = ['architecture', 'configuration', 'guarantees', 'operations', 'performance', 'scale-out'];
    for (const page of [...pages, 'security']) expect(linked).toContain(`docs/${page}.md`);
    for (const file of linked) expect(existsSync(path.join(ROOT, file))).toBe(true);
  });

  describe('its configuration table (the variables set first)', () => {
    const rows = configRows(section(readme, 'Configuration'));

    it('lists some variables and links the full table', () => {
      expect(rows.length).toBeGreaterThan(5);
      expect(section(readme, 'Configuration')).toContain('(docs/configuration.md)');
    });

    it.each(rows.map((row) => [row.name, row]))('%s is a known variable with its default', (_name, row) => {
      expect(Object.keys(CONFIG_DEFAULTS)).toContain(row.name);
      expect(agrees(row)).toBe(true);
    });
  });

  it('names in its guarantees table only tests that exist', () => {
    const names = [...section(readme, 'Guarantees').matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1]);
    expect(names.length).toBeGreaterThan(10);
    const dirs = ['unit', 'integration', 'faults', 'e2e'];
    for (const name of names) {
      const found = dirs.some((dir) => existsSync(path.join(ROOT, 'test', dir, `${name}.test.ts`)));
      if (!found) throw new Error(`no test/*/${name}.test.ts`);
    }
  });
});

describe('docs/configuration.md', () => {
  const rows = configRows(fullTable);

  it.each(Object.keys(CONFIG_DEFAULTS))('documents %s with its default', (name) => {
    const row = rows.find((r) => r.name === name);
    expect(row).toBeDefined();
    expect(agrees(row!)).toBe(true);
  });

  it('documents each variable once and no unknown one', () => {
    const names = rows.map((r) => r.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(Object.keys(CONFIG_DEFAULTS)).toContain(name);
  });
});
