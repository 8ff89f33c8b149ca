/**
 * The gateway the bench's baselines run on: the service's configuration loading, broker options
 * (logger, validator, metrics), body parser and envelope, without a transporter. The echo ceiling
 * answers a constant from it; the submit floor does the least work an accepted submit needs.
 * Run like the service, with the bench's environment.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { ServiceBroker, type ServiceSchema } from 'moleculer';
import ApiGateway from 'moleculer-web';
import { loadConfig, type Config } from '../../config';
import { brokerOptions } from '../../moleculer.config';
import { envelope } from '../../lib/http/error-envelope';
import { skipIfTaken, takeHotRoutes } from '../../lib/http/hot-routes';
import { bodyLimitBytes, gatewayBase } from '../../lib/http/settings';
import { sendEnvelope } from '../../lib/http/envelope';
import { ERRORS } from '../../lib/errors';
import type { Middleware } from '../../lib/http/request';

export interface Baseline {
  name: string;
  /** The action behind `POST /api/<name>` and `GET /api/<name>`. */
  action: string;
  services(config: Config): ServiceSchema[];
  /**
   * A route middleware answering before the action, taken before moleculer-web for `POST /api/<name>`
   * as the service takes its hot routes (lib/http/hot-routes.ts).
   */
  answer?(broker: ServiceBroker): Middleware;
}

export async function serveBaseline(baseline: Baseline): Promise<void> {
  const config = loadConfig(process.env);
  const broker = new ServiceBroker({
    ...brokerOptions(config, `${config.namespace}-${baseline.name}-${process.pid}`),
    transporter: undefined,
  });
  for (const schema of baseline.services(config)) broker.createService(schema);
  const answer = baseline.answer?.(broker);
  const fail = (_req: IncomingMessage, res: ServerResponse, err: Error & { code?: number }) => {
    const status = typeof err.code === 'number' && err.code >= 400 && err.code < 600 ? err.code : 500;
    sendEnvelope(res, status, {
      code: status === 404 ? 404 : ERRORS.INTERNAL.code,
      message: err.message,
      data: null,
    });
  };
  const api = broker.createService({
    name: 'api',
    mixins: [ApiGateway],
    settings: {
      ...gatewayBase(config),
      routes: [
        {
          path: '/api',
          mappingPolicy: 'restrict',
          bodyParsers: { json: { strict: true, limit: config.http.bodyLimit }, urlencoded: false },
          logging: false,
          aliases: {
            [`GET ${baseline.name}`]: baseline.action,
            [`POST ${baseline.name}`]: baseline.action,
          },
          ...(answer ? { use: [skipIfTaken(answer)] } : {}),
          onAfterCall: envelope,
        },
        {
          path: '/',
          mappingPolicy: 'restrict',
          bodyParsers: false,
          logging: false,
          aliases: { 'GET health': 'api.health' },
          onAfterCall: envelope,
        },
      ],
      onError: fail,
    },
    actions: { health: () => ({ up: true }) },
  });
  if (answer) {
    takeHotRoutes((api as unknown as { server: Server }).server, {
      posts: new Set([`/api/${baseline.name}`]),
      gets: new Set(),
      chain: [answer],
      bodyLimit: bodyLimitBytes(config),
      fail: (req, res, err) => fail(req, res, err as Error & { code?: number }),
      // The floor answers with the service's body and correlation id, without its security headers.
      headers: {},
    });
  }
  const stop = () => {
    broker
      .stop()
      .catch(() => undefined)
      .finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await broker.start();
}

export function runBaseline(baseline: Baseline): void {
  serveBaseline(baseline).catch((err: unknown) => {
    console.error(`The ${baseline.name} baseline failed:`, err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
