import { filter, map, scan, type OperatorFunction } from 'rxjs';
import type { Alert, MonitorSnapshot, Severity } from './types';

/** One rule's reading of a snapshot. `firing: null` means no evidence either way (state is kept). */
export interface Evaluation {
  firing: boolean | null;
  value: number | null;
  message: string;
}

export interface AlertRule {
  name: string;
  severity: Severity;
  evaluate(snapshot: MonitorSnapshot): Evaluation;
}

export interface AlertSettings {
  failureRatio: number;
  backlogMax: number;
  minSamples: number;
  errorRatio: number;
}

const pct = (ratio: number) => `${Math.round(ratio * 1000) / 10}%`;
const unknown = (message: string): Evaluation => ({ firing: null, value: null, message });

/** The alert rules of the monitoring issue, parameterised by `config.alerts`. */
export function alertRules(settings: AlertSettings): AlertRule[] {
  const dependency = (name: 'postgres' | 'redis' | 'nats', label: string): AlertRule => ({
    name: `dependency-${name}`,
    severity: 'critical',
    evaluate: (s) => ({
      firing: !s.dependencies[name],
      value: s.dependencies[name] ? 1 : 0,
      message: `${label} is ${s.dependencies[name] ? 'reachable' : 'unreachable'} from the monitor`,
    }),
  });
  return [
    {
      // Sold out and already-purchased answers are the sale working, not failing: only system failures count.
      name: 'failure-ratio',
      severity: 'critical',
      evaluate: (s) => {
        const { success, failed, systemFailed } = s.results.window;
        const n = success + failed;
        const ratio = n > 0 ? systemFailed / n : 0;
        return {
          firing: n >= settings.minSamples && ratio > settings.failureRatio,
          value: n > 0 ? Math.round(ratio * 1000) / 1000 : null,
          message:
            `${pct(ratio)} of ${n} purchases failed for a system reason in the last ${s.windowSeconds}s ` +
            `(threshold ${pct(settings.failureRatio)})`,
        };
      },
    },
    {
      name: 'gateway-errors',
      severity: 'critical',
      evaluate: (s) => {
        const counts = s.submits.window;
        const total = Object.values(counts).reduce((a, b) => a + b, 0);
        const errors = (counts.unavailable ?? 0) + (counts.error ?? 0);
        const ratio = total > 0 ? errors / total : 0;
        return {
          firing: total >= settings.minSamples && ratio > settings.errorRatio,
          value: total > 0 ? Math.round(ratio * 1000) / 1000 : null,
          message:
            `${pct(ratio)} of ${total} submits answered 5030/5000 in the last ${s.windowSeconds}s ` +
            `(threshold ${pct(settings.errorRatio)})`,
        };
      },
    },
    {
      name: 'queue-backlog',
      severity: 'warning',
      evaluate: (s) =>
        s.queue
          ? {
              firing: s.queue.backlog > settings.backlogMax,
              value: s.queue.backlog,
              message: `Queue backlog ${s.queue.backlog} (threshold ${settings.backlogMax})`,
            }
          : unknown('Queue state unknown'),
    },
    {
      // Nothing can drain a backlog without a worker: it only grows.
      name: 'queue-stalled',
      severity: 'critical',
      evaluate: (s) =>
        s.queue
          ? {
              firing: s.queue.backlog > 0 && s.queue.consumers === 0,
              value: s.queue.backlog,
              message: `Queue backlog ${s.queue.backlog} with ${s.queue.consumers} worker(s) consuming`,
            }
          : unknown('Queue state unknown'),
    },
    {
      name: 'dead-letters',
      severity: 'warning',
      evaluate: (s) =>
        s.queue
          ? {
              firing: s.queue.deadLetters > 0,
              value: s.queue.deadLetters,
              message: `${s.queue.deadLetters} message(s) in the dead-letter queue (see /api/admin/dlq)`,
            }
          : unknown('Queue state unknown'),
    },
    dependency('postgres', 'PostgreSQL'),
    dependency('redis', 'Redis'),
    dependency('nats', 'NATS'),
  ];
}

export interface RuleState {
  active: Alert | null;
  /** Consecutive snapshots that contradict the current state. */
  streak: number;
  /** The raise or resolution this snapshot caused, if any. */
  change: Alert | null;
}

