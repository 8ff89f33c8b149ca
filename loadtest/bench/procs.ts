import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '..', '..');

/** What a child runs: the production build by default, or the TypeScript source through tsx. */
export interface Entry {
  /** Path of the compiled file, relative to the repository root. */
  dist: string;
  /** Path of the TypeScript source, relative to the repository root. */
  source: string;
}

export const SERVICE_ENTRY: Entry = { dist: 'dist/app/main.js', source: 'app/main.ts' };
export const ECHO_ENTRY: Entry = {
  dist: 'dist/loadtest/bench/echo-server.js',
  source: 'loadtest/bench/echo-server.ts',
};

export const FLOOR_ENTRY: Entry = {
  dist: 'dist/loadtest/bench/floor-server.js',
  source: 'loadtest/bench/floor-server.ts',
};

export function entryArgs(entry: Entry, fromSource: boolean): string[] {
  if (fromSource) return ['--import', 'tsx', join(ROOT, entry.source)];
  const file = join(ROOT, entry.dist);
  if (!existsSync(file)) {
    throw new Error(`${entry.dist} is missing: build first (npm run bench does), or pass --from-source`);
  }
  return [file];
}

/** A free TCP port on the loopback interface (the child binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export type Role = 'gateway' | 'worker' | 'baseline';

/** One child process of the benchmark: a service node or a baseline (the echo, the floor). */
export class Child {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  exitCode: number | null | undefined = undefined;
  /** The last lines it wrote (stdout and stderr), for the report when something goes wrong. */
  readonly tail: string[] = [];
  logLines = 0;
  private stopping = false;

  constructor(
    readonly name: string,
    readonly role: Role,
    readonly port: number | null,
    args: string[],
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Each service process in its own session, as a process manager starts separate services: the
      // scheduler then weighs them apart (and a worker's WORKER_NICE holds against the servers).
      detached: role !== 'baseline',
    });
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        this.logLines++;
        this.tail.push(line.length > 500 ? `${line.slice(0, 500)}…` : line);
        if (this.tail.length > 40) this.tail.shift();
      }
    };
    this.child.stdout?.on('data', collect);
    this.child.stderr?.on('data', collect);
    this.exited = new Promise((resolveExit) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        resolveExit(this.exitCode);
      });
      this.child.once('error', (err) => {
        this.tail.push(`spawn failed: ${err.message}`);
        this.exitCode = -1;
        resolveExit(-1);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  get url(): string {
    if (this.port === null) throw new Error(`${this.name} serves no HTTP`);
    return `http://127.0.0.1:${this.port}`;
  }

  /** SIGTERM (graceful broker stop), then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running || this.stopping) {
      await this.exited;
      return;
    }
    this.stopping = true;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Synchronous last resort (process 'exit' handler): nothing async can run there. */
  killNow(): void {
    if (this.running) this.child.kill('SIGKILL');
  }

  describeExit(): string {
    return `${this.name} exited (code ${this.exitCode}); last output:\n  ${this.tail.slice(-15).join('\n  ')}`;
  }
}

/** Polls `url` until it answers 200, the child dies, or the deadline passes. */
export async function waitHealthy(child: Child, path = '/health', timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (!child.running) throw new Error(child.describeExit());
    try {
      const res = await fetch(child.url + path, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${child.name} not healthy after ${timeoutMs} ms (${last})`);
}
