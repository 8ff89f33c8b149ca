import type { Server, ServerResponse } from 'node:http';
import type { Logger, Service, ServiceSchema } from 'moleculer';
import ApiGateway, { type ApiSettingsSchema } from 'moleculer-web';
import type { Config } from '../config';
import { appError } from '../lib/errors';
import { clientIp, SECURITY_HEADERS, WindowLimiter } from '../lib/http/abuse';
import { createAccess } from '../lib/http/access';
import { pageAssets, serveChartJs } from '../lib/http/assets';
import { sendEnvelope } from '../lib/http/envelope';
import { envelope, errorEnvelope } from '../lib/http/error-envelope';
import { checkHealth, sendHealth } from '../lib/http/health';
import { skipIfTaken, takeHotRoutes } from '../lib/http/hot-routes';
import { answerLocally, type LocalAnswerInputs } from '../lib/http/local-answers';
import { V2_RESULT, V2_SUBMIT, type Check, type Next, type Req } from '../lib/http/request';
import { hookServer } from '../lib/http/server-hooks';
import { bodyLimitBytes, gatewayBase, jsonBody } from '../lib/http/settings';
import { prometheusText } from '../lib/metrics-reporter';
import { streamMonitor } from '../lib/monitor/stream';
import { publicDir } from '../lib/paths';
import { streamResult } from '../lib/purchase/stream';
import { runtimeOf } from '../lib/runtime';
import { purchaseParams, resultParams } from '../lib/validation';
import { localGateway, localMonitor } from './local';

/** Any failure of a request, in the SPEC envelope; an unexpected one (5000) is logged. */
function answerError(logger: Logger, req: Req, res: ServerResponse, err: unknown): void {
  const { status, body } = errorEnvelope(err);
  if (body.code === 5000) logger.error('Request failed', req.method, req.url, err);
  sendEnvelope(res, status, body);
}

/**
 * The REST gateway (moleculer-web): the routes of SPEC §3 and who may call them, health, metrics and
 * the pages. What a request goes through lives in lib/http: the door's checks (access.ts), the
 * answers from memory (local-answers.ts), the envelope of every error (error-envelope.ts).
 */
