import { ServiceBroker, type ServiceSchema } from 'moleculer';
import type { Config, ServiceName } from '../config';
import { brokerOptions } from '../moleculer.config';
import { createApiService } from '../services/api.service';
import monitorService from '../services/monitor.service';
import purchaseService from '../services/purchase.service';
import purchaseWorkerService from '../services/purchase-worker.service';
import ticketsService from '../services/tickets.service';
import { attachRuntime } from '../lib/runtime';

// Each service has its own `this` type; Moleculer's createService takes them all the same way.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Schema = ServiceSchema<any, any, any>;

const SCHEMAS: Record<ServiceName, (config: Config) => Schema> = {
  api: createApiService,
  tickets: () => ticketsService,
  purchase: () => purchaseService,
  'purchase-worker': () => purchaseWorkerService,
  monitor: () => monitorService,
};

/** A broker running the configured subset of services, with the shared connections attached. */
export function createBroker(config: Config, nodeID?: string): ServiceBroker {
  const broker = new ServiceBroker({
    ...brokerOptions(config, nodeID),
    stopped: async () => {
      await runtime.close();
    },
  });
  const runtime = attachRuntime(broker, config);
  for (const name of config.services) broker.createService(SCHEMAS[name](config));
  return broker;
}
