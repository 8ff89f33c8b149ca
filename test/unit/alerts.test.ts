import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { map, take, type Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import {
  AlertBook,
  alertRules,
  evaluateAlerts,
  initialRuleState,
  ruleAlerts,
  stepRule,
  type AlertRule,
  type AlertSettings,
} from '../../lib/monitor/alerts';
import { monitorSnapshots, percentile } from '../../lib/monitor/pipeline';
import type { Alert, MonitorSnapshot, QueueSnapshot } from '../../lib/monitor/types';
import { postWebhook, webhookPayload, type WebhookPayload } from '../../lib/monitor/webhook';
import type { ResultRecord } from '../../lib/purchase/results';

const SETTINGS: AlertSettings = { failureRatio: 0.5, backlogMax: 100, minSamples: 10, errorRatio: 0.1 };
const HOLD = 3;

type Patch = {
  queue?: Partial<QueueSnapshot> | null;
  dependencies?: Partial<MonitorSnapshot['dependencies']>;
  results?: Partial<MonitorSnapshot['results']['window']>;
  submits?: Record<string, number>;
};

/** A healthy snapshot, with the parts a rule reads replaced. */
function snap(patch: Patch = {}): MonitorSnapshot {
  const window = { success: 0, failed: 0, systemFailed: 0, ...patch.results };
  const queue =
    patch.queue === null
      ? null
      : {
          backlog: 0,
          waiting: 0,
          inProgress: 0,
          consumers: 1,
          deadLetters: 0,
          redelivered: 0,
          ...patch.queue,
        };
  return {
    at: new Date(0).toISOString(),
    windowSeconds: 10,
    submits: { perSec: 0, byOutcome: {}, total: {}, window: patch.submits ?? {} },
    results: {
      successPerSec: 0,
      failedPerSec: 0,
      successRatio: null,
      totalSuccess: 0,
      totalFailed: 0,
      systemFailedPerSec: 0,
      byStatus: {},
      window,
    },
    latency: { p50: null, p95: null, p99: null },
    queue,
    nodes: [],
    dependencies: { postgres: true, redis: true, nats: true, ...patch.dependencies },
    alerts: [],
  };
}

const rule = (name: string): AlertRule => {
  const found = alertRules(SETTINGS).find((r) => r.name === name);
  if (!found) throw new Error(`no rule ${name}`);
  return found;
};

const iso = (frame: number) => new Date(frame).toISOString();

function scheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

/** Stamps each snapshot with the virtual time it is emitted at, as the pipeline does. */
const stamped = (ts: TestScheduler, source: Observable<MonitorSnapshot>) =>
  source.pipe(map((s) => ({ ...s, at: iso(ts.now()) })));

/** Marble letters: g = good, b = bad, u = unknown (no evidence). */
const CASES: { rule: string; bad: Patch; good?: Patch; unknown?: Patch }[] = [
  {
    rule: 'failure-ratio',
    bad: { results: { success: 4, failed: 8, systemFailed: 7 } },
    // Many failures, but sold out / already bought: the sale working, not failing.
    good: { results: { success: 4, failed: 8, systemFailed: 1 } },
  },
  {
    rule: 'gateway-errors',
    bad: { submits: { accepted: 20, unavailable: 3, error: 1 } },
    good: { submits: { accepted: 20, sold_out: 200, unavailable: 1 } },
  },
  {
    rule: 'queue-backlog',
    bad: { queue: { backlog: 101 } },
    good: { queue: { backlog: 100 } },
    unknown: { queue: null },
  },
  {
    rule: 'queue-stalled',
    bad: { queue: { backlog: 5, consumers: 0 } },
    good: { queue: { backlog: 0, consumers: 0 } },
    unknown: { queue: null },
  },
  { rule: 'dead-letters', bad: { queue: { deadLetters: 2 } }, unknown: { queue: null } },
  { rule: 'dependency-postgres', bad: { dependencies: { postgres: false } } },
  { rule: 'dependency-redis', bad: { dependencies: { redis: false } } },
  { rule: 'dependency-nats', bad: { dependencies: { nats: false } } },
];

describe('alert rules (virtual time)', () => {
  describe.each(CASES)('$rule', ({ rule: name, bad, good, unknown }) => {
    const values = { g: snap(good), b: snap(bad), u: snap(unknown ?? good) };

    it('raises after HOLD bad snapshots, holds, and resolves after HOLD good ones', () => {
      const ts = scheduler();
      ts.run(({ cold, expectObservable }) => {
        const input = cold('g-b-b-b-b-b-g-g-g-g', values);
        const raised = { rule: name, id: `${name}-6`, raisedAt: iso(6) };
        expectObservable(
          stamped(ts, input).pipe(
            ruleAlerts(rule(name), HOLD),
            map((a: Alert) => ({ rule: a.rule, id: a.id, raisedAt: a.raisedAt, resolvedAt: a.resolvedAt })),
          ),
        ).toBe('------r---------s--', {
          r: { ...raised, resolvedAt: undefined },
          s: { ...raised, resolvedAt: iso(16) },
        });
      });
    });

    it('does not flap on single blips either way', () => {
      const ts = scheduler();
      ts.run(({ cold, expectObservable }) => {
        // Blips while clear, raise at 16, blips while active, resolve at 36.
        const input = cold('g-b-g-b-b-g-b-b-b-g-b-g-b-g-b-b-g-g-g-', values);
        expectObservable(
          stamped(ts, input).pipe(
            ruleAlerts(rule(name), HOLD),
            map((a) => a.resolvedAt ?? 'up'),
          ),
        ).toBe('----------------r-------------------s-', { r: 'up', s: iso(36) });
      });
    });

    it('keeps its state through snapshots without evidence', () => {
      const ts = scheduler();
      ts.run(({ cold, expectObservable }) => {
        // Unknown readings neither count towards a change nor break the streak.
        const input = cold('b-u-b-u-b-g-u-g-u-g', values);
        expectObservable(
          stamped(ts, input).pipe(
            ruleAlerts(rule(name), HOLD),
            map((a) => a.resolvedAt ?? 'up'),
          ),
        ).toBe(
          // Where the rule has no "unknown" reading, `u` is a good one and breaks every streak.
          unknown ? '--------r---------s' : '-------------------',
          { r: 'up', s: iso(18) },
        );
      });
    });
  });

  it('needs a minimum sample before a ratio rule fires', () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      const few = snap({ results: { success: 1, failed: 5, systemFailed: 5 }, submits: { unavailable: 9 } });
      const input = cold('a-a-a-a-a', { a: few });
      expectObservable(input.pipe(ruleAlerts(rule('failure-ratio'), HOLD))).toBe('---------');
      expectObservable(input.pipe(ruleAlerts(rule('gateway-errors'), HOLD))).toBe('---------');
    });
  });

  it('describes the condition with its value and keeps the latest reading while active', () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      const input = cold('a-a-a-b-c-c-c', {
        a: snap({ queue: { deadLetters: 1 } }),
        b: snap({ queue: { deadLetters: 4 } }),
        c: snap(),
      });
      const updates = stamped(ts, input).pipe(evaluateAlerts(alertRules(SETTINGS), HOLD));
      expectObservable(
        updates.pipe(map((u) => u.snapshot.alerts.map((a) => `${a.rule}:${a.value}`).join(',') || 'none')),
      ).toBe('a-b-c-d-e-f-g', {
        a: 'none',
        b: 'none',
        c: 'dead-letters:1',
        d: 'dead-letters:4',
        e: 'dead-letters:4',
        f: 'dead-letters:4',
        g: 'none',
      });
      expectObservable(
        updates.pipe(
          map((u) => u.changes.map((a) => `${a.severity} ${a.message} ${a.resolvedAt ?? ''}`).join()),
        ),
      ).toBe('a-b-c-d-e-f-g', {
        a: '',
        b: '',
        c: 'warning 1 message(s) in the dead-letter queue (see /api/admin/dlq) ',
        d: '',
        e: '',
        f: '',
        g: `warning 4 message(s) in the dead-letter queue (see /api/admin/dlq) ${iso(12)}`,
      });
    });
  });

  it('raises several rules independently', () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable }) => {
      const down = snap({ dependencies: { redis: false }, queue: { backlog: 500, consumers: 0 } });
      const updates = cold('d-d-d', { d: down }).pipe(evaluateAlerts(alertRules(SETTINGS), HOLD));
      expectObservable(
        updates.pipe(
          map((u) =>
            u.changes
              .map((a) => a.rule)
              .sort()
              .join(),
          ),
        ),
      ).toBe('a-a-b', {
        a: '',
        b: 'dependency-redis,queue-backlog,queue-stalled',
      });
    });
  });
});

