import { MetricReporters, type MetricRegistry } from 'moleculer';

interface HistogramItem {
  labels: Record<string, unknown>;
  count: number;
  sum: number;
}

interface ReporterInternals {
  registry: { store: Map<string, { name: string; type: string; snapshot(): HistogramItem[] }> };
  generatePrometheusResponse(): string;
  matchMetricName(name: string): boolean;
  formatMetricName(name: string): string;
  labelsToStr(labels: Record<string, unknown>, extra?: Record<string, unknown>): string;
}

/**
 * Moleculer's Prometheus reporter without its own HTTP server: the gateway serves the text at
 * `/metrics` on its own port, so a deployment exposes one port per gateway.
 */
export class GatewayPrometheusReporter extends MetricReporters.Prometheus {
  override init(registry: MetricRegistry): void {
    MetricReporters.Base.prototype.init.call(this, registry);
    const self = this as unknown as { defaultLabels: unknown; opts: { defaultLabels?: unknown } };
    self.defaultLabels =
      typeof self.opts.defaultLabels === 'function'
        ? (self.opts.defaultLabels as (r: MetricRegistry) => unknown).call(this, registry)
        : self.opts.defaultLabels;
  }

  override stop(): Promise<void> {
    return Promise.resolve();
  }

  render(): string {
    const self = this as unknown as ReporterInternals;
    const text = self.generatePrometheusResponse();
    // Without quantiles Moleculer writes a histogram's buckets but not its _sum and _count, which
    // Prometheus histograms must have: add them right after each series' +Inf bucket.
    const totals = new Map<string, string[]>();
    self.registry.store.forEach((metric) => {
      if (metric.type !== 'histogram' || !self.matchMetricName(metric.name)) return;
      const name = self.formatMetricName(metric.name).replace(/[.-]/g, '_');
      for (const item of metric.snapshot()) {
        const inf = `${name}_bucket${self.labelsToStr(item.labels, { le: '+Inf' })} ${item.count}`;
        const labels = self.labelsToStr(item.labels);
        totals.set(inf, [`${name}_sum${labels} ${item.sum}`, `${name}_count${labels} ${item.count}`]);
      }
    });
    return text
      .split('\n')
      .flatMap((line) => [line, ...(totals.get(line) ?? [])])
      .join('\n');
  }
}

export function prometheusText(registry: MetricRegistry): string {
  const reporters = (registry as unknown as { reporter?: unknown[] }).reporter ?? [];
  const reporter = reporters.find(
    (r): r is GatewayPrometheusReporter => r instanceof GatewayPrometheusReporter,
  );
  return reporter ? reporter.render() : '';
}
