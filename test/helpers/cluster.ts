import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { connect, type JetStreamManager, type NatsConnection, type StreamInfo } from 'nats';
import { freePort, waitFor } from './processes';
import { TcpProxy } from './tcp-proxy';

/**
 * Clusters of real servers for the scale-out tests (SPEC §8): nats-server ×3 with JetStream in
 * cluster mode, and redis-server primary + replica watched by three `redis-server --sentinel`. Every
 * server listens on a free loopback port with its files in a temporary folder of its own; the test
 * owns them, kills and restarts them, and `stop()` (or the test process's exit) removes them all.
 * The shared servers on the standard ports are never involved.
 */

const live = new Set<ServerProcess>();
const folders = new Set<string>();
process.once('exit', () => {
  for (const server of live) server.forceKill();
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

const MAX_LINES = 200;

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** One server binary with a fixed command line: started, killed (SIGKILL) and started again. */
export class ServerProcess {
  private child?: ChildProcess;
  private exited: Promise<void> = Promise.resolve();
  private readonly lines: string[] = [];

  constructor(
    readonly name: string,
    readonly port: number,
    private readonly command: string,
    private readonly args: string[],
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the server and waits until its port accepts connections. */
  async start(): Promise<void> {
    const child = spawn(this.command, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    live.add(this);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        live.delete(this);
        this.record(`[exited: code ${code}, signal ${signal}]`);
        resolve();
      }),
    );
    child.once('error', (err) => this.record(`[spawn error: ${err.message}]`));
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => chunk.split('\n').forEach((l) => l && this.record(l)));
    }
    await waitFor(
      async () => ((await portOpen(this.port)) ? true : undefined),
      20_000,
      () => `${this.name} is not listening on ${this.port}\n${this.output()}`,
      50,
    );
  }

  /** SIGKILL (a crash: nothing flushed, no goodbye to the peers), and wait for the exit. */
  async kill(): Promise<void> {
    this.forceKill();
    await this.exited;
  }

  forceKill(): void {
    if (this.running) this.child!.kill('SIGKILL');
  }

  output(last = 40): string {
    return `--- ${this.name} (port ${this.port}) ---\n${this.lines.slice(-last).join('\n')}`;
  }

  private record(line: string): void {
    this.lines.push(line);
    if (this.lines.length > MAX_LINES) this.lines.shift();
  }
}