describe('alert rules, exact readings', () => {
  const read = (name: string, patch: Patch) => rule(name).evaluate(snap(patch));

  it('names every rule with its severity', () => {
    expect(alertRules(SETTINGS).map((r) => `${r.name}:${r.severity}`)).toEqual([
      'failure-ratio:critical',
      'gateway-errors:critical',
      'queue-backlog:warning',
      'queue-stalled:critical',
      'dead-letters:warning',
      'dependency-postgres:critical',
      'dependency-redis:critical',
      'dependency-nats:critical',
    ]);
  });

  it('failure-ratio: the share of system failures, from the minimum sample, above the threshold', () => {
    expect(read('failure-ratio', { results: { success: 4, failed: 8, systemFailed: 7 } })).toEqual({
      firing: true,
      value: 0.583,
      message: '58.3% of 12 purchases failed for a system reason in the last 10s (threshold 50%)',
    });
    // Exactly the minimum sample fires; exactly the threshold does not.
    expect(read('failure-ratio', { results: { success: 4, failed: 6, systemFailed: 6 } }).firing).toBe(true);
    expect(read('failure-ratio', { results: { success: 5, failed: 5, systemFailed: 5 } }).firing).toBe(false);
    expect(read('failure-ratio', {})).toEqual({
      firing: false,
      value: null,
      message: '0% of 0 purchases failed for a system reason in the last 10s (threshold 50%)',
    });
  });

  it('gateway-errors: 5030 and 5000 answers among all submits', () => {
    expect(read('gateway-errors', { submits: { accepted: 8, unavailable: 1, error: 1 } })).toEqual({
      firing: true,
      value: 0.2,
      message: '20% of 10 submits answered 5030/5000 in the last 10s (threshold 10%)',
    });
    expect(read('gateway-errors', { submits: { accepted: 9, error: 1 } })).toMatchObject({
      firing: false,
      value: 0.1,
    });
    expect(read('gateway-errors', { submits: { accepted: 9, unavailable: 1 } }).value).toBe(0.1);
    expect(read('gateway-errors', {})).toEqual({
      firing: false,
      value: null,
      message: '0% of 0 submits answered 5030/5000 in the last 10s (threshold 10%)',
    });
  });

  it('queue rules: backlog, stalled queue and dead letters, unknown without a queue reading', () => {
    expect(read('queue-backlog', { queue: { backlog: 101 } })).toEqual({
      firing: true,
      value: 101,
      message: 'Queue backlog 101 (threshold 100)',
    });
    expect(read('queue-stalled', { queue: { backlog: 5, consumers: 0 } })).toEqual({
      firing: true,
      value: 5,
      message: 'Queue backlog 5 with 0 worker(s) consuming',
    });
    expect(read('queue-stalled', { queue: { backlog: 5, consumers: 1 } }).firing).toBe(false);
    expect(read('queue-stalled', { queue: { backlog: 0, consumers: 0 } }).firing).toBe(false);
    for (const name of ['queue-backlog', 'queue-stalled', 'dead-letters'])
      expect(read(name, { queue: null })).toEqual({
        firing: null,
        value: null,
        message: 'Queue state unknown',
      });
  });

  it('dependency rules: reachable or not, by name', () => {
    expect(read('dependency-postgres', { dependencies: { postgres: false } })).toEqual({
      firing: true,
      value: 0,
      message: 'PostgreSQL is unreachable from the monitor',
    });
    expect(read('dependency-redis', {})).toEqual({
      firing: false,
      value: 1,
      message: 'Redis is reachable from the monitor',
    });
    expect(read('dependency-nats', { dependencies: { nats: false } }).message).toBe(
      'NATS is unreachable from the monitor',
    );
  });

  it('a good reading while clear leaves no alert', () => {
    const state = stepRule(rule('queue-backlog'), HOLD, initialRuleState, snap());
    expect(state).toEqual({ active: null, streak: 0, change: null });
  });
});

