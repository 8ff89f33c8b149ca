import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { dropHeaders, holdHeaders } from './envelope';
import { refuseProtoKey } from './settings';
import type { Middleware, Next, Req } from './request';

/** The few routes a crowd hits, taken before moleculer-web (see takeHotRoutes). */
export interface HotRoutes {
  /** POST paths with a JSON object body (exact, no query string). */
  posts: ReadonlySet<string>;
  /** GET paths with a plain query (`key=value` pairs of unreserved characters, each key once). */
  gets: ReadonlySet<string>;
  /** What moleculer-web runs after the body parser, in its order: the door's checks, then the answer. */
  chain: Middleware[];
  /** Largest body read here (the route's body parser limit); anything larger goes to moleculer-web. */
  bodyLimit: number;
  /**
   * The gateway's error answer (its onError), for a failure of the chain or a body that is not JSON.
   * It and the chain answer through sendJson (envelope.ts), which writes the held headers.
   */
  fail(req: Req, res: ServerResponse, err: unknown): void;
  /** Headers of every answer of the server, hot or not (the gateway's security headers). */
  headers: Readonly<Record<string, string>>;
}

/** Requests the chain passed on to moleculer-web, whose route must not run them through it again. */
const passedOn = new WeakSet<IncomingMessage>();

/**
 * A route middleware of the chain as moleculer-web runs it: skipped for a request the hot routes
 * already ran through the chain (its door must not count the request twice).
 */
export const skipIfTaken =
  (step: Middleware): Middleware =>
  (req, res, next) =>
    passedOn.has(req) ? next() : step(req, res, next);

/**
 * Takes the hot routes off moleculer-web: every request of it costs an action call (`api.rest`:
 * a context, Moleculer's action middlewares and metrics) and the body-parser stack before any route
 * middleware runs, which was about half of what a sold-out refusal or a terminal poll cost the
 * gateway. A request of `posts` or `gets` in its plain form (a JSON body of known length, no content
 * encoding; a query of plain pairs) is parsed here as the route would parse it and goes through the
 * route's chain; whatever the chain passes on (`next()`) and every other request go to moleculer-web,
 * which finds the body read and the door passed. Call it once moleculer-web made its server and
 * before anything else listens for requests.
 */
export function takeHotRoutes(server: Server, routes: HotRoutes): void {
  const listeners = server.listeners('request');
  if (listeners.length !== 1) throw new Error('takeHotRoutes: expected moleculer-web alone on the server');
  const moleculerWeb = listeners[0] as Gateway;
  const headers = Object.entries(routes.headers);
  const held = headers.flat();
  // A hot answer carries the correlation id moleculer-web would give the request.
  const hold = (req: IncomingMessage, res: ServerResponse) =>
    holdHeaders(res, [...held, 'X-Request-ID', requestId(req)]);
  // Everything moleculer-web answers gets the headers the usual way, before it starts.
  const gateway: Gateway = (req, res) => {
    for (const [name, value] of headers) res.setHeader(name, value);
    moleculerWeb(req, res);
  };
  server.removeAllListeners('request');
  server.on('request', (req: Req, res: ServerResponse) => {
    const url = req.url ?? '';
    if (req.method === 'POST' && routes.posts.has(url) && plainBody(req, routes.bodyLimit)) {
      hold(req, res);
      readJson(req, (err, body) => {
        if (err) return routes.fail(req, res, err);
        req.parsedUrl = url;
        req.query = {};
        req.body = body;
        runChain(routes, gateway, req, res);
      });
      return;
    }
    if (req.method === 'GET' && noBody(req)) {
      const mark = url.indexOf('?');
      const path = url.slice(0, mark);
      const query = mark > 0 && routes.gets.has(path) ? plainQuery(url.slice(mark + 1)) : undefined;
      if (query) {
        hold(req, res);
        req.parsedUrl = path;
        req.query = query;
        return runChain(routes, gateway, req, res);
      }
    }
    gateway(req, res);
  });
}

type Gateway = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The chain with moleculer-web's hand-over: an error goes to the error answer, a plain `next()` to
 * the gateway (which sets its own request fields, correlation id included, and runs the route as
 * usual).
 */
function runChain(routes: HotRoutes, gateway: Gateway, req: Req, res: ServerResponse): void {
  const { chain, fail } = routes;
  let i = 0;
  const next: Next = (err) => {
    if (err) return fail(req, res, err);
    const step = chain[i++];
    if (!step) {
      passedOn.add(req);
      dropHeaders(res);
      return gateway(req, res);
    }
    try {
      const done = step(req, res, next);
      if (done) done.catch(next);
    } catch (e) {
      next(e);
    }
  };
  next();
}

/** moleculer-web's request id: the client's correlation header, or a new id. */
function requestId(req: IncomingMessage): string {
  const given = req.headers['x-correlation-id'] ?? req.headers['x-request-id'];
  return typeof given === 'string' && given ? given : randomUUID();
}

const JSON_TYPES = new Set([
  'application/json',
  'application/json; charset=utf-8',
  'application/json;charset=utf-8',
]);

/** A JSON body of known length within the limit, not compressed: what the body parser reads the plain way. */
function plainBody(req: IncomingMessage, limit: number): boolean {
  const { headers } = req;
  if (headers['transfer-encoding'] !== undefined || headers['content-encoding'] !== undefined) return false;
  const type = headers['content-type'];
  if (type === undefined || !JSON_TYPES.has(type.toLowerCase())) return false;
  const length = Number(headers['content-length']);
  return Number.isInteger(length) && length > 0 && length <= limit;
}

const noBody = ({ headers }: IncomingMessage): boolean =>
  headers['transfer-encoding'] === undefined &&
  (headers['content-length'] === undefined || headers['content-length'] === '0');

/**
 * The body as the route's JSON parser takes it: UTF-8 without a byte-order mark, an object or an
 * array (strict), no `__proto__` key; anything else is its 400 'entity.parse.failed'. A request that
 * ends early is answered by nobody, as there.
 */
function readJson(req: IncomingMessage, done: (err: unknown, body?: unknown) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('error', () => undefined);
  req.on('end', () => {
    let text = (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString('utf8');
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const first = /\S/.exec(text)?.[0];
    try {
      if (first !== '{' && first !== '[') throw new SyntaxError('Unexpected token in JSON (strict)');
      // The reviver costs a call per value: only a body that could name the key needs it.
      const risky = text.includes('__proto__') || text.includes('\\');
      done(undefined, risky ? JSON.parse(text, refuseProtoKey) : JSON.parse(text));
    } catch (err) {
      done(Object.assign(err as Error, { status: 400, type: 'entity.parse.failed' }));
    }
  });
}

const PAIR = /^([\w.~-]+)=([\w.~-]*)$/;

/** `a=1&b=2` as an object, or undefined for anything the route's query parser might read otherwise. */
function plainQuery(search: string): Record<string, string> | undefined {
  const query: Record<string, string> = {};
  for (const part of search.split('&')) {
    const pair = PAIR.exec(part);
    // A repeated key is an array there; an inherited name (`__proto__`, `constructor`) is left to it.
    if (!pair || pair[1] in query) return undefined;
    query[pair[1]] = pair[2];
  }
  return query;
}