export const initialRuleState: RuleState = { active: null, streak: 0, change: null };

/**
 * One snapshot through one rule: a state change needs `hold` consecutive contradicting snapshots,
 * so a single blip neither raises nor resolves (no flapping).
 */
export function stepRule(
  rule: AlertRule,
  hold: number,
  state: RuleState,
  snapshot: MonitorSnapshot,
): RuleState {
  const e = rule.evaluate(snapshot);
  if (e.firing === null) return { ...state, change: null };
  const active = state.active;
  if (e.firing === (active !== null)) {
    // Agrees with the current state: the streak breaks; an active alert shows the latest reading.
    return {
      active: active && e.firing ? { ...active, value: e.value, message: e.message } : active,
      streak: 0,
      change: null,
    };
  }
  const streak = state.streak + 1;
  if (streak < hold) return { active, streak, change: null };
  if (!active) {
    const raised: Alert = {
      id: `${rule.name}-${Date.parse(snapshot.at)}`,
      rule: rule.name,
      severity: rule.severity,
      message: e.message,
      value: e.value,
      raisedAt: snapshot.at,
    };
    return { active: raised, streak: 0, change: raised };
  }
  // Resolution keeps the last firing reading, so the record says what was wrong.
  return { active: null, streak: 0, change: { ...active, resolvedAt: snapshot.at } };
}

/** One rule as an operator: snapshots in, its raise and resolve events out. */
export function ruleAlerts(rule: AlertRule, hold: number): OperatorFunction<MonitorSnapshot, Alert> {
  return (snapshots) =>
    snapshots.pipe(
      scan((state: RuleState, s: MonitorSnapshot) => stepRule(rule, hold, state, s), initialRuleState),
      map((state) => state.change),
      filter((change): change is Alert => change !== null),
    );
}

export interface AlertUpdate {
  /** The snapshot with its active alerts attached. */
  snapshot: MonitorSnapshot;
  /** Alerts raised (no `resolvedAt`) or resolved by this snapshot. */
  changes: Alert[];
}

/** Every rule over the snapshot stream at once (one pass per snapshot, same semantics as `ruleAlerts`). */
export function evaluateAlerts(
  rules: AlertRule[],
  hold: number,
): OperatorFunction<MonitorSnapshot, AlertUpdate> {
  return (snapshots) =>
    snapshots.pipe(
      scan(
        (acc: { states: RuleState[]; update: AlertUpdate | null }, snapshot: MonitorSnapshot) => {
          const states = rules.map((rule, i) => stepRule(rule, hold, acc.states[i], snapshot));
          const alerts = states.map((s) => s.active).filter((a): a is Alert => a !== null);
          const changes = states.map((s) => s.change).filter((a): a is Alert => a !== null);
          return { states, update: { snapshot: { ...snapshot, alerts }, changes } };
        },
        { states: rules.map(() => initialRuleState), update: null },
      ),
      map((acc) => acc.update as AlertUpdate),
    );
}

/** Active alerts and the recent history, newest change first, for the alerts endpoint. */
export class AlertBook {
  private readonly active = new Map<string, Alert>();
  private recentList: Alert[] = [];
  private readonly changes: { seq: number; alert: Alert }[] = [];
  private seq = 0;

  constructor(private readonly keep = 100) {}

  record(change: Alert): void {
    if (change.resolvedAt) this.active.delete(change.rule);
    else this.active.set(change.rule, change);
    this.recentList = [change, ...this.recentList.filter((a) => a.id !== change.id)].slice(0, this.keep);
    this.changes.push({ seq: ++this.seq, alert: change });
    if (this.changes.length > this.keep) this.changes.shift();
  }

  /** The active alerts as the latest snapshot shows them (with their latest readings). */
  setActive(alerts: Alert[]): void {
    this.active.clear();
    for (const alert of alerts) this.active.set(alert.rule, alert);
  }

  view(): { active: Alert[]; recent: Alert[] } {
    return { active: [...this.active.values()], recent: [...this.recentList] };
  }

  /** Changes after `seq` (for a gateway that streams from a monitor on another node). */
  changesAfter(seq: number): { seq: number; changes: Alert[] } {
    return { seq: this.seq, changes: this.changes.filter((c) => c.seq > seq).map((c) => c.alert) };
  }
}