describe('AlertBook', () => {
  const raised: Alert = {
    id: 'dead-letters-1',
    rule: 'dead-letters',
    severity: 'warning',
    message: 'm',
    value: 1,
    raisedAt: iso(1),
  };

  it('lists active alerts and the recent history, newest change first', () => {
    const book = new AlertBook(3);
    book.record(raised);
    const other = { ...raised, id: 'queue-backlog-2', rule: 'queue-backlog', raisedAt: iso(2) };
    book.record(other);
    expect(book.view().active.map((a) => a.id)).toEqual(['dead-letters-1', 'queue-backlog-2']);
    book.record({ ...raised, resolvedAt: iso(3) });
    const view = book.view();
    expect(view.active.map((a) => a.id)).toEqual(['queue-backlog-2']);
    expect(view.recent.map((a) => [a.id, a.resolvedAt])).toEqual([
      ['dead-letters-1', iso(3)],
      ['queue-backlog-2', undefined],
    ]);
  });

  it('keeps at most `keep` recent alerts and changes', () => {
    const book = new AlertBook(2);
    for (let i = 1; i <= 3; i++) book.record({ ...raised, id: `a-${i}`, rule: `r-${i}` });
    expect(book.view().recent.map((a) => a.id)).toEqual(['a-3', 'a-2']);
    expect(book.changesAfter(0)).toEqual({
      seq: 3,
      changes: [
        { ...raised, id: 'a-2', rule: 'r-2' },
        { ...raised, id: 'a-3', rule: 'r-3' },
      ],
    });
  });

  it('takes the active alerts from the latest snapshot', () => {
    const book = new AlertBook();
    book.record(raised);
    const latest = { ...raised, id: 'queue-backlog-9', rule: 'queue-backlog', value: 9 };
    book.setActive([latest]);
    expect(book.view().active).toEqual([latest]);
  });

  it('gives the changes after a sequence number', () => {
    const book = new AlertBook();
    expect(book.changesAfter(0)).toEqual({ seq: 0, changes: [] });
    book.record(raised);
    const { seq } = book.changesAfter(0);
    book.record({ ...raised, resolvedAt: iso(5) });
    expect(book.changesAfter(seq)).toEqual({ seq: seq + 1, changes: [{ ...raised, resolvedAt: iso(5) }] });
  });
});

