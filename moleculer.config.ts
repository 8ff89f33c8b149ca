import { Validators, type BrokerOptions, type MetricRegistry } from 'moleculer';
import type { Config } from './config';
import { GatewayPrometheusReporter } from './lib/metrics-reporter';
import { natsOptions } from './lib/nats-options';

/** Broker options for a configuration: NATS transport, namespace isolation, metrics, validation. */
export function brokerOptions(config: Config, nodeID?: string): BrokerOptions {
  return {
    namespace: config.namespace,
    nodeID: nodeID ?? `${config.namespace}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`,
    transporter: { type: 'NATS', options: { ...natsOptions(config), maxReconnectAttempts: -1 } },
    serializer: 'JSON',
    logger: {
      type: 'Pino',
      options: { level: config.logLevel, pino: { options: { level: config.logLevel } } },
    },
    logLevel: config.logLevel,
    requestTimeout: 30_000,
    registry: { strategy: 'RoundRobin', preferLocal: true },
    heartbeatInterval: 5,
    heartbeatTimeout: 15,
    validator: new Validators.Fastest({ useNewCustomCheckerFunction: true }),
    errorHandler: undefined,
    metrics: {
      enabled: true,
      // No quantile reservoirs: Moleculer keeps every sample of the last minute for them, hundreds of
      // MB under a crowd. Histogram buckets stay (Prometheus derives quantiles from them).
      defaultQuantiles: null as unknown as number[],
      // An instance is accepted at run time; the typings only list the built-in names.
      reporter: [
        new GatewayPrometheusReporter({
          includes: ['moleculer.**', 'process.**', 'os.**', 'miaosha.**'],
        }) as unknown as MetricRegistry.MetricsReporter,
      ],
    },
    tracing: { enabled: false },
    cacher: undefined,
    tracking: { enabled: true, shutdownTimeout: 10_000 },
  };
}
