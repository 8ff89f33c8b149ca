import { timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import path from 'node:path';
import type { Context, Service, ServiceSchema } from 'moleculer';
import ApiGateway, { type ApiSettingsSchema } from 'moleculer-web';
import type { Config } from '../config';
import {
  appCodeOf,
  appError,
  ERRORS,
  httpStatusOf,
  isRefusal,
  isTransientError,
  messageOf,
} from '../lib/errors';
import { failure, sendEnvelope, sendJson, success, type Envelope } from '../lib/envelope';
import { clientIp, SECURITY_HEADERS, WaitSlots, WindowLimiter } from '../lib/abuse';
import { createAuthenticator, type Authenticate } from '../lib/auth';
import { checkHealth } from '../lib/health';
import { prometheusText } from '../lib/metrics-reporter';
import { publicDir } from '../lib/paths';
import { runtimeOf } from '../lib/runtime';
import { localGateway, localMonitor } from './local';
import { streamResult } from '../lib/purchase/stream';
import { streamMonitor } from '../lib/monitor/stream';
import type { PurchaseRequest } from '../lib/purchase/admission';
import { purchaseParams, resultParams } from '../lib/validation';
import type { ResultRecord } from '../lib/purchase/results';

type Req = IncomingMessage & {
  $ctx?: Context<unknown, { userId?: number }>;
  $params?: Record<string, unknown>;
  parsedUrl?: string;
  query?: Record<string, unknown>;
  body?: unknown;
  /** The signed-in user (AUTH_MODE=jwt), from the bearer token. */
  $user?: number;
};
type Next = (err?: unknown) => void;
type Check = (value: unknown) => true | unknown[];
type ApiService = Service & { validPurchase?: Check; validResult?: Check };
interface AliasInfo {
  action?: string | null;
  fullPath?: string;
}
/** Node sets `_httpMessage` to the response in progress on a server socket. */
type ClientSocket = Socket & { _httpMessage?: ServerResponse | null };

const HEADERS = Object.entries(SECURITY_HEADERS);

const V2_SUBMIT = '/api/tickets/v2/purchase';
const V2_RESULT = '/api/tickets/v2/purchase/result';
const V2_STREAM = '/api/tickets/v2/purchase/stream';
const MONITOR_STREAM = '/api/monitor/stream';

/** What anyone may read without signing in; every other path under /api needs the token (jwt mode). */
const PUBLIC_PATHS = new Set([
  '/api/tickets/list',
  '/api/tickets/validate-time',
  '/api/tickets/stats',
  MONITOR_STREAM,
  '/api/monitor/snapshot',
  '/api/monitor/alerts',
]);
/** The user endpoints (SPEC §3.1), by action or handler path: true where the action takes a userId. */
const USER_CALLS = new Map<string, boolean>([
  ['tickets.verifyHash', true],
  ['tickets.purchaseV1', true],
  ['tickets.orders', true],
  ['tickets.cancel', true],
  ['purchase.submit', true],
  ['purchase.resultByUser', true],
  ['purchase.result', false],
  ['purchase.results', false],
  [V2_STREAM, false],
]);
const MONITOR_CALLS = new Set(['monitor.snapshot', 'monitor.alerts', MONITOR_STREAM]);

/**
 * The HTTP door binds the user from the token: a `userId` the client sends must be the signed-in
 * user's (4003 otherwise); where the action takes one and none was sent, the token's is filled in.
 * A malformed value is left for the action's rules to refuse (1001).
 */
function bindUser(params: Record<string, unknown>, user: number, fill: boolean): void {
  const given = params.userId;
  if (given === undefined) {
    if (fill) params.userId = user;
    return;
  }
  const wellFormed =
    (typeof given === 'number' && Number.isSafeInteger(given)) ||
    (typeof given === 'string' && /^\d{1,16}$/.test(given));
  if (wellFormed && Number(given) !== user) throw appError('FORBIDDEN');
}

const isEmpty = (value: object | undefined): boolean => {
  for (const _ in value) return false;
  return true;
};

/** Success envelopes of terminal results, serialized once per record (records are immutable). */
const resultAnswers = new WeakMap<ResultRecord, string>();

/**
 * What the gateway answers from its own memory (route middleware, after the body parser), with the
 * same envelope and without an action call: a well-formed V2 submit it refuses alone (sold out,
 * paused, outside the sale) — the sold-out storm — and a well-formed poll of a terminal result it
 * holds. Anything else goes on to its action.
 */
function answerLocally(this: ApiService, req: Req, res: ServerResponse, next: Next): void {
  const gateway = localGateway(this.broker);
  if (!gateway) return next();
  if (req.method === 'POST' && req.parsedUrl === V2_SUBMIT) {
    const body = req.body as PurchaseRequest | null | undefined;
    if (typeof body !== 'object' || body === null) return next();
    if (req.$user !== undefined) {
      try {
        bindUser(body as unknown as Record<string, unknown>, req.$user, true);
      } catch (err) {
        return next(err);
      }
    }
    if (!isEmpty(req.query) || this.validPurchase?.(body) !== true) return next();
    const refusal = gateway.refuseLocally(body);
    if (!refusal) return next();
    return sendEnvelope(res, refusal.http, { code: refusal.code, message: refusal.message, data: null });
  }
  if (req.method === 'GET' && req.parsedUrl === V2_RESULT) {
    const query = req.query as { messageId?: string } | undefined;
    // A body (moleculer-web merges or refuses it) is for the action's rules to judge.
    const { body } = req;
    if (body !== undefined && !(typeof body === 'object' && body !== null && isEmpty(body))) return next();
    if (this.validResult?.(query) !== true || !query?.messageId) return next();
    const record = gateway.terminalResult(query.messageId);
    // Another user's message: the action answers it like a missing one.
    if (!record || (req.$user !== undefined && record.userId !== req.$user)) return next();
    let answer = resultAnswers.get(record);
    if (answer === undefined) {
      answer = JSON.stringify(success(record));
      resultAnswers.set(record, answer);
    }
    return sendJson(res, 200, answer);
  }
  next();
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
      body: {
        code: ERRORS.INVALID_PARAM.code,
        message,
        data: fields.map((f) => ({ field: f.field, message: f.message })),
      },
    };
  }
  const status = typeof e.code === 'number' ? e.code : (e.status ?? 500);
  if (e.type === 'entity.too.large' || status === 413) {
    return { status: 413, body: failure('INVALID_PARAM', 'Request body too large') };
  }
  if (
    e.type === 'entity.parse.failed' ||
    e.type === 'encoding.unsupported' ||
    e.type === 'charset.unsupported'
  ) {
    return { status: 400, body: failure('INVALID_PARAM', 'Request body is not valid JSON') };
  }
  // Other body-parser refusals (broken gzip, wrong content length…): moleculer-web wraps them in a bare
  // MoleculerError whose code is the parser's 4xx status or the Node error code.
  if (e.name === 'MoleculerError' && (typeof e.code === 'string' || (status >= 400 && status < 500))) {
    return { status: 400, body: failure('INVALID_PARAM', 'Request body could not be read') };
  }
  // moleculer-web's own refusals: an undecodable path parameter (`%E0%A4%A`), a body that is no object.
  if (e.name === 'BadRequestError' || e.name === 'InvalidRequestBodyError') {
    return { status: 400, body: failure('INVALID_PARAM') };
  }
  if (e.name === 'NotFoundError')
    return { status: 404, body: { code: 404, message: 'Not found', data: null } };
  if (
    [
      'ServiceNotFoundError',
      'ServiceNotAvailableError',
      'ServiceUnavailableError', // moleculer-web: no node runs the aliased action
      'RequestTimeoutError',
      'BrokerDisconnectedError',
    ].includes(e.name ?? '') ||
    // The database or Redis unreachable, a lock timeout, a deadlock: worth trying again shortly.
    isTransientError(err)
  ) {
    return { status: 503, body: failure('UNAVAILABLE') };
  }
  return { status: 500, body: failure('INTERNAL') };
}

