import { timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Context } from 'moleculer';
import type { Config } from '../../config';
import { appError } from '../errors';
import { clientIp, WaitSlots } from './abuse';
import { createAuthenticator } from './auth';
import { MONITOR_STREAM, V2_STREAM, type Next, type Req } from './request';

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

interface AliasInfo {
  action?: string | null;
  fullPath?: string;
}

/** A bearer token equal to `expected`, compared in constant time. */
export function tokenMatches(expected: string, header: string | undefined): boolean {
  const given = /^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '';
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  // Compare equal-length buffers only, and always do the comparison so timing says nothing.
  return timingSafeEqual(a.length === b.length ? a : b, b) && a.length === b.length;
}

/**
 * The HTTP door binds the user from the token: a `userId` the client sends must be the signed-in
 * user's (4003 otherwise); where the action takes one and none was sent, the token's is filled in.
 * A malformed value is left for the action's rules to refuse (1001).
 */
export function bindUser(params: Record<string, unknown>, user: number, fill: boolean): void {
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

/**
 * Who may pass the HTTP door (SPEC §3.1, §8): the sign-in, the operators' tokens, the user bound
 * into the parameters, and the slots for connections held open.
 */
export function createAccess(config: Config) {
  const authenticate = config.auth.mode === 'jwt' ? createAuthenticator(config.auth) : null;
  const { abuse } = config;
  const waits = new WaitSlots(abuse.waitsPerIp, abuse.waitsPerGateway);
  const operatorTokens = [config.metricsToken, config.adminToken].filter((t): t is string => !!t);

  /** /metrics and /api/monitor/*: public unless METRICS_TOKEN is set; then it or the admin token. */
  const checkMetricsToken = (req: Req): void => {
    if (!config.metricsToken) return;
    const header = req.headers.authorization;
    if (!operatorTokens.some((token) => tokenMatches(token, header))) throw appError('UNAUTHORIZED');
  };

  return {
    signedIn: authenticate !== null,
    checkMetricsToken,

    /**
     * AUTH_MODE=jwt: any path under /api but the public ones needs a valid token (4002). Without
     * sign-in it only passes the request on, with no promise per request.
     */
    signIn: authenticate
      ? async (req: Req, _res: ServerResponse, next: Next): Promise<void> => {
          if (PUBLIC_PATHS.has(req.parsedUrl ?? '')) return next();
          try {
            req.$user = await authenticate(req.headers.authorization);
          } catch (err) {
            return next(err);
          }
          next();
        }
      : (_req: Req, _res: ServerResponse, next: Next): void => next(),

    /**
     * Before any action or handler of /api runs, decided on the resolved alias (not on the raw path):
     * the operators' token for the monitor, the signed-in user bound into the parameters, and a slot
     * for a connection held open (stream, long-poll) freed when the client leaves.
     */
    beforeCall(ctx: Context, _route: unknown, req: Req, res: ServerResponse, alias?: AliasInfo): void {
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
        const release = waits.take(clientIp(req, abuse.trustProxy));
        if (!release) throw appError('RATE_LIMITED', 'Too many open streams or long-polls');
        res.once('close', release);
      }
    },

    /** The admin routes: the admin token only. */
    authorize(_ctx: Context, _route: unknown, req: Req): void {
      if (!config.adminToken || !tokenMatches(config.adminToken, req.headers.authorization)) {
        throw appError('UNAUTHORIZED');
      }
    },
  };
}

export type Access = ReturnType<typeof createAccess>;
