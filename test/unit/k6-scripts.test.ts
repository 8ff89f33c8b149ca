/**
 * The k6 scenarios in loadtest/k6 are never executed here (k6 is not a dependency): they are type-checked
 * against @types/k6 with their own tsconfig, and their exports are inspected through the TypeScript AST.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as acorn from 'acorn';
import * as esbuild from 'esbuild';
import * as ts from 'typescript';

const K6_DIR = path.resolve(__dirname, '../../loadtest/k6');
const TSCONFIG = path.join(K6_DIR, 'tsconfig.json');

interface ScenarioSpec {
  file: string;
  executor: string;
  /** Threshold keys (metric{tags}) the scenario must declare, with one expression each must contain. */
  thresholds: Record<string, string>;
}

const COMMON_THRESHOLDS = {
  'http_req_duration{name:submit}': 'p(99)<50',
  checks: 'rate>0.99',
  invariant_violations: 'count==0',
};

const SCENARIOS: ScenarioSpec[] = [
  {
    file: 'flash-crowd.ts',
    executor: 'ramping-arrival-rate',
    thresholds: {
      ...COMMON_THRESHOLDS,
      purchase_terminal_latency: 'p(99)<2000',
      'http_req_failed{name:submit}': 'rate<0.01',
    },
  },
  {
    file: 'sold-out-storm.ts',
    executor: 'constant-arrival-rate',
    thresholds: { ...COMMON_THRESHOLDS, 'http_req_failed{name:submit}': 'rate<0.01' },
  },
  {
    file: 'polling-mix.ts',
    executor: 'constant-arrival-rate',
    thresholds: { ...COMMON_THRESHOLDS, 'http_req_failed{name:result}': 'rate<0.01' },
  },
  {
    file: 'soak.ts',
    executor: 'constant-arrival-rate',
    thresholds: {
      ...COMMON_THRESHOLDS,
      'http_req_duration{name:submit,phase:early}': 'p(99)<50',
      'http_req_duration{name:submit,phase:late}': 'p(99)<50',
    },
  },
];

function formatDiagnostics(diagnostics: readonly ts.Diagnostic[]): string {
  return ts.formatDiagnostics(diagnostics, {
    getCanonicalFileName: (fileName) => fileName,
    getCurrentDirectory: () => process.cwd(),
    getNewLine: () => '\n',
  });
}

function loadProject(): ts.ParsedCommandLine {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    TSCONFIG,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(formatDiagnostics([diagnostic]));
      },
    },
  );
  if (parsed === undefined) throw new Error(`cannot read ${TSCONFIG}`);
  return parsed;
}

/** Type-checks the k6 project; `extraFiles` (absolute path → source) are added in memory only. */
function typeCheck(extraFiles: Record<string, string> = {}): readonly ts.Diagnostic[] {
  const project = loadProject();
  const host = ts.createCompilerHost(project.options, true);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (fileName) => fileName in extraFiles || fileExists.call(host, fileName);
  host.readFile = (fileName) => extraFiles[fileName] ?? readFile.call(host, fileName);
  host.getSourceFile = (fileName, languageVersion, ...rest) =>
    fileName in extraFiles
      ? ts.createSourceFile(fileName, extraFiles[fileName], languageVersion, true)
      : getSourceFile.call(host, fileName, languageVersion, ...rest);
  const program = ts.createProgram({
    rootNames: project.fileNames.concat(Object.keys(extraFiles)),
    options: project.options,
    projectReferences: project.projectReferences,
    configFileParsingDiagnostics: project.errors,
    host,
  });
  return ts.getPreEmitDiagnostics(program);
}

function parse(file: string): ts.SourceFile {
  const fileName = path.join(K6_DIR, file);
  return ts.createSourceFile(fileName, fs.readFileSync(fileName, 'utf8'), ts.ScriptTarget.Latest, true);
}

function hasModifier(node: ts.Node, kind: ts.SyntaxKind): boolean {
  return (
    ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((modifier) => modifier.kind === kind)
  );
}

function unwrap(expression: ts.Expression): ts.Expression {
  let current = expression;
  while (
    ts.isAsExpression(current) ||
    ts.isSatisfiesExpression(current) ||
    ts.isParenthesizedExpression(current) ||
    ts.isTypeAssertionExpression(current)
  ) {
    current = current.expression;
  }
  return current;
}

function propertyName(name: ts.PropertyName): string | undefined {
  if (ts.isIdentifier(name) || ts.isStringLiteral(name) || ts.isNoSubstitutionTemplateLiteral(name)) {
    return name.text;
  }
  return undefined;
}