describe('metrics pipeline (virtual time)', () => {
  const record = (
    status: 'SUCCESS' | 'FAILED' | 'PROCESSING',
    latencyMs: number,
    errorCode?: number,
  ): ResultRecord => ({
    messageId: `m-${Math.random()}`,
    userId: 1,
    date: '2030-01-01',
    status,
    attempts: 1,
    queuedAt: new Date(1_000_000).toISOString(),
    updatedAt: new Date(1_000_000 + latencyMs).toISOString(),
    ...(status === 'PROCESSING' ? {} : { completedAt: new Date(1_000_000 + latencyMs).toISOString() }),
    ...(errorCode ? { errorCode } : {}),
  });

  it('windows results and submits into per-second rates, totals and percentiles', () => {
    const ts = scheduler();
    ts.run(({ hot, cold, expectObservable }) => {
      const batch1 = [
        record('PROCESSING', 0),
        record('SUCCESS', 10),
        record('SUCCESS', 30),
        record('FAILED', 20, 6002),
      ];
      const batch2 = [record('FAILED', 40, 5000)];
      const results$ = hot<ResultRecord[]>('100ms a 1499ms b', { a: batch1, b: batch2 });
      const submits$ = hot('200ms s', { s: { nodeID: 'n1', counts: { accepted: 4, sold_out: 2 } } });
      const queue = { backlog: 3, waiting: 2, inProgress: 1, consumers: 1, deadLetters: 0, redelivered: 0 };
      const snapshots = monitorSnapshots(
        {
          results$,
          submits$,
          queue$: cold('q', { q: queue }),
          nodes$: cold('-'),
          dependencies$: cold('d', { d: { postgres: true, redis: true, nats: false } }),
        },
        { intervalMs: 1000, windowMs: 2000, scheduler: ts },
      );
      const summary = snapshots.pipe(
        take(3),
        map((s) => ({
          at: s.at,
          window: s.windowSeconds,
          submitsPerSec: s.submits.perSec,
          byOutcome: s.submits.byOutcome,
          total: s.submits.total,
          success: s.results.successPerSec,
          failed: s.results.failedPerSec,
          system: s.results.systemFailedPerSec,
          ratio: s.results.successRatio,
          totals: [s.results.totalSuccess, s.results.totalFailed],
          processing: s.results.byStatus.PROCESSING ?? 0,
          latency: s.latency,
          queue: s.queue?.backlog,
          nats: s.dependencies.nats,
        })),
      );
      expectObservable(summary).toBe('1000ms a 999ms b 999ms (c|)', {
        a: {
          at: iso(1000),
          window: 2,
          submitsPerSec: 6,
          byOutcome: { accepted: 4, sold_out: 2 },
          total: { accepted: 4, sold_out: 2 },
          success: 2,
          failed: 1,
          system: 0,
          ratio: 0.67,
          totals: [2, 1],
          processing: 1,
          latency: { p50: 20, p95: 30, p99: 30 },
          queue: 3,
          nats: false,
        },
        b: {
          at: iso(2000),
          window: 2,
          submitsPerSec: 3,
          byOutcome: { accepted: 2, sold_out: 1 },
          total: { accepted: 4, sold_out: 2 },
          success: 1,
          failed: 1,
          system: 0.5,
          ratio: 0.5,
          totals: [2, 2],
          processing: 0.5,
          latency: { p50: 20, p95: 40, p99: 40 },
          queue: 3,
          nats: false,
        },
        // The first second has left the window.
        c: {
          at: iso(3000),
          window: 2,
          submitsPerSec: 0,
          byOutcome: {},
          total: { accepted: 4, sold_out: 2 },
          success: 0,
          failed: 0.5,
          system: 0.5,
          ratio: 0,
          totals: [2, 2],
          processing: 0,
          latency: { p50: 40, p95: 40, p99: 40 },
          queue: 3,
          nats: false,
        },
      });
    });
  });

  it('computes nearest-rank percentiles', () => {
    expect(percentile([], 0.5)).toBeNull();
    expect(percentile([5], 0.99)).toBe(5);
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([0.5, 0.95, 0.99].map((p) => percentile(hundred, p))).toEqual([50, 95, 99]);
  });
});

