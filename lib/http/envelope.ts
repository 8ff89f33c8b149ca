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

const JSON_TYPE = 'application/json; charset=utf-8';

/** Headers set aside for an answer that has none set yet (holdHeaders): name, value, name, value… */
const held = new WeakMap<ServerResponse, string[]>();

/**
 * Sets `headers` (a list of its own, which the answer extends) aside for `res`'s answer, to go out
 * with its status in one `writeHead`: given a list on a response with no header set, Node writes it
 * as it is, where each `setHeader` costs a validation and a map entry. Only answers written by
 * sendJson carry them.
 */
export function holdHeaders(res: ServerResponse, headers: string[]): void {
  held.set(res, headers);
}

/** Forgets the headers held for `res` (its answer is left to another writer). */
export function dropHeaders(res: ServerResponse): void {
  held.delete(res);
}

/**
 * Writes a serialized envelope if the response can still be written: a client that left, or an
 * answer already under way, gets nothing more (writing then would throw ERR_HTTP_HEADERS_SENT).
 */
export function sendJson(res: ServerResponse, status: number, payload: string): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  const length = Buffer.byteLength(payload);
  const headers = held.get(res);
  if (headers) {
    headers.push('Content-Type', JSON_TYPE, 'Content-Length', String(length));
    res.writeHead(status, headers);
  } else {
    res.writeHead(status, { 'Content-Type': JSON_TYPE, 'Content-Length': length });
  }
  res.end(payload);
}

export function sendEnvelope(res: ServerResponse, status: number, body: Envelope): void {
  sendJson(res, status, JSON.stringify(body));
}

/** A SPEC error with its HTTP status. */
export function sendError(res: ServerResponse, name: ErrorName, message?: string): void {
  sendEnvelope(res, ERRORS[name].http, failure(name, message));
}
