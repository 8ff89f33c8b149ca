import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { sendJson } from '../../lib/http/envelope';
import { skipIfTaken, takeHotRoutes } from '../../lib/http/hot-routes';
import type { Middleware, Req } from '../../lib/http/request';

/** What the server answered, and who: the hot chain, its error answer, or the gateway behind it. */
interface Answer {
  status: number;
  by: string;
  seen: { body?: unknown; query?: unknown; parsedUrl?: string; passed?: boolean; error?: string };
  /** The answer's headers, as received. */
  headers: Record<string, string | string[] | undefined>;
}

describe('hot routes taken before moleculer-web', () => {
  let server: Server;
  let base: string;
  /** The chain hands a request on when its body says so. */
  const handOnAsked = (req: Req) => (req.body as { handOn?: boolean } | undefined)?.handOn === true;
  const door: string[] = [];

  /** The hot chain and its error answer write as the gateway's do (sendJson, with the held headers). */
  const reply = (res: ServerResponse, status: number, answer: Omit<Answer, 'status' | 'headers'>) =>
    sendJson(res, status, JSON.stringify(answer));
  /** The gateway behind writes its own way. */
  const gatewayReply = (res: ServerResponse, answer: Omit<Answer, 'status' | 'headers'>) => {
    res.setHeader('X-Request-ID', 'gateway-id');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer));
  };

  /** True when the gateway's route would skip its chain for this request (the hot routes ran it). */
  const passedDoor = (req: Req, res: ServerResponse): boolean => {
    let skipped = true;
    const step: Middleware = (_req, _res, next) => {
      skipped = false;
      next();
    };
    skipIfTaken(step)(req, res, () => undefined);
    return skipped;
  };

  beforeAll(async () => {
    // The gateway behind: reads the body itself only when nobody did (as the body parser does).
    server = createServer((req: Req, res) => {
      const seen = {
        body: req.body,
        query: req.query,
        parsedUrl: req.parsedUrl,
        passed: passedDoor(req, res),
      };
      if (req.complete) return gatewayReply(res, { by: 'gateway', seen });
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () =>
        gatewayReply(res, { by: 'gateway', seen: { ...seen, body: Buffer.concat(chunks).length } }),
      );
    });
    const doorCheck: Middleware = (req, _res, next) => {
      door.push(req.parsedUrl ?? '');
      if (req.headers['x-refuse'] === 'door') return next(new Error('refused at the door'));
      next();
    };
    const answer: Middleware = async (req, res, next) => {
      await Promise.resolve();
      if (handOnAsked(req) || (req.query as { handOn?: string }).handOn === '1') return next();
      if (req.headers['x-refuse'] === 'answer') throw new Error('answer failed');
      reply(res, 200, { by: 'hot', seen: { body: req.body, query: req.query, parsedUrl: req.parsedUrl } });
    };
    takeHotRoutes(server, {
      posts: new Set(['/hot']),
      gets: new Set(['/hot/result']),
      chain: [doorCheck, answer],
      bodyLimit: 64,
      headers: { 'X-Frame-Options': 'DENY', 'X-Content-Type-Options': 'nosniff' },
      fail: (_req: IncomingMessage, res, err) =>
        reply(res, 400, {
          by: 'fail',
          seen: { error: (err as { type?: string; message: string }).type ?? (err as Error).message },
        }),
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise((resolve) => server.close(resolve)));

  beforeEach(() => (door.length = 0));

  /** A raw request, so headers and body are exactly what the test says. */
  const send = (
    method: string,
    path: string,
    headers: Record<string, string | number>,
    body?: Buffer | string,
  ) =>
    new Promise<Answer>((resolve, reject) => {
      const req = request(`${base}${path}`, { method, headers }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            ...(JSON.parse(text) as Omit<Answer, 'status' | 'headers'>),
          }),
        );
      });
      req.on('error', reject);
      req.end(body);
    });
  const json = (path: string, value: unknown, headers: Record<string, string> = {}) => {
    const body = JSON.stringify(value);
    return send(
      'POST',
      path,
      { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
      body,
    );
  };

  it('answers a plain JSON POST through the chain, parsed as the route would, with a request id', async () => {
    const answer = await json('/hot', { userId: 1, date: '2026-12-01' });
    expect(answer).toMatchObject({
      status: 200,
      by: 'hot',
      seen: { body: { userId: 1, date: '2026-12-01' }, query: {}, parsedUrl: '/hot' },
    });
    expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.headers).toMatchObject({
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(JSON.stringify({ by: answer.by, seen: answer.seen }))),
    });
    expect(door).toEqual(['/hot']);
    // The client's correlation id is kept, as moleculer-web keeps it.
    expect((await json('/hot', {}, { 'x-request-id': 'abc-1' })).headers['x-request-id']).toBe('abc-1');
  });

  it("gives every answer the server headers: the chain's, its error answer's and the gateway's", async () => {
    const answers = [
      await json('/hot', {}, { 'x-refuse': 'door' }),
      await send('POST', '/hot', { 'content-type': 'application/json', 'content-length': 5 }, '{"a":'),
      await json('/hot', { handOn: true }),
      await json('/other', {}),
      await send('GET', '/hot/result?messageId=m-1', {}),
    ];
    expect(answers.map((a) => a.by)).toEqual(['fail', 'fail', 'gateway', 'gateway', 'hot']);
    for (const { headers } of answers)
      expect(headers).toMatchObject({ 'x-frame-options': 'DENY', 'x-content-type-options': 'nosniff' });
    // What the chain hands on is answered with the gateway's correlation id alone.
    expect(answers[2].headers['x-request-id']).toBe('gateway-id');
    expect(answers[0].headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('takes a body with a byte-order mark or a charset, as the body parser does', async () => {
    const body = '\ufeff{"a":1}';
    const bom = await send(
      'POST',
      '/hot',
      { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) },
      body,
    );
    expect(bom).toMatchObject({ by: 'hot', seen: { body: { a: 1 } } });
  });

  it.each([
    ['not JSON', '{"a":'],
    ['a bare value (strict)', '"text"'],
    ['a __proto__ key', '{"__proto__":{"admin":true}}'],
    ['an escaped __proto__ key', '{"\\u005f_proto__":{"admin":true}}'],
  ])('answers %s with the parser error, before the door', async (_, body) => {
    const answer = await send(
      'POST',
      '/hot',
      { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      body,
    );
    expect(answer).toMatchObject({ status: 400, by: 'fail', seen: { error: 'entity.parse.failed' } });
    expect(door).toEqual([]);
  });

  it('hands on what the chain passes: the gateway finds the body read and the door passed', async () => {
    const answer = await json('/hot', { handOn: true });
    expect(answer).toMatchObject({ by: 'gateway', seen: { body: { handOn: true }, passed: true } });
    expect(door).toEqual(['/hot']);
  });

  it('answers a failure of the door or of the answer with the error answer', async () => {
    expect(await json('/hot', {}, { 'x-refuse': 'door' })).toMatchObject({
      by: 'fail',
      seen: { error: 'refused at the door' },
    });
    expect(await json('/hot', {}, { 'x-refuse': 'answer' })).toMatchObject({
      by: 'fail',
      seen: { error: 'answer failed' },
    });
  });

  it.each<[string, string, string, Record<string, string | number>, Buffer | string | undefined]>([
    ['another path', 'POST', '/other', { 'content-type': 'application/json', 'content-length': 2 }, '{}'],
    ['a query string', 'POST', '/hot?x=1', { 'content-type': 'application/json', 'content-length': 2 }, '{}'],
    ['a trailing slash', 'POST', '/hot/', { 'content-type': 'application/json', 'content-length': 2 }, '{}'],
    ['another content type', 'POST', '/hot', { 'content-type': 'text/plain', 'content-length': 2 }, '{}'],
    ['no content type', 'POST', '/hot', { 'content-length': 2 }, '{}'],
    [
      'a compressed body',
      'POST',
      '/hot',
      {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'content-length': gzipSync('{}').length,
      },
      gzipSync('{}'),
    ],
    [
      'a chunked body',
      'POST',
      '/hot',
      { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      '{}',
    ],
    [
      'a body over the limit',
      'POST',
      '/hot',
      { 'content-type': 'application/json', 'content-length': 70 },
      `{"a":"${'x'.repeat(62)}"}`,
    ],
    ['an empty body', 'POST', '/hot', { 'content-type': 'application/json', 'content-length': 0 }, ''],
    ['a GET of the POST path', 'GET', '/hot', {}, undefined],
  ])('leaves %s to the gateway, body unread', async (_, method, path, headers, body) => {
    const answer = await send(method, path, headers, body);
    expect(answer.by).toBe('gateway');
    expect(answer.seen.passed).toBe(false);
    expect(door).toEqual([]);
  });

  it('answers a GET with a plain query through the chain', async () => {
    const answer = await send('GET', '/hot/result?messageId=0b7c-AZ_z.~', {});
    expect(answer).toMatchObject({
      by: 'hot',
      seen: { query: { messageId: '0b7c-AZ_z.~' }, parsedUrl: '/hot/result' },
    });
    const two = await send('GET', '/hot/result?a=1&b=', {});
    expect(two.seen.query).toEqual({ a: '1', b: '' });
    expect((await send('GET', '/hot/result?handOn=1', {})).seen).toMatchObject({
      passed: true,
      query: { handOn: '1' },
    });
  });

  it.each([
    ['no query', '/hot/result'],
    ['an empty query', '/hot/result?'],
    ['a percent-encoded value', '/hot/result?messageId=a%20b'],
    ['a repeated key', '/hot/result?a=1&a=2'],
    ['a nested key', '/hot/result?a[b]=1'],
    ['an inherited name', '/hot/result?constructor=1'],
    ['a key without a value', '/hot/result?a'],
  ])('leaves a GET with %s to the gateway', async (_, path) => {
    const answer = await send('GET', path, {});
    expect(answer.by).toBe('gateway');
    expect(door).toEqual([]);
  });

  it('leaves a GET with a body to the gateway', async () => {
    const answer = await send(
      'GET',
      '/hot/result?a=1',
      { 'content-type': 'application/json', 'content-length': 2 },
      '{}',
    );
    expect(answer.by).toBe('gateway');
  });
});
