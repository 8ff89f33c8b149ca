import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type Redis from 'ioredis';
import proxyAddr from 'proxy-addr';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/**
 * The client's address: the socket's peer, or with `hops` trusted proxies in front (TRUST_PROXY) the
 * address that many entries from the right of X-Forwarded-For. Entries further left are the
 * client's own words and never trusted.
 */
export function clientIp(req: IncomingMessage, hops: number): string {
  const peer = req.socket.remoteAddress ?? 'unknown';
  if (hops === 0) return peer;
  const forwarded = proxyAddr(req, (_addr, i) => i < hops);
  // Not an address (no proxy in front after all, or a broken one): never a key the client chose.
  return isIP(forwarded) ? forwarded : peer;
}

/**
 * A count per key and window kept in Redis, so that it holds across every gateway (SPEC §3.1).
 * A key over its limit is remembered in memory until its window ends: a flood costs no Redis call.
 * `take` answers false when the key is over; a Redis failure lets the request through (the service
 * behind answers 5030 by itself, and the pages stay reachable).
 */
export class WindowLimiter {
  private readonly limiter: RateLimiterRedis | null;
  /** False when the limit is off (a max of 0): every key passes. */
  readonly limits: boolean;

  constructor(redis: Redis, prefix: string, max: number, windowMs: number) {
    this.limiter =
      max > 0
        ? new RateLimiterRedis({
            storeClient: redis,
            keyPrefix: prefix,
            points: max,
            duration: windowMs / 1000,
            inMemoryBlockOnConsumed: max + 1,
          })
        : null;
    this.limits = this.limiter !== null;
  }

  async take(key: string): Promise<boolean> {
    if (!this.limiter) return true;
    try {
      await this.limiter.consume(key);
      return true;
    } catch (err) {
      return !(err instanceof RateLimiterRes);
    }
  }
}

/**
 * Slots for the connections a client holds open (SSE streams, long-polls) on this gateway: at most
 * `perIp` per client address and `total` in all (0 = no cap). `take` answers the release function,
 * or undefined when a cap is reached; the release is idempotent.
 */
export class WaitSlots {
  private readonly byIp = new Map<string, number>();
  private open = 0;

  constructor(
    private readonly perIp: number,
    private readonly total: number,
  ) {}

  get size(): number {
    return this.open;
  }

  take(ip: string): (() => void) | undefined {
    const held = this.byIp.get(ip) ?? 0;
    if ((this.perIp > 0 && held >= this.perIp) || (this.total > 0 && this.open >= this.total)) return;
    this.byIp.set(ip, held + 1);
    this.open++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.open--;
      const left = (this.byIp.get(ip) ?? 1) - 1;
      if (left > 0) this.byIp.set(ip, left);
      else this.byIp.delete(ip);
    };
  }
}

/**
 * Headers of every answer. The API answers JSON, which a browser must neither sniff, run nor frame:
 * nothing may load from it and nobody may embed it (the API set of OWASP's REST Security Cheat Sheet).
 */
export const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
} as const;

/** What the pages' files add (no inline script; the pages use inline style attributes). */
export const PAGE_HEADERS = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
  'Referrer-Policy': 'no-referrer',
} as const;
