import { Agent, request as httpRequest } from 'node:http';

export interface Envelope<T = unknown> {
  code: number;
  message: string;
  data: T;
}

export interface Answer<T = unknown> {
  status: number;
  body: Envelope<T>;
  /** Milliseconds from sending to the complete answer. */
  ms: number;
  /** performance.now() when the request was sent. */
  sentAt: number;
}

/** A small keep-alive HTTP/1.1 client for the bench's own calls (admin, flash crowd, result queries). */
export class HttpClient {
  private readonly agent: Agent;

  constructor(maxSockets = 256) {
    this.agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  call<T = unknown>(
    baseUrl: string,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    timeoutMs = 30_000,
  ): Promise<Answer<T>> {
    const url = new URL(path, baseUrl);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const sentAt = performance.now();
      const req = httpRequest(
        {
          agent: this.agent,
          method,
          hostname: url.hostname,
          port: url.port,
          path: url.pathname + url.search,
          headers: payload
            ? { 'content-type': 'application/json', 'content-length': String(payload.length), ...headers }
            : headers,
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const ms = performance.now() - sentAt;
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: Envelope<T>;
            try {
              parsed = JSON.parse(text) as Envelope<T>;
            } catch {
              parsed = { code: -1, message: text.slice(0, 200), data: null as T };
            }
            resolve({ status: res.statusCode ?? 0, body: parsed, ms, sentAt });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Runs `task` over `items` with at most `limit` at a time. */
export async function eachLimit<T>(
  items: T[],
  limit: number,
  task: (item: T, index: number) => Promise<void>,
) {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await task(items[i], i);
    }
  });
  await Promise.all(lanes);
}
