import { existsSync } from 'node:fs';
import path from 'node:path';

/** The repository root, from source (tsx, Jest) or from the build in dist/. */
export function projectRoot(from = __dirname): string {
  let dir = from;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
  return dir;
}

export const publicDir = (): string => path.join(projectRoot(), 'public');
