import { MetricReporters, type MetricRegistry } from 'moleculer';

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
    return (this as unknown as { generatePrometheusResponse(): string }).generatePrometheusResponse();
  }
}

export function prometheusText(registry: MetricRegistry): string {
  const reporters = (registry as unknown as { reporter?: unknown[] }).reporter ?? [];
  const reporter = reporters.find(
    (r): r is GatewayPrometheusReporter => r instanceof GatewayPrometheusReporter,
  );
  return reporter ? reporter.render() : '';
}