function property(object: ts.ObjectLiteralExpression, name: string): ts.Expression | undefined {
  for (const element of object.properties) {
    if (ts.isPropertyAssignment(element) && propertyName(element.name) === name) return element.initializer;
    if (ts.isShorthandPropertyAssignment(element) && element.name.text === name) return element.name;
  }
  return undefined;
}

/** Initializer of `export const options = { ... }`, unwrapped from `as` / `satisfies`. */
function exportedOptions(source: ts.SourceFile): ts.ObjectLiteralExpression | undefined {
  for (const statement of source.statements) {
    if (!ts.isVariableStatement(statement) || !hasModifier(statement, ts.SyntaxKind.ExportKeyword)) continue;
    for (const declaration of statement.declarationList.declarations) {
      if (
        !ts.isIdentifier(declaration.name) ||
        declaration.name.text !== 'options' ||
        !declaration.initializer
      ) {
        continue;
      }
      const value = unwrap(declaration.initializer);
      return ts.isObjectLiteralExpression(value) ? value : undefined;
    }
  }
  return undefined;
}

/** metric → threshold expressions, for the literal entries of `options.thresholds` (spreads are skipped). */
function thresholdsOf(options: ts.ObjectLiteralExpression): Map<string, string[]> | undefined {
  const value = property(options, 'thresholds');
  if (value === undefined || !ts.isObjectLiteralExpression(unwrap(value))) return undefined;
  const result = new Map<string, string[]>();
  for (const element of (unwrap(value) as ts.ObjectLiteralExpression).properties) {
    if (!ts.isPropertyAssignment(element)) continue;
    const name = propertyName(element.name);
    const list = unwrap(element.initializer);
    if (name === undefined || !ts.isArrayLiteralExpression(list)) {
      throw new Error(`threshold ${element.name.getText()} is not a literal array`);
    }
    result.set(
      name,
      list.elements.map((item) => {
        const entry = unwrap(item);
        if (ts.isStringLiteral(entry) || ts.isNoSubstitutionTemplateLiteral(entry)) return entry.text;
        const threshold = ts.isObjectLiteralExpression(entry) ? property(entry, 'threshold') : undefined;
        if (threshold !== undefined && ts.isStringLiteral(threshold)) return threshold.text;
        throw new Error(`threshold ${name}: entry ${item.getText()} is neither a string nor { threshold }`);
      }),
    );
  }
  return result;
}

/** Executors named by the scenarios of `options.scenarios`. */
function executorsOf(options: ts.ObjectLiteralExpression): string[] {
  const scenarios = property(options, 'scenarios');
  if (scenarios === undefined || !ts.isObjectLiteralExpression(unwrap(scenarios))) return [];
  const executors: string[] = [];
  for (const element of (unwrap(scenarios) as ts.ObjectLiteralExpression).properties) {
    if (!ts.isPropertyAssignment(element) || !ts.isObjectLiteralExpression(unwrap(element.initializer)))
      continue;
    const executor = property(unwrap(element.initializer) as ts.ObjectLiteralExpression, 'executor');
    if (executor !== undefined && ts.isStringLiteral(executor)) executors.push(executor.text);
  }
  return executors;
}

function hasDefaultFunctionExport(source: ts.SourceFile): boolean {
  return source.statements.some(
    (statement) =>
      (ts.isFunctionDeclaration(statement) &&
        hasModifier(statement, ts.SyntaxKind.ExportKeyword) &&
        hasModifier(statement, ts.SyntaxKind.DefaultKeyword)) ||
      (ts.isExportAssignment(statement) &&
        !statement.isExportEquals &&
        (ts.isFunctionExpression(unwrap(statement.expression)) ||
          ts.isArrowFunction(unwrap(statement.expression)))),
  );
}

function exportsFunction(source: ts.SourceFile, name: string): boolean {
  return source.statements.some(
    (statement) =>
      ts.isFunctionDeclaration(statement) &&
      statement.name?.text === name &&
      hasModifier(statement, ts.SyntaxKind.ExportKeyword),
  );
}

function importsFrom(source: ts.SourceFile): string[] {
  return source.statements
    .filter(ts.isImportDeclaration)
    .map((statement) => (statement.moduleSpecifier as ts.StringLiteral).text);
}

