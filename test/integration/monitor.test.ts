import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServiceBroker } from 'moleculer';
import { loadConfig } from '../../config';
import { createBroker } from '../../app/broker';
import type { Alert, MonitorSnapshot } from '../../lib/monitor/types';
import { openMonitorStreams } from '../../lib/monitor/stream';
import type { WebhookPayload } from '../../lib/monitor/webhook';
import { eventually, isolatedEnv, readSse, startApp, type TestApp } from '../helpers/app';

// ---------------------------------------------------------------------------------------------
// A strict parser for the Prometheus text exposition format (version 0.0.4).

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const HELP_LINE = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE_LINE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE_LINE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/;

function parseValue(text: string, line: number): number {
  if (text === 'NaN') return NaN;
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text))
    throw new Error(`line ${line}: bad value "${text}"`);
  return Number(text);
}

function parseLabels(text: string, line: number): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length > 0) {
    const m = LABEL.exec(rest);
    if (!m) throw new Error(`line ${line}: bad labels "${text}"`);
    if (m[1] in labels) throw new Error(`line ${line}: duplicate label ${m[1]}`);
    labels[m[1]] = m[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    rest = rest.slice(m[0].length);
    if (m[3] === '' && rest.length > 0) throw new Error(`line ${line}: text after labels`);
  }
  return labels;
}

/**
 * Every line is a HELP, a TYPE or a sample; each family's TYPE comes before its samples, which
 * follow it without another family in between (Moleculer adds _min/_mean/... beside _sum/_count).
 */
function parsePrometheus(text: string): Exposition {
  const out: Exposition = { types: new Map(), help: new Map(), samples: [] };
  let family: string | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    if (raw === '') return;
    let m: RegExpExecArray | null;
    if ((m = HELP_LINE.exec(raw))) {
      if (out.help.has(m[1])) throw new Error(`line ${line}: second HELP for ${m[1]}`);
      out.help.set(m[1], m[2]);
      return;
    }
    if ((m = TYPE_LINE.exec(raw))) {
      if (out.types.has(m[1])) throw new Error(`line ${line}: second TYPE for ${m[1]}`);
      out.types.set(m[1], m[2]);
      family = m[1];
      return;
    }
    if (raw.startsWith('#')) throw new Error(`line ${line}: unexpected comment "${raw}"`);
    m = SAMPLE_LINE.exec(raw);
    if (!m) throw new Error(`line ${line}: not a sample "${raw}"`);
    const [, name, labelText, valueText] = m;
    if (!family || (name !== family && !name.startsWith(`${family}_`))) {
      throw new Error(`line ${line}: sample ${name} outside its family (current: ${family})`);
    }
    out.samples.push({
      name,
      labels: parseLabels(labelText ?? '', line),
      value: parseValue(valueText, line),
    });
  });
  return out;
}

const sum = (samples: Sample[], name: string, labels: Record<string, string>) =>
  samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);

// ---------------------------------------------------------------------------------------------
// A minimal Server-Sent Events client.

interface SseEvent {
  event: string;
  data: unknown;
}

class SseClient {
  readonly events: SseEvent[] = [];
  status = 0;
  contentType = '';
  private readonly abort = new AbortController();
  private ended = false;

  static async open(url: string): Promise<SseClient> {
    const client = new SseClient();
    const res = await fetch(url, { signal: client.abort.signal });
    client.status = res.status;
    client.contentType = res.headers.get('content-type') ?? '';
    if (res.body) void client.pump(res.body.getReader());
    return client;
  }

  private async pump(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    try {
      await readSse(reader, (frame) => this.events.push(frame));
    } catch {
      // aborted by close()
    } finally {
      this.ended = true;
    }
  }

  of<T>(event: string): T[] {
    return this.events.filter((e) => e.event === event).map((e) => e.data as T);
  }

  /** Resolves with the first event of that kind matching, waiting for it to arrive. */
  waitFor<T>(event: string, match: (data: T) => boolean = () => true): Promise<T> {
    return eventually(
      async () => {
        const found = this.of<T>(event).find(match);
        if (found === undefined && this.ended) throw new Error('the stream ended');
        return found;
      },
      15_000,
      50,
    );
  }

  close(): void {
    this.abort.abort();
  }
}

// ---------------------------------------------------------------------------------------------

