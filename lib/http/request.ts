import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context } from 'moleculer';

/** A request as moleculer-web hands it to middlewares, hooks and handlers. */
export type Req = IncomingMessage & {
  $ctx?: Context<unknown, { userId?: number }>;
  $params?: Record<string, unknown>;
  parsedUrl?: string;
  query?: Record<string, unknown>;
  body?: unknown;
  /** The signed-in user (AUTH_MODE=jwt), from the bearer token. */
  $user?: number;
};
export type Next = (err?: unknown) => void;
export type Middleware = (req: Req, res: ServerResponse, next: Next) => void | Promise<void>;
/** A compiled fastest-validator check: true, or the list of what is wrong. */
export type Check = (value: unknown) => true | unknown[];

export const V2_SUBMIT = '/api/tickets/v2/purchase';
export const V2_RESULT = '/api/tickets/v2/purchase/result';
export const V2_STREAM = '/api/tickets/v2/purchase/stream';
export const MONITOR_STREAM = '/api/monitor/stream';

export const isEmpty = (value: object | undefined): boolean => {
  for (const _ in value) return false;
  return true;
};