export function createApiService(config: Config): ServiceSchema<ApiSettingsSchema> {
  const access = createAccess(config);
  // Made when the service is created: they need the broker (its Redis client, validator, local services).
  let ipLimit: WindowLimiter;
  let local: () => LocalAnswerInputs | undefined = () => undefined;

  /**
   * Every request (pages too): the per-client-IP limit, kept in Redis so it holds across gateways.
   * With the limit off, the request passes on at once (no promise per request).
   */
  function guardDoor(req: Req, _res: ServerResponse, next: Next): void | Promise<void> {
    if (!ipLimit.limits) return next();
    return ipLimit
      .take(clientIp(req, config.abuse.trustProxy))
      .then((passes) => next(passes ? undefined : appError('RATE_LIMITED')));
  }

  const answerLocal = answerLocally(() => local());

  return {
    name: 'api',
    mixins: [ApiGateway],
    settings: {
      ...gatewayBase(config),
      routes: [
        {
          path: '/api/admin',
          authorization: true,
          mappingPolicy: 'restrict',
          bodyParsers: jsonBody(config),
          logging: false,
          aliases: {
            'PUT tickets/:date': 'tickets.setStock',
            'POST tickets/roll': 'tickets.roll',
            'POST sale/pause': 'tickets.pause',
            'POST sale/resume': 'tickets.resume',
            'POST reconcile': 'tickets.reconcile',
            'GET dlq': 'purchase-worker.deadLetters',
            'POST dlq/:messageId/resend': 'purchase-worker.resend',
            'GET alerts': 'monitor.alerts',
            // The operator's view of any user's orders (in AUTH_MODE=jwt the public ones are the user's own).
            'GET orders': 'tickets.orders',
            'POST orders/cancel': 'tickets.cancel',
          },
          onAfterCall: envelope,
        },
        {
          path: '/api',
          mappingPolicy: 'restrict',
          bodyParsers: jsonBody(config),
          logging: false,
          aliases: {
            'GET tickets/list': 'tickets.list',
            'GET tickets/verify-hash': 'tickets.verifyHash',
            'GET tickets/validate-time': 'tickets.validateTime',
            'POST tickets/v1/purchase': 'tickets.purchaseV1',
            'GET tickets/orders': 'tickets.orders',
            'POST tickets/orders/cancel': 'tickets.cancel',
            'GET tickets/stats': 'tickets.stats',
            'POST tickets/v2/purchase': 'purchase.submit', // or answered by this node's gateway directly
            'GET tickets/v2/purchase/result': 'purchase.result', // or answered locally (terminal results)
            'GET tickets/v2/purchase/result/user': 'purchase.resultByUser',
            'POST tickets/v2/purchase/results': 'purchase.results',
            'GET tickets/v2/purchase/stream'(this: Service, req: Req, res: ServerResponse) {
              streamResult(localGateway(this.broker), req, res, req.$user);
            },
            'GET monitor/stream'(this: Service, req: Req, res: ServerResponse) {
              streamMonitor(this.broker, localMonitor(this.broker), config.monitor.intervalMs, req, res);
            },
            'GET monitor/snapshot': 'monitor.snapshot',
            'GET monitor/alerts': 'monitor.alerts',
          },
          use: [access.signIn, answerLocal].map(skipIfTaken),
          onBeforeCall: access.beforeCall,
          onAfterCall: envelope,
        },
        {
          path: '/',
          mappingPolicy: 'restrict',
          bodyParsers: false,
          logging: false,
          aliases: {
            async 'GET health'(this: Service, _req: Req, res: ServerResponse) {
              const { db, redis } = runtimeOf(this.broker);
              sendHealth(res, await checkHealth(this.broker, { db, redis }));
            },
            'GET metrics'(this: Service, req: Req, res: ServerResponse) {
              access.checkMetricsToken(req);
              res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
              res.end(prometheusText(this.broker.metrics));
            },
            'GET demo'(_req: Req, res: ServerResponse) {
              res.writeHead(302, { Location: '/' });
              res.end();
            },
            'GET vendor/chart.js'(_req: Req, res: ServerResponse) {
              serveChartJs(res);
            },
          },
        },
      ],
      use: [skipIfTaken(guardDoor)],
      assets: pageAssets(publicDir()),
      onError(this: Service, req: Req, res: ServerResponse, err: Error) {
        answerError(this.logger, req, res, err);
      },
    },
    created(this: Service) {
      const { abuse } = config;
      ipLimit = new WindowLimiter(runtimeOf(this.broker).redis, 'ip', abuse.ipMax, abuse.ipWindowMs);
      // Local answers check requests by the actions' own rules, compiled by the broker's validator.
      const validator = this.broker.validator;
      if (!validator) throw new Error('The gateway needs the broker validator');
      const validPurchase = validator.compile(purchaseParams) as Check;
      const validResult = validator.compile(resultParams) as Check;
      local = () => {
        const gateway = localGateway(this.broker);
        return gateway && { gateway, validPurchase, validResult };
      };
      const { server } = this as unknown as { server: Server };
      // The submit and the poll of a crowd, with the door and answers of the /api route (above).
      takeHotRoutes(server, {
        posts: new Set([V2_SUBMIT]),
        gets: new Set([V2_RESULT]),
        chain: [guardDoor, access.signIn, answerLocal],
        bodyLimit: bodyLimitBytes(config),
        fail: (req, res, err) => answerError(this.logger, req, res, err),
        headers: SECURITY_HEADERS,
      });
      hookServer(server);
    },
    methods: {
      // moleculer-web logs every 5xx answer with its stack before onError runs: an expected 5030 of
      // an outage would flood the log under a crowd, and a 5000 would be logged twice.
      errorHandler(this: Service, req: Req, res: ServerResponse, err: Error) {
        (this as Service & { sendError(req: Req, res: ServerResponse, err: Error): void }).sendError(
          req,
          res,
          err,
        );
      },
      authorize: access.authorize,
    },
  };
}
