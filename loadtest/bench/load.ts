import autocannon from 'autocannon';
import type { Progress } from './progress';

/** Latency samples in milliseconds, with exact percentiles (sub-millisecond). */
export class Latencies {
  private values = new Float64Array(4096);
  private size = 0;
  private sorted = true;

  add(ms: number): void {
    if (this.size === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.size++] = ms;
    this.sorted = false;
  }

  get count(): number {
    return this.size;
  }

  percentile(p: number): number | null {
    if (this.size === 0) return null;
    if (!this.sorted) {
      this.values.subarray(0, this.size).sort();
      this.sorted = true;
    }
    const index = Math.min(this.size - 1, Math.max(0, Math.ceil((p / 100) * this.size) - 1));
    return this.values[index];
  }

  summary(): LatencySummary {
    const r = (x: number | null) => (x === null ? null : Math.round(x * 100) / 100);
    return {
      count: this.size,
      p50: r(this.percentile(50)),
      p90: r(this.percentile(90)),
      p99: r(this.percentile(99)),
      max: r(this.percentile(100)),
    };
  }
}

export interface LatencySummary {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

export interface LoadSpec {
  title: string;
  /** Base URLs of the gateways; connections are spread over them. */
  urls: string[];
  connections: number;
  /** Seconds of load (ignored when `amount` is set). */
  duration?: number;
  /** Total requests to send. */
  amount?: number;
  request: autocannon.Request;
}

export interface LoadResult {
  title: string;
  seconds: number;
  completed: number;
  /** Completed responses per second. */
  rps: number;
  latencyMs: LatencySummary;
  statusCodes: Record<string, number>;
  non2xx: number;
  /** Connection errors and timeouts. */
  errors: number;
  timeouts: number;
}

/** One autocannon run with progress; resolves with the figures the report needs. */
export function runLoad(spec: LoadSpec, progress?: Progress): Promise<LoadResult> {
  const latencies = new Latencies();
  return new Promise((resolve, reject) => {
    let elapsed = 0;
    const instance = autocannon(
      {
        url: spec.urls,
        connections: spec.connections,
        ...(spec.amount ? { amount: spec.amount } : { duration: spec.duration ?? 10 }),
        pipelining: 1,
        timeout: 10,
        requests: [spec.request],
        title: spec.title,
      },
      (err, result) => {
        progress?.clearStatus();
        if (err) {
          reject(err);
          return;
        }
        const statusCodes: Record<string, number> = {};
        for (const [code, { count }] of Object.entries(result.statusCodeStats)) statusCodes[code] = count;
        const completed = result.requests.total;
        resolve({
          title: spec.title,
          seconds: result.duration,
          completed,
          rps: Math.round(completed / Math.max(0.001, result.duration)),
          latencyMs: latencies.summary(),
          statusCodes,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
        });
      },
    );
    instance.on('response', (_client, _status, _bytes, ms) => latencies.add(ms));
    instance.on('tick', ({ counter }) => {
      elapsed++;
      const goal = spec.amount
        ? `${latencies.count}/${spec.amount} requests`
        : `${elapsed}/${spec.duration}s`;
      progress?.status(`${spec.title}: ${goal}, ${counter} req/s`);
    });
  });
}
