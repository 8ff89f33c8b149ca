import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context, Service, ServiceSchema } from 'moleculer';
import ApiGateway, { type ApiSettingsSchema } from 'moleculer-web';
import type { Config } from '../config';
import { appCodeOf, appError, ERRORS, httpStatusOf, messageOf } from '../lib/errors';
import { checkHealth } from '../lib/health';
import { prometheusText } from '../lib/metrics-reporter';
import { publicDir } from '../lib/paths';
import { runtimeOf } from '../lib/runtime';
import { streamResult } from '../lib/purchase/stream';

type Req = IncomingMessage & { $ctx?: Context; $params?: Record<string, unknown> };

interface Envelope {
  code: number;
  message: string;
  data: unknown;
}

function send(res: ServerResponse, status: number, body: Envelope): void {
  if (res.headersSent) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

/** Maps any error to the SPEC envelope: our codes, validation, transport faults, and 5000 for the rest. */
export function errorEnvelope(err: unknown): { status: number; body: Envelope } {
  const e = (err ?? {}) as {
    name?: string;
    code?: unknown;
    type?: string;
    status?: number;
    data?: unknown;
    message?: string;
  };
  const appCode = appCodeOf(err);
  if (appCode !== undefined) {
    return {
      status: httpStatusOf(appCode),
      body: { code: appCode, message: e.message ?? messageOf(appCode), data: null },
    };
  }
  if (e.name === 'ValidationError') {
    const fields = Array.isArray(e.data) ? (e.data as { field?: string; message?: string }[]) : [];
    const message =
      fields
        .map((f) => f.message)
        .filter(Boolean)
        .slice(0, 5)
        .join(' ') || ERRORS.INVALID_PARAM.message;
    return {
      status: 400,
      body: { code: 1001, message, data: fields.map((f) => ({ field: f.field, message: f.message })) },
    };
  }
  const status = typeof e.code === 'number' ? e.code : (e.status ?? 500);
  if (e.type === 'entity.too.large' || status === 413) {
    return { status: 413, body: { code: 1001, message: 'Request body too large', data: null } };
  }
  if (
    e.type === 'entity.parse.failed' ||
    e.type === 'encoding.unsupported' ||
    e.type === 'charset.unsupported'
  ) {
    return { status: 400, body: { code: 1001, message: 'Request body is not valid JSON', data: null } };
  }
  if (e.name === 'NotFoundError')
    return { status: 404, body: { code: 404, message: 'Not found', data: null } };
  if (
    [
      'ServiceNotFoundError',
      'ServiceNotAvailableError',
      'RequestTimeoutError',
      'BrokerDisconnectedError',
    ].includes(e.name ?? '')
  ) {
    return { status: 503, body: { code: 5030, message: ERRORS.UNAVAILABLE.message, data: null } };
  }
  return { status: 500, body: { code: 5000, message: ERRORS.INTERNAL.message, data: null } };
}

function tokenMatches(expected: string, header: string | undefined): boolean {
  const given = /^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '';
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  // Compare equal-length buffers only, and always do the comparison so timing says nothing.
  return timingSafeEqual(a.length === b.length ? a : b, b) && a.length === b.length;
}

const envelope = (_ctx: Context, _route: unknown, _req: Req, _res: ServerResponse, data: unknown) => ({
  code: 200,
  message: 'success',
  data,
});

/** The REST gateway (moleculer-web): routes of SPEC §3, the envelope, health, metrics and pages. */
export function createApiService(config: Config): ServiceSchema<ApiSettingsSchema> {
  const jsonOnly = { json: { strict: true, limit: config.http.bodyLimit }, urlencoded: false };
  return {
    name: 'api',
    mixins: [ApiGateway],
    settings: {
      port: config.port,
      ip: config.host,
      logRequest: null,
      logResponse: null,
      log4XXResponses: false,
      logRequestParams: null,
      logResponseData: null,
      routes: [
        {
          path: '/api/admin',
          authorization: true,
          mappingPolicy: 'restrict',
          bodyParsers: jsonOnly,
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
          },
          onAfterCall: envelope,
        },
        {
          path: '/api',
          mappingPolicy: 'restrict',
          bodyParsers: jsonOnly,
          logging: false,
          aliases: {
            'GET tickets/list': 'tickets.list',
            'GET tickets/verify-hash': 'tickets.verifyHash',
            'GET tickets/validate-time': 'tickets.validateTime',
            'POST tickets/v1/purchase': 'tickets.purchaseV1',
            'GET tickets/orders': 'tickets.orders',
            'POST tickets/orders/cancel': 'tickets.cancel',
            'GET tickets/stats': 'tickets.stats',
            'POST tickets/v2/purchase': 'purchase.submit',
            'GET tickets/v2/purchase/result': 'purchase.result',
            'GET tickets/v2/purchase/result/user': 'purchase.resultByUser',
            'POST tickets/v2/purchase/results': 'purchase.results',
            'GET tickets/v2/purchase/stream'(this: Service, req: Req, res: ServerResponse) {
              streamResult(runtimeOf(this.broker), req, res);
            },
            'GET monitor/stream': 'monitor.stream',
            'GET monitor/snapshot': 'monitor.snapshot',
          },
          onAfterCall: envelope,
        },
        {
          path: '/',
          mappingPolicy: 'restrict',
          bodyParsers: false,
          logging: false,
          aliases: {
            async 'GET health'(this: Service, _req: Req, res: ServerResponse) {
              const health = await checkHealth(this.broker, runtimeOf(this.broker));
              const up = health.status === 'up';
              send(res, up ? 200 : 503, {
                code: up ? 200 : 5030,
                message: up ? 'success' : ERRORS.UNAVAILABLE.message,
                data: health,
              });
            },
            'GET metrics'(this: Service, _req: Req, res: ServerResponse) {
              res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
              res.end(prometheusText(this.broker.metrics));
            },
            'GET demo'(_req: Req, res: ServerResponse) {
              res.writeHead(302, { Location: '/' });
              res.end();
            },
          },
        },
      ],
      assets: { folder: publicDir(), options: { index: 'index.html' } },
      onError(this: Service, req: Req, res: ServerResponse, err: Error) {
        const { status, body } = errorEnvelope(err);
        if (body.code === 5000) this.logger.error('Request failed', req.method, req.url, err);
        send(res, status, body);
      },
    },
    methods: {
      authorize(_ctx: Context, _route: unknown, req: Req) {
        if (!config.adminToken || !tokenMatches(config.adminToken, req.headers.authorization)) {
          throw appError('UNAUTHORIZED');
        }
      },
    },
  };
}