describe('k6 load-test scripts (loadtest/k6)', () => {
  it('type-check against @types/k6 with zero diagnostics', () => {
    const project = loadProject();
    const checked = project.fileNames.map((fileName) => path.relative(K6_DIR, fileName)).sort();
    expect(checked).toEqual(expect.arrayContaining(['lib.ts', ...SCENARIOS.map((s) => s.file)]));

    const diagnostics = typeCheck();
    if (diagnostics.length > 0) {
      throw new Error(`${diagnostics.length} TypeScript diagnostic(s):\n${formatDiagnostics(diagnostics)}`);
    }
  });

  it('the type check does catch errors (k6 types loaded, no DOM/Node globals)', () => {
    const canary = path.join(K6_DIR, '__canary__.ts');
    const lines = [
      "import http from 'k6/http';",
      "import { CODES } from './lib.ts';",
      "export const status: string = http.get('http://localhost/').status;",
      "export const code: 'sold out' = CODES.SOLD_OUT;",
      'export const title = document.title;',
      'export const env = process.env.BASE_URL;',
      "export const pending = fetch('http://localhost/');",
    ];
    const diagnostics = typeCheck({ [canary]: lines.join('\n') });
    const lineOf = (diagnostic: ts.Diagnostic): number =>
      diagnostic.file !== undefined && diagnostic.start !== undefined
        ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line
        : -1;
    const elsewhere = diagnostics.filter((d) => d.file?.fileName !== canary);
    expect(formatDiagnostics(elsewhere)).toBe('');
    const failingLines = new Set(diagnostics.map(lineOf));
    // Lines 0-1 are valid imports; every other line must be rejected.
    expect([...failingLines].sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6]);
  });

  describe.each(SCENARIOS)('$file', (spec) => {
    const source = parse(spec.file);
    const options = exportedOptions(source);

    it('exports `options` with scenarios and thresholds', () => {
      expect(options).toBeDefined();
      const thresholds = thresholdsOf(options!);
      expect(thresholds).toBeDefined();
      expect(thresholds!.size).toBeGreaterThan(0);
      for (const [metric, expressions] of thresholds!) {
        // Every threshold has at least one expression (the metric name shows up in a failure).
        expect({ metric, expressions }).toEqual({
          metric,
          expressions: expect.arrayContaining([expect.any(String)]),
        });
      }
      for (const [metric, expression] of Object.entries(spec.thresholds)) {
        expect({ metric, expressions: thresholds!.get(metric) }).toEqual({
          metric,
          expressions: expect.arrayContaining([expression]),
        });
      }
      expect(executorsOf(options!)).toEqual([spec.executor]);
    });

    it('exports a default function, setup() and teardown()', () => {
      expect(hasDefaultFunctionExport(source)).toBe(true);
      expect(exportsFunction(source, 'setup')).toBe(true);
      expect(exportsFunction(source, 'teardown')).toBe(true);
    });

    it('imports only k6 modules and ./lib.ts', () => {
      const imports = importsFrom(source);
      expect(imports).toContain('./lib.ts');
      for (const specifier of imports) expect(specifier).toMatch(/^(k6(\/[a-z/-]+)?|\.\/lib\.ts)$/);
    });
  });
});

describe('the README bundling recipe for k6 before 0.57 (loadtest/k6/README.md)', () => {
  const readme = fs.readFileSync(path.join(K6_DIR, 'README.md'), 'utf8');
  const recipe = /npx esbuild (\S+) ([^\n]+?) \\\n\s+([^\n]+)/.exec(readme);
  const flags = recipe ? `${recipe[2]} ${recipe[3]}`.split(/\s+/).map((f) => f.replace(/^'|'$/g, '')) : [];
  const flag = (name: string) => flags.filter((f) => f.startsWith(`--${name}`)).map((f) => f.split('=')[1]);
  /** Old k6 runs its Babel stage over the script: ES2015 is what it accepts whole. */
  const es2015 = (code: string) => acorn.parse(code, { ecmaVersion: 2015, sourceType: 'module' });

  it('is the documented esbuild command, targeting ES2015', () => {
    expect(recipe).not.toBeNull();
    expect(flags).toEqual(
      expect.arrayContaining(['--bundle', '--format=esm', '--external:k6', '--external:k6/*']),
    );
    expect(flag('target')).toEqual(['es2015']);
  });

  it('the ES2015 check rejects the syntax old k6 stumbled on', () => {
    expect(() => es2015('export const a = globalThis.x ?? 1;')).toThrow();
    expect(() => es2015('export const a = globalThis.x?.y;')).toThrow();
    expect(() => es2015('export const a = { ...globalThis };')).toThrow();
    expect(() => es2015('export const a = (x) => x + 1;')).not.toThrow();
  });

  it.each(SCENARIOS.map((s) => s.file))(
    'bundles %s into ES2015 that leaves k6 modules external',
    async (file) => {
      const out = await esbuild.build({
        entryPoints: [path.join(K6_DIR, file)],
        bundle: true,
        format: 'esm',
        target: flag('target')[0],
        external: ['k6', 'k6/*'],
        write: false,
        logLevel: 'silent',
      });
      const code = out.outputFiles[0].text;
      expect(() => es2015(code)).not.toThrow();
      expect(code).toMatch(/from "k6\/http"/);
      expect(code).not.toMatch(/\.\/lib\.ts/);
    },
  );
});