function tokenMatches(expected: string, header: string | undefined): boolean {
  const given = /^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '';
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  // Compare equal-length buffers only, and always do the comparison so timing says nothing.
  return timingSafeEqual(a.length === b.length ? a : b, b) && a.length === b.length;
}

/**
 * JSON reviver refusing a `__proto__` key (answered 1001 like any unparsable body): moleculer-web merges
 * the body into the params with Object.assign, which would make that key the params' prototype and
 * let its fields slip past the strict unknown-field check.
 */
function refuseProtoKey(key: string, value: unknown): unknown {
  if (key === '__proto__') throw new SyntaxError('Forbidden key "__proto__" in the JSON body');
  return value;
}

/** Success, or a refusal the action answered as a value (its HTTP status is already in ctx.meta). */
export const envelope = (
  _ctx: Context,
  _route: unknown,
  _req: Req,
  _res: ServerResponse,
  data: unknown,
): Envelope => (isRefusal(data) ? { code: data.code, message: data.message, data: null } : success(data));

/** What every gateway shares: the service's and the benchmark's echo baseline. */
export const gatewayBase = (config: Config) => ({
  port: config.port,
  ip: config.host,
  logRequest: null,
  logResponse: null,
  log4XXResponses: false,
  logRequestParams: null,
  logResponseData: null,
});