/** A temporary folder for a cluster's configuration and data, removed by `remove()`. */
function tempFolder(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  folders.add(dir);
  return {
    dir,
    remove: () => {
      folders.delete(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface NatsNode {
  /** The server name JetStream reports (e.g. as a stream's leader). */
  name: string;
  server: ServerProcess;
}

/** nats-server ×N in one cluster with JetStream, each with its own store. */
export class NatsCluster {
  private nc?: NatsConnection;

  private constructor(
    readonly nodes: NatsNode[],
    private readonly folder: { dir: string; remove(): void },
  ) {}

  static async start(size = 3): Promise<NatsCluster> {
    const folder = tempFolder('nats-cluster-');
    const ports = await Promise.all(Array.from({ length: size * 2 }, freePort));
    const clientPorts = ports.slice(0, size);
    const routePorts = ports.slice(size);
    const nodes = clientPorts.map((port, i) => {
      const name = `n${i + 1}`;
      const store = path.join(folder.dir, name);
      mkdirSync(store);
      const routes = routePorts.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p}`);
      const file = path.join(folder.dir, `${name}.conf`);
      writeFileSync(
        file,
        [
          `server_name: ${name}`,
          `listen: 127.0.0.1:${port}`,
          `jetstream { store_dir: "${store}", max_memory_store: 268435456, max_file_store: 1073741824 }`,
          `cluster { name: miaosha-test, listen: 127.0.0.1:${routePorts[i]}, routes: [${routes.join(', ')}] }`,
        ].join('\n'),
      );
      return { name, server: new ServerProcess(`nats ${name}`, port, 'nats-server', ['-c', file]) };
    });
    const cluster = new NatsCluster(nodes, folder);
    try {
      await Promise.all(nodes.map((n) => n.server.start()));
      // JetStream answers once the cluster has elected its meta leader.
      await waitFor(
        async () => ((await (await cluster.jsm()).getAccountInfo()) ? true : undefined),
        30_000,
        () => `JetStream of the cluster is not available\n${cluster.output()}`,
        250,
      );
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** `NATS_URL` for the service: every node. */
  get url(): string {
    return this.nodes.map((n) => `nats://127.0.0.1:${n.server.port}`).join(',');
  }

  /** A management connection of the test, to whichever nodes are up. */
  async jsm(): Promise<JetStreamManager> {
    this.nc ??= await connect({
      servers: this.nodes.map((n) => `127.0.0.1:${n.server.port}`),
      name: 'cluster-test',
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
    });
    return this.nc.jetstreamManager({ timeout: 2000 });
  }

  streamInfo(stream: string): Promise<StreamInfo> {
    return this.jsm().then((jsm) => jsm.streams.info(stream));
  }

  /** The node leading a stream, once it has a leader. */
  async leaderOf(stream: string, timeoutMs = 30_000): Promise<NatsNode> {
    return waitFor(
      async () => {
        const leader = (await this.streamInfo(stream)).cluster?.leader;
        return this.nodes.find((n) => n.name === leader && n.server.running);
      },
      timeoutMs,
      () => `stream ${stream} has no leader among the running nodes\n${this.output()}`,
      100,
    );
  }

  /** Waits until `node` is a current replica of the stream again (it rejoined and caught up). */
  async waitCurrentReplica(stream: string, node: NatsNode, timeoutMs = 60_000): Promise<void> {
    await waitFor(
      async () => {
        const cluster = (await this.streamInfo(stream)).cluster;
        if (cluster?.leader === node.name) return true;
        return cluster?.replicas?.some((r) => r.name === node.name && r.current && !r.offline)
          ? true
          : undefined;
      },
      timeoutMs,
      () => `${node.name} did not rejoin stream ${stream}\n${this.output()}`,
      250,
    );
  }

  output(): string {
    return this.nodes.map((n) => n.server.output(15)).join('\n');
  }

  async stop(): Promise<void> {
    await this.nc?.close().catch(() => undefined);
    await Promise.all(this.nodes.map((n) => n.server.kill()));
    this.folder.remove();
  }
}

const SENTINEL_NAME = 'mymaster';

/**
 * redis-server primary + replica, watched by three sentinels (quorum 2, failover after 1 s down).
 * The replica replicates through a proxy the test owns (`link`): cutting it makes the replica miss
 * the primary's next writes, so a failover promotes a replica that lost recent writes. (A sentinel
 * would point a replica with an unexpected master address back at the primary, but only after the
 * failover timeout, 60 s here: longer than a test.)
 */
export class RedisSentinelSet {
  readonly name = SENTINEL_NAME;

  private constructor(
    readonly primary: ServerProcess,
    readonly replica: ServerProcess,
    readonly sentinels: ServerProcess[],
    readonly link: TcpProxy,
    private readonly folder: { dir: string; remove(): void },
  ) {}

  static async start(): Promise<RedisSentinelSet> {
    const folder = tempFolder('redis-sentinel-');
    const [primaryPort, replicaPort, ...sentinelPorts] = await Promise.all(
      Array.from({ length: 5 }, freePort),
    );
    const link = await TcpProxy.start(primaryPort);
    const redis = (name: string, port: number, extra: string[] = []) => {
      const dir = path.join(folder.dir, name);
      mkdirSync(dir);
      const args = [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
      ];
      return new ServerProcess(`redis ${name}`, port, 'redis-server', [...args, ...extra]);
    };
    const primary = redis('primary', primaryPort);
    const replica = redis('replica', replicaPort, ['--replicaof', '127.0.0.1', String(link.port)]);
    // A sentinel rewrites its configuration file (what it learned), so each has its own.
    const sentinels = sentinelPorts.map((port, i) => {
      const file = path.join(folder.dir, `sentinel-${i + 1}.conf`);
      writeFileSync(
        file,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${folder.dir}`,
          `sentinel monitor ${SENTINEL_NAME} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_NAME} 1000`,
          `sentinel failover-timeout ${SENTINEL_NAME} 60000`,
          `sentinel parallel-syncs ${SENTINEL_NAME} 1`,
        ].join('\n') + '\n',
      );
      return new ServerProcess(`sentinel ${i + 1}`, port, 'redis-server', [file, '--sentinel']);
    });
    const set = new RedisSentinelSet(primary, replica, sentinels, link, folder);
    try {
      await primary.start();
      await replica.start();
      await Promise.all(sentinels.map((s) => s.start()));
      await set.waitWatched();
    } catch (err) {
      await set.stop();
      throw err;
    }
    return set;
  }

  /** `REDIS_SENTINELS` for the service. */
  get sentinelList(): string {
    return this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',');
  }

  /** Runs `command` on a short-lived connection to a server. */
  async ask<T>(port: number, command: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
    redis.on('error', () => undefined);
    try {
      await redis.connect();
      return await command(redis);
    } finally {
      redis.disconnect();
    }
  }

  /** The primary's port as the first sentinel that answers sees it. */
  async primaryPort(): Promise<number> {
    for (const sentinel of this.sentinels.filter((s) => s.running)) {
      try {
        const addr = await this.ask(sentinel.port, (r) =>
          r.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_NAME),
        );
        return Number((addr as string[])[1]);
      } catch {
        // try the next one
      }
    }
    throw new Error(`no sentinel answered\n${this.output()}`);
  }

  /** Waits until the replica is in sync and every sentinel knows the replica and the other sentinels. */
  private async waitWatched(): Promise<void> {
    await waitFor(
      async () => {
        const info = await this.ask(this.replica.port, (r) => r.info('replication'));
        if (!/master_link_status:up/.test(info)) return undefined;
        for (const s of this.sentinels) {
          const [replicas, peers] = await this.ask(s.port, (r) =>
            Promise.all([
              r.call('SENTINEL', 'replicas', SENTINEL_NAME),
              r.call('SENTINEL', 'sentinels', SENTINEL_NAME),
            ]),
          );
          if ((replicas as unknown[]).length < 1 || (peers as unknown[]).length < this.sentinels.length - 1)
            return undefined;
        }
        return true;
      },
      60_000,
      () => `the sentinels do not watch primary and replica yet\n${this.output()}`,
      250,
    );
  }

  /** Waits until the sentinels name `port` as the primary and it answers as one. */
  async waitPrimary(port: number, timeoutMs = 60_000): Promise<void> {
    await waitFor(
      async () => {
        if ((await this.primaryPort()) !== port) return undefined;
        const role = await this.ask(port, (r) => r.info('replication'));
        return /role:master/.test(role) ? true : undefined;
      },
      timeoutMs,
      () => `the sentinels did not promote port ${port}\n${this.output()}`,
      100,
    );
  }

  output(): string {
    return [this.primary, this.replica, ...this.sentinels].map((s) => s.output(10)).join('\n');
  }

  /** The replication offset a server has reached (primary: written, replica: received). */
  async replicationOffset(port: number): Promise<number> {
    const info = await this.ask(port, (r) => r.info('replication'));
    return Number(/^(?:master_repl_offset|slave_repl_offset):(\d+)/m.exec(info)?.[1] ?? NaN);
  }

  async stop(): Promise<void> {
    await Promise.all([this.primary, this.replica, ...this.sentinels].map((s) => s.kill()));
    await this.link.close();
    this.folder.remove();
  }
}