describe('alert webhook', () => {
  let server: Server;
  let url = '';
  const received: { headers: IncomingMessage['headers']; body: WebhookPayload }[] = [];
  let answer = 204;
  const silent = { warn: jest.fn() };

  beforeAll(async () => {
    server = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString()));
      req.on('end', () => {
        if (req.url === '/hang') return; // never answers: the sender's timeout must end it
        received.push({ headers: req.headers, body: JSON.parse(text) as WebhookPayload });
        res.writeHead(answer).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    received.length = 0;
    answer = 204;
    silent.warn.mockClear();
  });

  const alert: Alert = {
    id: 'dead-letters-1000',
    rule: 'dead-letters',
    severity: 'warning',
    message: '1 message(s) in the dead-letter queue',
    value: 1,
    raisedAt: iso(1000),
  };

  it('POSTs the alert as JSON with the event, namespace and node', async () => {
    const payload = webhookPayload(alert, 'ns1', 'node-1', new Date(2000));
    await expect(postWebhook(`${url}/hook`, payload, silent)).resolves.toBe(true);
    expect(received).toHaveLength(1);
    expect(received[0].headers['content-type']).toBe('application/json');
    expect(received[0].body).toEqual({
      event: 'alert.raised',
      alert,
      namespace: 'ns1',
      nodeID: 'node-1',
      sentAt: iso(2000),
    });
    const resolved = webhookPayload({ ...alert, resolvedAt: iso(3000) }, 'ns1', 'node-1');
    await postWebhook(`${url}/hook`, resolved, silent);
    expect(received[1].body.event).toBe('alert.resolved');
    expect(received[1].body.alert.resolvedAt).toBe(iso(3000));
    expect(silent.warn).not.toHaveBeenCalled();
  });

  it('logs and never throws when the receiver fails, is unreachable or hangs', async () => {
    const payload = webhookPayload(alert, 'ns1', 'node-1');
    answer = 500;
    await expect(postWebhook(`${url}/hook`, payload, silent)).resolves.toBe(false);
    await expect(postWebhook('http://127.0.0.1:1/hook', payload, silent)).resolves.toBe(false);
    await expect(postWebhook(`${url}/hang`, payload, silent, 200)).resolves.toBe(false);
    expect(silent.warn).toHaveBeenCalledTimes(3);
  });
});