/** The REST gateway (moleculer-web): routes of SPEC §3, the envelope, health, metrics and pages. */
export function createApiService(config: Config): ServiceSchema<ApiSettingsSchema> {
  const authenticate: Authenticate | null =
    config.auth.mode === 'jwt' ? createAuthenticator(config.auth) : null;
  let ipLimit: WindowLimiter; // needs the broker's Redis client: made when the service is created
  const waits = new WaitSlots(config.abuse.waitsPerIp, config.abuse.waitsPerGateway);
  const operatorTokens = [config.metricsToken, config.adminToken].filter((t): t is string => !!t);
  /** /metrics and /api/monitor/*: public unless METRICS_TOKEN is set; then it or the admin token. */
  const checkMetricsToken = (req: Req) => {
    if (!config.metricsToken) return;
    const header = req.headers.authorization;
    if (!operatorTokens.some((token) => tokenMatches(token, header))) throw appError('UNAUTHORIZED');
  };

  /** Every request (pages too): the per-client-IP limit, kept in Redis so it holds across gateways. */
  async function guardDoor(req: Req, _res: ServerResponse, next: Next): Promise<void> {
    if (!(await ipLimit.take(clientIp(req, config.abuse.trustProxy)))) {
      return next(appError('RATE_LIMITED'));
    }
    next();
  }

  /** AUTH_MODE=jwt: any path under /api but the public ones needs a valid token (4002). */
  async function signIn(req: Req, _res: ServerResponse, next: Next): Promise<void> {
    if (!authenticate || PUBLIC_PATHS.has(req.parsedUrl ?? '')) return next();
    try {
      req.$user = await authenticate(req.headers.authorization);
    } catch (err) {
      return next(err);
    }
    next();
  }

  /**
   * Before any action or handler of /api runs, decided on the resolved alias (not on the raw path):
   * the operators' token for the monitor, the signed-in user bound into the parameters, and a slot
   * for a connection held open (stream, long-poll) freed when the client leaves.
   */
  function beforeCall(ctx: Context, _route: unknown, req: Req, res: ServerResponse, alias?: AliasInfo) {
    const call = alias?.action ?? alias?.fullPath ?? '';
    if (MONITOR_CALLS.has(call)) checkMetricsToken(req);
    const takesUser = USER_CALLS.get(call);
    if (authenticate && takesUser !== undefined) {
      if (req.$user === undefined) throw appError('UNAUTHENTICATED');
      (ctx.meta as { userId?: number }).userId = req.$user;
      bindUser(req.$params ?? {}, req.$user, takesUser);
    }
    const params = req.$params ?? {};
    const holds =
      call === V2_STREAM ||
      call === MONITOR_STREAM ||
      (call === 'purchase.result' && Number(params.waitMs) > 0);
    if (holds) {
      const release = waits.take(clientIp(req, config.abuse.trustProxy));
      if (!release) throw appError('RATE_LIMITED', 'Too many open streams or long-polls');
      res.once('close', release);
    }
  }

  const jsonOnly = {
    json: { strict: true, limit: config.http.bodyLimit, reviver: refuseProtoKey },
    urlencoded: false,
  };
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
            // The operator's view of any user's orders (in AUTH_MODE=jwt the public ones are the user's own).
            'GET orders': 'tickets.orders',
            'POST orders/cancel': 'tickets.cancel',
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
            'POST tickets/v2/purchase': 'purchase.submit', // or answerLocally, below
            'GET tickets/v2/purchase/result': 'purchase.result', // or answerLocally, below
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
          use: [signIn, answerLocally],
          onBeforeCall: beforeCall,
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
              const health = await checkHealth(this.broker, { db, redis });
              const up = health.status === 'up';
              sendEnvelope(res, up ? 200 : 503, {
                code: up ? 200 : ERRORS.UNAVAILABLE.code,
                message: up ? 'success' : ERRORS.UNAVAILABLE.message,
                data: health,
              });
            },
            'GET metrics'(this: Service, req: Req, res: ServerResponse) {
              checkMetricsToken(req);
              res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
              res.end(prometheusText(this.broker.metrics));
            },
            'GET demo'(_req: Req, res: ServerResponse) {
              res.writeHead(302, { Location: '/' });
              res.end();
            },
            'GET vendor/chart.js'(_req: Req, res: ServerResponse) {
              // The dashboard's charts, served from the project (chart.js exports no subpath for its UMD file).
              let file: string;
              try {
                file = path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.js');
              } catch {
                return sendEnvelope(res, 404, { code: 404, message: 'Not found', data: null });
              }
              res.writeHead(200, {
                'Content-Type': 'application/javascript; charset=utf-8',
                'Cache-Control': 'public, max-age=86400',
              });
              createReadStream(file)
                .on('error', () => res.destroy())
                .pipe(res);
            },
          },
        },
      ],
      use: [guardDoor],
      assets: { folder: publicDir(), options: { index: 'index.html' } },
      onError(this: Service, req: Req, res: ServerResponse, err: Error) {
        const { status, body } = errorEnvelope(err);
        if (body.code === 5000) this.logger.error('Request failed', req.method, req.url, err);
        sendEnvelope(res, status, body);
      },
    },
    created(this: ApiService) {
      const { abuse } = config;
      ipLimit = new WindowLimiter(runtimeOf(this.broker).redis, 'ip', abuse.ipMax, abuse.ipWindowMs);
      // answerLocally checks requests by the actions' own rules, compiled by the broker's validator.
      const validator = this.broker.validator;
      if (!validator) throw new Error('The gateway needs the broker validator');
      this.validPurchase = validator.compile(purchaseParams) as Check;
      this.validResult = validator.compile(resultParams) as Check;
      // Requests Node's HTTP parser refuses (e.g. a URL over the header limit) get the envelope too.
      const { server } = this as unknown as { server: Server };
      // Before moleculer-web sees the request: every answer, refusals of any stage included.
      server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
        for (const [name, value] of HEADERS) res.setHeader(name, value);
      });
      const answered = new WeakSet<Socket>();
      server.on('clientError', (err: NodeJS.ErrnoException, socket: ClientSocket) => {
        if (answered.has(socket)) return;
        // As Node does: answer only when no response on this (keep-alive) socket has started.
        if (err.code === 'ECONNRESET' || !socket.writable || socket._httpMessage?.headersSent) {
          socket.destroy();
          return;
        }
        answered.add(socket);
        const status =
          err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
        const payload = JSON.stringify(failure('INVALID_PARAM', 'Malformed or oversized request'));
        // Drain what the client still sends: closing with unread input would reset the connection
        // before the client has read the answer.
        socket.removeAllListeners('data');
        socket.on('data', () => undefined);
        socket.end(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
            HEADERS.map(([name, value]) => `${name}: ${value}\r\n`).join('') +
            `Content-Length: ${Buffer.byteLength(payload)}\r\nConnection: close\r\n\r\n${payload}`,
        );
        setTimeout(() => socket.destroy(), 5000).unref();
      });
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
      authorize(_ctx: Context, _route: unknown, req: Req) {
        if (!config.adminToken || !tokenMatches(config.adminToken, req.headers.authorization)) {
          throw appError('UNAUTHORIZED');
        }
      },
    },
  };
}
