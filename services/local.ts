import type { Service, ServiceBroker } from 'moleculer';
import type { Monitor } from '../lib/monitor/monitor';
import type { PurchaseGateway } from '../lib/purchase/gateway';

/**
 * What one service on this node offers another directly, outside the bus: the one place where the
 * api service reaches into the purchase and monitor services (long poll, SSE, answers from memory).
 * Each is there only while its service runs.
 */
export function localGateway(broker: ServiceBroker): PurchaseGateway | undefined {
  return (broker.getLocalService('purchase') as (Service & { serving?: PurchaseGateway }) | undefined)
    ?.serving;
}

export function localMonitor(broker: ServiceBroker): Monitor | undefined {
  const monitor = (broker.getLocalService('monitor') as (Service & { monitor?: Monitor }) | undefined)
    ?.monitor;
  return monitor?.running ? monitor : undefined;
}
