import type { ServerResponse } from 'node:http';
import { ERRORS, type ErrorName } from '../errors';

/** The SPEC §3 answer of every JSON route. */
export interface Envelope {
  code: number;
  message: string;
  data: unknown;
}

export const success = (data: unknown): Envelope => ({ code: 200, message: 'success', data });

/** A SPEC error's envelope: its own message unless another is given, no data. */
export const failure = (name: ErrorName, message: string = ERRORS[name].message): Envelope => ({
  code: ERRORS[name].code,
  message,
  data: null,
});

/**
 * Writes a serialized envelope if the response can still be written: a client that left, or an
 * answer already under way, gets nothing more (writing then would throw ERR_HTTP_HEADERS_SENT).
 */
export function sendJson(res: ServerResponse, status: number, payload: string): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

export function sendEnvelope(res: ServerResponse, status: number, body: Envelope): void {
  sendJson(res, status, JSON.stringify(body));
}

/** A SPEC error with its HTTP status. */
export function sendError(res: ServerResponse, name: ErrorName, message?: string): void {
  sendEnvelope(res, ERRORS[name].http, failure(name, message));
}
