import type { Config } from '../../config';

/** What every moleculer-web gateway shares: the service's and the benchmark's echo baseline. */
export const gatewayBase = (config: Config) => ({
  port: config.port,
  ip: config.host,
  logRequest: null,
  logResponse: null,
  log4XXResponses: false,
  logRequestParams: null,
  logResponseData: null,
});

/**
 * JSON reviver refusing a `__proto__` key (answered 1001 like any unparsable body): moleculer-web merges
 * the body into the params with Object.assign, which would make that key the params' prototype and
 * let its fields slip past the strict unknown-field check.
 */
export function refuseProtoKey(key: string, value: unknown): unknown {
  if (key === '__proto__') throw new SyntaxError('Forbidden key "__proto__" in the JSON body');
  return value;
}

const UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 * 1024 };

/** HTTP_BODY_LIMIT in bytes (its pattern is checked by the configuration). */
export function bodyLimitBytes(config: Config): number {
  const [, n, unit] = /^(\d+)(b|kb|mb)$/.exec(config.http.bodyLimit) ?? ['', '0', 'b'];
  return Number(n) * UNITS[unit];
}

/** The body parsers of every JSON route: strict JSON objects up to the configured size, nothing else. */
export const jsonBody = (config: Config) => ({
  json: { strict: true, limit: bodyLimitBytes(config), reviver: refuseProtoKey },
  urlencoded: false,
});
