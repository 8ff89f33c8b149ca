import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * The import rules of docs/architecture.md, checked on madge's graph of the tree, and the checker
 * behind `npm run cycles` (part of `npm run lint`): both run madge with the options in package.json,
 * type imports included.
 */
type Graph = Record<string, string[]>;

interface Rule {
  name: string;
  from: RegExp;
  to: RegExp;
  /** Files the rule does not apply to yet, each with its reason. */
  except?: RegExp;
}

const RULES: Rule[] = [
  { name: 'config imports nothing of the project', from: /^config\//, to: /^(?!config\/)/ },
  {
    name: 'the machine is pure: it imports nothing of the project',
    from: /^machines\//,
    to: /^(?!machines\/)/,
  },
  {
    name: 'the library does not import services, the program or the tools',
    from: /^lib\//,
    to: /^(services|app|tools)\//,
  },
  {
    name: 'services do not import the program or the tools',
    from: /^services\//,
    to: /^(app|tools)\//,
  },
  {
    name: 'tickets (days and orders in PostgreSQL) do not import purchase',
    from: /^lib\/tickets\//,
    to: /^lib\/purchase\//,
  },
  {
    name: 'the stores and the sale rules import no feature module',
    from: /^lib\/(store|sale|db)\//,
    to: /^lib\/(tickets|purchase|monitor|http)\//,
  },
  { name: 'purchase does not import the monitor', from: /^lib\/purchase\//, to: /^lib\/monitor\// },
  {
    // One way to pass dependencies: modules take narrow inputs ({db, redis}, config slices, ports),
    // which the services build from their runtime.
    name: 'the library does not import the runtime',
    from: /^lib\//,
    to: /^lib\/runtime\.ts$/,
  },
  {
    name: 'no production module imports a tool',
    from: /^(lib|services|machines|config)\//,
    to: /^tools\//,
  },
];

function violations(graph: Graph, rules: Rule[] = RULES): string[] {
  const found: string[] = [];
  for (const [file, deps] of Object.entries(graph)) {
    for (const rule of rules) {
      if (!rule.from.test(file) || rule.except?.test(file)) continue;
      for (const dep of deps) if (rule.to.test(dep)) found.push(`${rule.name}: ${file} imports ${dep}`);
    }
  }
  return found;
}

const root = path.resolve(__dirname, '../..');
const madge = (...args: string[]) =>
  spawnSync(path.join(root, 'node_modules/.bin/madge'), ['--json', ...args], { cwd: root, encoding: 'utf8' });

describe('module map', () => {
  it('the tree keeps the import rules', () => {
    const graph = JSON.parse(madge('.').stdout) as Graph;
    expect(Object.keys(graph)).toEqual(expect.arrayContaining(['lib/runtime.ts', 'services/api.service.ts']));
    expect(violations(graph)).toEqual([]);
  });

  it('names each import that breaks a rule', () => {
    expect(
      violations({
        'lib/tickets/orders.ts': ['lib/purchase/reservations.ts', 'lib/store/keys.ts'],
        'machines/purchase.machine.ts': ['lib/errors.ts'],
        'lib/http/health.ts': ['services/local.ts'],
        'app/broker.ts': ['services/api.service.ts', 'lib/runtime.ts'],
        'services/tickets.service.ts': ['tools/audit/audit.ts', 'lib/runtime.ts'],
        'lib/purchase/gateway.ts': ['lib/runtime.ts', 'lib/purchase/gateway-ports.ts'],
      }),
    ).toEqual([
      'tickets (days and orders in PostgreSQL) do not import purchase: lib/tickets/orders.ts imports lib/purchase/reservations.ts',
      'the machine is pure: it imports nothing of the project: machines/purchase.machine.ts imports lib/errors.ts',
      'the library does not import services, the program or the tools: lib/http/health.ts imports services/local.ts',
      'services do not import the program or the tools: services/tickets.service.ts imports tools/audit/audit.ts',
      'no production module imports a tool: services/tickets.service.ts imports tools/audit/audit.ts',
      'the library does not import the runtime: lib/purchase/gateway.ts imports lib/runtime.ts',
    ]);
  });
});

describe('import cycle checker', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'cycles-'));
    writeFileSync(path.join(dir, 'a.ts'), "import type { B } from './b';\nexport interface A { b?: B }\n");
    writeFileSync(path.join(dir, 'b.ts'), "import type { A } from './a';\nexport interface B { a?: A }\n");
    writeFileSync(path.join(dir, 'c.ts'), "import type { A } from './a';\nexport type C = A;\n");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds a cycle made only of type imports, and fails', () => {
    const run = madge('--circular', dir);
    expect(JSON.parse(run.stdout)).toEqual([['a.ts', 'b.ts']]);
    expect(run.status).toBe(1);
  });
});
