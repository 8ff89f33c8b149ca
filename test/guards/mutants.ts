import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GuardMutant } from '../../lib/guard-mutant';

/** How many times `find` occurs in `text`. */
const occurrences = (text: string, find: string) => text.split(find).length - 1;

/**
 * What is wrong with the mutant list against the tree at `root`: a `find` text that is missing or not
 * unique (the list has rotted), a no-op edit, a test file that does not exist, a name used twice.
 */
export function listProblems(root: string, mutants: readonly GuardMutant[]): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  for (const m of mutants) {
    if (names.has(m.name)) problems.push(`${m.name}: the name is used twice`);
    names.add(m.name);
    if (m.find === m.replace) problems.push(`${m.name}: the replacement changes nothing`);
    if (m.tests.length === 0) problems.push(`${m.name}: no test named`);
    for (const t of m.tests) if (!existsSync(join(root, t))) problems.push(`${m.name}: no test file ${t}`);
    if (!existsSync(join(root, m.file))) {
      problems.push(`${m.name}: no file ${m.file}`);
      continue;
    }
    const found = occurrences(readFileSync(join(root, m.file), 'utf8'), m.find);
    if (found !== 1) problems.push(`${m.name}: ${m.file} holds its find text ${found} times, not once`);
  }
  return problems;
}

/** The file's text with the mutant applied (its find text checked to be there once beforehand). */
export const mutated = (text: string, m: GuardMutant) => text.replace(m.find, () => m.replace);
