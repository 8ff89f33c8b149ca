import type { Context } from 'moleculer';
import { appCodeOf, ERRORS, httpStatusOf, isRefusal, isTransientError, messageOf } from '../errors';
import { failure, success, type Envelope } from './envelope';

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

/** moleculer-web's onAfterCall: success, or a refusal the action answered as a value (its HTTP status is already in ctx.meta). */
export const envelope = (
  _ctx: Context,
  _route: unknown,
  _req: unknown,
  _res: unknown,
  data: unknown,
): Envelope => (isRefusal(data) ? { code: data.code, message: data.message, data: null } : success(data));
