import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ServiceBroker } from 'moleculer';
import { parse } from 'yaml';
import { CONFIG_DEFAULTS, loadConfig } from '../../config';
import { registerMetrics } from '../../lib/metrics';
import { brokerOptions } from '../../moleculer.config';

/**
 * The compose set-up (compose.yaml, deploy/) cannot be started here (no Docker): what can be checked
 * is that it fits the service — the ports are the ones the configuration's defaults and the docs
 * name, the cluster profile's pieces point at each other, Prometheus scrapes the service's port and
 * path, and every metric the Grafana dashboard queries is one the service registers.
 */

const ROOT = path.join(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface ComposeService {
  image: string;
  command?: string[];
  ports?: string[];
  profiles?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
}
const compose = parse(read('compose.yaml'), { merge: true }) as { services: Record<string, ComposeService> };
const services = compose.services;

const portOf = (url: string) => new URL(url.split(',')[0]).port;
/** The value of a `--flag=value` argument. */
const flag = (service: ComposeService, name: string) =>
  service.command?.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
/** The argument after `--flag`. */
const after = (service: ComposeService, name: string) =>
  service.command?.[service.command.indexOf(`--${name}`) + 1];

describe('compose.yaml', () => {
  it('publishes PostgreSQL, Redis and NATS (with JetStream) on the ports the defaults use', () => {
    expect(services.postgres.ports).toEqual([`5432:${portOf(CONFIG_DEFAULTS.DATABASE_URL)}`]);
    expect(services.redis.ports).toEqual([`6379:${portOf(CONFIG_DEFAULTS.REDIS_URL)}`]);
    expect(services.nats.ports).toContain(`4222:${portOf(CONFIG_DEFAULTS.NATS_URL)}`);
    expect(services.nats.command).toContain('-js');
    for (const name of ['postgres', 'redis', 'nats']) expect(services[name].profiles).toBeUndefined();
  });

  it('has a 3-node NATS cluster whose routes are the other nodes, with JetStream', () => {
    const nodes = ['nats-1', 'nats-2', 'nats-3'].map((n) => services[n]);
    const routes = nodes.map((n) => new URL(flag(n, 'cluster')!).port);
    nodes.forEach((node, i) => {
      expect(node.profiles).toEqual(['cluster']);
      expect(node.command).toContain('-js');
      const peers = flag(node, 'routes')!
        .split(',')
        .map((r) => new URL(r).port);
      expect(peers.sort()).toEqual(routes.filter((_, j) => j !== i).sort());
    });
    // The NATS_URL the docs give for the profile.
    const url = nodes.map((n) => `nats://127.0.0.1:${flag(n, 'port')}`).join(',');
    expect(read('docs/scale-out.md')).toContain(url);
    expect(() => loadConfig({ NATS_URL: url })).not.toThrow();
  });

  it('has Redis with a replica of the primary and three sentinels watching it', () => {
    const primaryPort = after(services['redis-primary'], 'port')!;
    expect(services['redis-replica'].command?.join(' ')).toContain(`--replicaof 127.0.0.1 ${primaryPort}`);
    const sentinel = read('deploy/redis/sentinel.conf');
    const name = CONFIG_DEFAULTS.REDIS_SENTINEL_NAME;
    expect(sentinel).toMatch(new RegExp(`^sentinel monitor ${name} 127\\.0\\.0\\.1 ${primaryPort} 2$`, 'm'));
    const ports = ['sentinel-1', 'sentinel-2', 'sentinel-3'].map(
      (s) => services[s].environment?.SENTINEL_PORT,
    );
    expect(new Set(ports).size).toBe(3);
    const list = ports.map((p) => `127.0.0.1:${p}`).join(',');
    expect(read('docs/scale-out.md')).toContain(`REDIS_SENTINELS=${list}`);
    expect(loadConfig({ REDIS_SENTINELS: list }).redisSentinels?.hosts).toHaveLength(3);
  });
});

describe('Prometheus and Grafana', () => {
  const prometheus = parse(read('deploy/prometheus/prometheus.yml')) as {
    scrape_configs: { metrics_path: string; static_configs: { targets: string[] }[] }[];
  };

  it('scrapes the service on its port and metrics path', () => {
    const [job] = prometheus.scrape_configs;
    expect(job.metrics_path).toBe('/metrics');
    expect(read('services/api.service.ts')).toContain("'GET metrics'");
    const targets = job.static_configs.flatMap((c) => c.targets);
    expect(targets.map((t) => t.split(':')[1])).toEqual([CONFIG_DEFAULTS.PORT]);
  });

  it('gives Grafana the Prometheus the compose file publishes, and its dashboards folder', () => {
    const datasources = parse(read('deploy/grafana/provisioning/datasources/prometheus.yaml')) as {
      datasources: { url: string }[];
    };
    const [containerPort] = services.prometheus.ports![0].split(':').slice(-1);
    expect(datasources.datasources[0].url).toBe(`http://prometheus:${containerPort}`);
    const providers = parse(read('deploy/grafana/provisioning/dashboards/miaosha.yaml')) as {
      providers: { options: { path: string } }[];
    };
    const mounted = services.grafana.volumes!.map((v) => v.split(':'));
    expect(mounted).toContainEqual([
      './deploy/grafana/dashboards',
      providers.providers[0].options.path,
      'ro',
    ]);
  });

  it('queries only metrics the service exports', async () => {
    const options = brokerOptions(loadConfig({ NODE_ENV: 'test' }));
    const broker = new ServiceBroker({
      ...options,
      transporter: undefined,
      logger: false,
      // Moleculer leaves the process metrics out when NODE_ENV is "test"; a deployment has them.
      metrics: { ...(options.metrics as object), collectProcessMetrics: true },
    });
    registerMetrics(broker);
    await broker.start();
    let exported: Map<string, string>;
    try {
      // Registered metrics as the Prometheus reporter names them (dots and dashes become "_").
      const list = broker.metrics.list() as { name: string; type: string }[];
      exported = new Map(list.map((m) => [m.name.replace(/[.-]/g, '_'), m.type]));
    } finally {
      await broker.stop();
    }
    const dashboard = JSON.parse(read('deploy/grafana/dashboards/miaosha.json')) as {
      panels: { targets: { expr: string }[] }[];
    };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(5);
    const used = new Set(exprs.flatMap((e) => e.match(/\b(?:miaosha|moleculer|process|os)_\w+/g) ?? []));
    const unknown = [...used].filter((name) => {
      if (exported.has(name)) return false;
      const base = name.replace(/_(bucket|sum|count)$/, '');
      return exported.get(base) !== 'histogram';
    });
    expect(unknown).toEqual([]);
    expect([...used].some((n) => n.startsWith('miaosha_'))).toBe(true);
  });
});