describe('monitoring', () => {
  const N = 8;
  let app: TestApp;
  let hookServer: Server;
  const hooks: WebhookPayload[] = [];
  let gateway2: ServiceBroker | undefined;

  beforeAll(async () => {
    hookServer = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        hooks.push(JSON.parse(body) as WebhookPayload);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => hookServer.listen(0, '127.0.0.1', resolve));
    const hookUrl = `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/alerts`;
    // Fast snapshots and short holds so alerts settle in well under a second.
    app = await startApp({ MONITOR_INTERVAL_MS: '200', ALERT_HOLD: '2', ALERT_WEBHOOK_URL: hookUrl });
  });

  afterAll(async () => {
    await gateway2?.stop();
    await app?.stop();
    hookServer.closeAllConnections();
    await new Promise((resolve) => hookServer.close(resolve));
  });

  const snapshot = async () => {
    const res = await app.get<MonitorSnapshot>('/api/monitor/snapshot');
    expect(res.status).toBe(200);
    expect(res.body.code).toBe(200);
    return res.body.data;
  };

  it('counts N purchases in /metrics (Prometheus text) and in the snapshot', async () => {
    const date = app.dates[0];
    const ids: string[] = [];
    for (let userId = 201; userId < 201 + N; userId++) {
      const res = await app.post<{ messageId: string }>('/api/tickets/v2/purchase', {
        userId,
        date,
        verifyHash: app.hash(userId, date),
      });
      expect(res.body.code).toBe(200);
      ids.push(res.body.data.messageId);
    }
    for (const id of ids) {
      const res = await app.get<{ status: string }>(
        `/api/tickets/v2/purchase/result?messageId=${id}&waitMs=10000`,
      );
      expect(res.body.data.status).toBe('SUCCESS');
    }

    const metrics = await eventually(async () => {
      const res = await fetch(`${app.baseUrl}/metrics`);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const parsed = parsePrometheus(await res.text());
      const success = sum(parsed.samples, 'miaosha_results_transitions_total', { status: 'SUCCESS' });
      // Gateways add their submit counts to the counter once per monitor interval.
      const accepted = sum(parsed.samples, 'miaosha_submits_total', { outcome: 'accepted' });
      return success === N && accepted === N ? parsed : undefined;
    });
    expect(metrics.types.get('miaosha_submits_total')).toBe('counter');
    expect(sum(metrics.samples, 'miaosha_submits_total', { outcome: 'accepted' })).toBe(N);
    expect(metrics.types.get('miaosha_results_transitions_total')).toBe('counter');
    expect(metrics.types.get('miaosha_queue_backlog')).toBe('gauge');
    expect(metrics.types.get('miaosha_queue_dead_letters')).toBe('gauge');
    expect(metrics.types.get('miaosha_processing_latency')).toBe('histogram');
    expect(sum(metrics.samples, 'miaosha_processing_latency_count', {})).toBe(N);
    // Every result read is counted by where it was answered.
    expect(metrics.types.get('miaosha_results_cache_total')).toBe('counter');

    const snap = await eventually(async () => {
      const s = await snapshot();
      // Submit counts come in their own per-interval report, results in the workers' batches.
      const done = s.results.totalSuccess === N && s.submits.total.accepted === N;
      // The queue reading trails the last acks by up to one interval.
      // Node readings trail the services' start by up to two intervals.
      const own = s.nodes.find((n) => n.nodeID === app.broker.nodeID);
      const listed = ['api', 'monitor', 'purchase', 'purchase-worker'].every((x) =>
        own?.services.includes(x),
      );
      return done && s.queue?.backlog === 0 && listed ? s : undefined;
    });
    expect(snap.submits.total.accepted).toBe(N);
    expect(snap.results.totalFailed).toBe(0);
    expect(snap.queue).toEqual(
      expect.objectContaining({ backlog: 0, waiting: 0, inProgress: 0, deadLetters: 0, consumers: 1 }),
    );
    expect(snap.dependencies).toEqual({ postgres: true, redis: true, nats: true });
    const self = snap.nodes.find((n) => n.nodeID === app.broker.nodeID);
    expect(self?.services).toEqual(expect.arrayContaining(['api', 'monitor', 'purchase', 'purchase-worker']));
    expect(self?.rssMb).toBeGreaterThan(0);
    expect(self?.heapUsedMb).toBeGreaterThan(0);
    expect(snap.alerts).toEqual([]);
    expect(Number.isNaN(Date.parse(snap.at))).toBe(false);
  });

  it('streams snapshots over SSE and lets go of a client that leaves', async () => {
    const sse = await SseClient.open(`${app.baseUrl}/api/monitor/stream`);
    expect(sse.status).toBe(200);
    expect(sse.contentType).toMatch(/^text\/event-stream/);
    await sse.waitFor<MonitorSnapshot>('snapshot', () => sse.of('snapshot').length >= 2);
    const [first, second] = sse.of<MonitorSnapshot>('snapshot');
    expect(Date.parse(second.at)).toBeGreaterThan(Date.parse(first.at));
    expect(second.results.totalSuccess).toBe(N);
    expect(openMonitorStreams()).toBe(1);
    sse.close();
    await eventually(async () => (openMonitorStreams() === 0 ? true : undefined));
  });

  it('raises the dead-letter alert: on the stream, at the endpoints, in the snapshot and at the webhook', async () => {
    const sse = await SseClient.open(`${app.baseUrl}/api/monitor/stream`);
    try {
      const queue = await app.rt.queue();
      await queue.js.publish(
        `${app.namespace}.purchase.${app.dates[0]}`,
        new TextEncoder().encode('not json'),
      );

      const raised = await sse.waitFor<Alert>('alert', (a) => a.rule === 'dead-letters' && !a.resolvedAt);
      expect(raised).toEqual(
        expect.objectContaining({
          severity: 'warning',
          value: 1,
          id: expect.stringMatching(/^dead-letters-\d+$/),
        }),
      );

      const alerts = await app.get<{ active: Alert[]; recent: Alert[] }>('/api/monitor/alerts');
      expect(alerts.body.code).toBe(200);
      expect(alerts.body.data.active.map((a) => a.id)).toContain(raised.id);
      expect(alerts.body.data.recent.map((a) => a.id)).toContain(raised.id);
      const adminAlerts = await app.get<{ active: Alert[] }>('/api/admin/alerts', app.admin);
      expect(adminAlerts.body.data.active.map((a) => a.id)).toContain(raised.id);
      expect((await app.get('/api/admin/alerts')).body.code).toBe(4001);

      const snap = await eventually(async () => {
        const s = await snapshot();
        return s.alerts.some((a) => a.id === raised.id) ? s : undefined;
      });
      expect(snap.queue?.deadLetters).toBe(1);

      const hook = await eventually(async () => hooks.find((h) => h.alert.id === raised.id));
      expect(hook).toEqual({
        event: 'alert.raised',
        alert: raised,
        namespace: app.namespace,
        nodeID: app.broker.nodeID,
        sentAt: expect.any(String),
      });
      const metrics = parsePrometheus(await (await fetch(`${app.baseUrl}/metrics`)).text());
      expect(sum(metrics.samples, 'miaosha_queue_dead_letters', {})).toBe(1);
      // Raised once: later snapshots keep it active without repeating it.
      await sse.waitFor<MonitorSnapshot>(
        'snapshot',
        (s) => Date.parse(s.at) > Date.parse(raised.raisedAt) + 600,
      );
      expect(sse.of<Alert>('alert').filter((a) => a.rule === 'dead-letters')).toHaveLength(1);
      expect(hooks.filter((h) => h.alert.rule === 'dead-letters')).toHaveLength(1);
    } finally {
      sse.close();
    }
  });

  it('serves snapshot and stream from a gateway without a monitor, and resolves the alert', async () => {
    const config = loadConfig(isolatedEnv(app.namespace, { SERVICES: 'api', MONITOR_INTERVAL_MS: '200' }));
    gateway2 = createBroker(config, `${app.namespace}-gw2-${process.pid}`);
    await gateway2.start();
    const api = gateway2.getLocalService('api') as unknown as { server: Server };
    const base = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
    const gw2Id = gateway2.nodeID;

    const snap = await eventually(async () => {
      const res = await fetch(`${base}/api/monitor/snapshot`);
      const body = (await res.json()) as { code: number; data: MonitorSnapshot };
      return body.code === 200 && body.data.nodes.some((n) => n.nodeID === gw2Id) ? body.data : undefined;
    });
    expect(snap.nodes.find((n) => n.nodeID === gw2Id)?.services).toEqual(['api']);

    const sse = await SseClient.open(`${base}/api/monitor/stream`);
    try {
      await sse.waitFor<MonitorSnapshot>('snapshot', () => sse.of('snapshot').length >= 2);
      const active = sse.of<MonitorSnapshot>('snapshot')[0].alerts.find((a) => a.rule === 'dead-letters');
      expect(active).toBeDefined();

      // Emptying the dead-letter queue resolves the alert, once.
      const queue = await app.rt.queue();
      const { letters } = await queue.deadLetters();
      for (const letter of letters) await queue.removeDeadLetter(letter.seq);
      const resolved = await sse.waitFor<Alert>('alert', (a) => a.id === active?.id && !!a.resolvedAt);
      expect(Date.parse(resolved.resolvedAt ?? '')).toBeGreaterThan(Date.parse(resolved.raisedAt));
      const hook = await eventually(async () =>
        hooks.find((h) => h.alert.id === active?.id && h.event === 'alert.resolved'),
      );
      expect(hook.alert).toEqual(resolved);
      const alerts = await app.get<{ active: Alert[]; recent: Alert[] }>('/api/monitor/alerts');
      expect(alerts.body.data.active.some((a) => a.rule === 'dead-letters')).toBe(false);
      expect(alerts.body.data.recent.find((a) => a.id === active?.id)?.resolvedAt).toBe(resolved.resolvedAt);
    } finally {
      sse.close();
    }
  });
});
