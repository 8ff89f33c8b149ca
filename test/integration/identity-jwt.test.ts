import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { eventually, readSse, startApp, type HttpAnswer, type TestApp } from '../helpers/app';
import { saleState, type PolledResult } from '../helpers/purchase';
import { checkVerifyHash } from '../../lib/sale/verify-hash';

/**
 * SPEC §3.1 and §7 with AUTH_MODE=jwt, against the real servers: user A's token can do everything
 * for A and nothing for B (4003 where the user is named, 6008 where a message or order must not
 * show that it exists); bad tokens (none, expired, wrongly signed, `alg: none`, wrong audience or
 * issuer, no `exp`, a `sub` that is no user id) get 4002; RS256 through a JWKS the test serves works.
 */
const SECRET = 'identity-test-secret-0123456789abcdef';
const ISSUER = 'https://id.example.test';
const AUDIENCE = 'miaosha';
const key = new TextEncoder().encode(SECRET);

const A = 11;
const B = 12;

function token(claims: JWTPayload, o: { secret?: Uint8Array; expiresIn?: string | null } = {}) {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (o.expiresIn !== null) jwt.setExpirationTime(o.expiresIn ?? '10m');
  return jwt.sign(o.secret ?? key);
}

const userToken = (sub: number, extra: JWTPayload = {}) =>
  token({ sub: String(sub), iss: ISSUER, aud: AUDIENCE, ...extra });
const bearer = (jwt: string) => ({ authorization: `Bearer ${jwt}` });
/** An unsigned token (`alg: none`), as an attacker would write it. */
const unsigned = (claims: JWTPayload) =>
  [{ alg: 'none', typ: 'JWT' }, claims]
    .map((part) => Buffer.from(JSON.stringify(part)).toString('base64url'))
    .join('.') + '.';

const code = (answer: HttpAnswer) => answer.body.code;

describe('identity: AUTH_MODE=jwt (HS256)', () => {
  let app: TestApp;
  let asA: Record<string, string>;
  let asB: Record<string, string>;
  let today: string;
  let tomorrow: string;

  beforeAll(async () => {
    app = await startApp({
      AUTH_MODE: 'jwt',
      AUTH_JWT_SECRET: SECRET,
      AUTH_JWT_ISSUER: ISSUER,
      AUTH_JWT_AUDIENCE: AUDIENCE,
    });
    [today, tomorrow] = app.dates;
    asA = bearer(await userToken(A));
    asB = bearer(await userToken(B));
  });

  afterAll(() => app?.stop());

  it('issues the verify hash to the signed-in user only', async () => {
    // Checked by signature, not compared with a hash made here: two issued a moment apart differ
    // when a second boundary falls between them (the expiry is in whole seconds).
    const issuedTo = (hash: string) =>
      [A, B].filter((user) => checkVerifyHash(app.config.hashSecret, user, today, hash));
    const own = await app.get<{ verifyHash: string }>(`/api/tickets/verify-hash?date=${today}`, asA);
    expect(own.status).toBe(200);
    expect(issuedTo(own.body.data.verifyHash)).toEqual([A]);
    const named = await app.get<{ verifyHash: string }>(
      `/api/tickets/verify-hash?userId=${A}&date=${today}`,
      asA,
    );
    expect(named.status).toBe(200);
    expect(issuedTo(named.body.data.verifyHash)).toEqual([A]);
    const other = await app.get(`/api/tickets/verify-hash?userId=${B}&date=${today}`, asA);
    expect([other.status, code(other)]).toEqual([403, 4003]);
    expect(other.body.data).toBeNull();
  });

  it("refuses A's token on B's behalf everywhere, and lets A do all of it for A", async () => {
    const before = await saleState(app);
    // Buy for B, with B's valid hash but A's token: V2 and V1, named in the body.
    for (const path of ['/api/tickets/v2/purchase', '/api/tickets/v1/purchase']) {
      const answer = await app.post(path, { userId: B, date: today, verifyHash: app.hash(B, today) }, asA);
      expect([answer.status, code(answer)]).toEqual([403, 4003]);
    }
    // Without a userId the token's user is the buyer, so B's hash is wrong for them.
    const hashOfB = await app.post(
      '/api/tickets/v2/purchase',
      { date: today, verifyHash: app.hash(B, today) },
      asA,
    );
    expect(code(hashOfB)).toBe(6003);
    expect(await saleState(app)).toEqual(before);

    // A buys for A on V2 (no userId: the token says who) and on V1 (userId given, equal to sub).
    const submitted = await app.post<{ messageId: string }>(
      '/api/tickets/v2/purchase',
      { date: today, verifyHash: app.hash(A, today) },
      asA,
    );
    expect(code(submitted)).toBe(200);
    const { messageId } = submitted.body.data;
    const done = await eventually(async () => {
      const r = await app.get<PolledResult>(`/api/tickets/v2/purchase/result?messageId=${messageId}`, asA);
      return r.body.data?.status === 'SUCCESS' ? r.body.data : undefined;
    });
    expect(done.userId).toBe(A);
    const v1 = await app.post<{ orderNo: string }>(
      '/api/tickets/v1/purchase',
      { userId: A, date: tomorrow, verifyHash: app.hash(A, tomorrow) },
      asA,
    );
    expect(code(v1)).toBe(200);

    // B cannot see A's message: plain, long-polled, batched and streamed all answer as for a missing one.
    // (The terminal result is in the gateway's memory now: the local fast path is tried too.)
    const missing = await app.get(`/api/tickets/v2/purchase/result?messageId=no-such-message`, asB);
    for (const path of [
      `/api/tickets/v2/purchase/result?messageId=${messageId}`,
      `/api/tickets/v2/purchase/result?messageId=${messageId}&waitMs=5000`,
      `/api/tickets/v2/purchase/stream?messageId=${messageId}`,
    ]) {
      const answer = await app.get(path, asB);
      expect([answer.status, answer.body]).toEqual([missing.status, missing.body]);
    }
    const batch = await app.post<{ code?: number }[]>(
      '/api/tickets/v2/purchase/results',
      { messageIds: [messageId, 'no-such-message'] },
      asB,
    );
    expect(batch.body.data.map((r) => r.code)).toEqual([6008, 6008]);
    const ownBatch = await app.post<PolledResult[]>(
      '/api/tickets/v2/purchase/results',
      { messageIds: [messageId] },
      asA,
    );
    expect(ownBatch.body.data[0].status).toBe('SUCCESS');

    // Result by user: naming A is refused; B's own (none) says none.
    const byUser = await app.get(`/api/tickets/v2/purchase/result/user?userId=${A}&date=${today}`, asB);
    expect([byUser.status, code(byUser)]).toEqual([403, 4003]);
    expect(code(await app.get(`/api/tickets/v2/purchase/result/user?date=${today}`, asB))).toBe(6008);
    const ownByUser = await app.get<PolledResult>(`/api/tickets/v2/purchase/result/user?date=${today}`, asA);
    expect(ownByUser.body.data.messageId).toBe(messageId);

    // Orders: B cannot list A's, nor cancel one (named: 4003; unnamed: 6008, as if it did not exist).
    const list = await app.get(`/api/tickets/orders?userId=${A}`, asB);
    expect([list.status, code(list)]).toEqual([403, 4003]);
    expect((await app.get<unknown[]>('/api/tickets/orders', asB)).body.data).toEqual([]);
    const orderNo = done.orderNo!;
    const cancelNamed = await app.post('/api/tickets/orders/cancel', { userId: A, orderNo }, asB);
    expect([cancelNamed.status, code(cancelNamed)]).toEqual([403, 4003]);
    const cancelUnnamed = await app.post('/api/tickets/orders/cancel', { orderNo }, asB);
    const cancelMissing = await app.post('/api/tickets/orders/cancel', { orderNo: 'T-NO-SUCH' }, asB);
    expect([cancelUnnamed.status, cancelUnnamed.body]).toEqual([cancelMissing.status, cancelMissing.body]);
    expect(code(cancelUnnamed)).toBe(6008);

    const orders = await app.get<{ orderNo: string; status: string }[]>('/api/tickets/orders', asA);
    expect(orders.body.data.map((o) => o.status)).toEqual(['valid', 'valid']);
    // A streams A's message (terminal: one event, then the stream ends) and cancels A's order.
    const stream = await fetch(`${app.baseUrl}/api/tickets/v2/purchase/stream?messageId=${messageId}`, {
      headers: asA,
    });
    expect(stream.status).toBe(200);
    const events: unknown[] = [];
    await readSse(stream.body!.getReader(), (frame) => events.push(frame.data));
    expect(events).toEqual([expect.objectContaining({ messageId, status: 'SUCCESS' })]);
    const cancelled = await app.post('/api/tickets/orders/cancel', { orderNo }, asA);
    expect(code(cancelled)).toBe(200);

    // The operator sees and cancels any user's orders through the admin API, with the admin token only.
    const adminList = await app.get<{ orderNo: string; status: string }[]>(
      `/api/admin/orders?userId=${A}`,
      app.admin,
    );
    expect(adminList.body.data.map((o) => o.status).sort()).toEqual(['cancelled', 'valid']);
    const v1OrderNo = v1.body.data.orderNo;
    expect(code(await app.get(`/api/admin/orders?userId=${A}`, asB))).toBe(4001);
    expect(code(await app.post('/api/admin/orders/cancel', { userId: A, orderNo: v1OrderNo }, asB))).toBe(
      4001,
    );
    expect(
      code(await app.post('/api/admin/orders/cancel', { userId: A, orderNo: v1OrderNo }, app.admin)),
    ).toBe(200);
  });

  it('answers 4002 to a missing or bad token on every user endpoint, and changes nothing', async () => {
    const before = await saleState(app);
    const claims = { sub: String(A), iss: ISSUER, aud: AUDIENCE };
    const expired = await token({ ...claims, exp: Math.floor(Date.now() / 1000) - 60 }, { expiresIn: null });
    const bad: Record<string, Record<string, string>> = {
      none: {},
      'not a bearer': { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
      garbage: bearer('not.a.token'),
      expired: bearer(expired),
      'wrong secret': bearer(await token(claims, { secret: new TextEncoder().encode('x'.repeat(40)) })),
      'alg none': bearer(unsigned({ ...claims, exp: Math.floor(Date.now() / 1000) + 600 })),
      'wrong audience': bearer(await userToken(A, { aud: 'another-service' })),
      'wrong issuer': bearer(await userToken(A, { iss: 'https://evil.example' })),
      'no exp': bearer(await token(claims, { expiresIn: null })),
      'sub not a user id': bearer(await userToken(A, { sub: 'admin' })),
    };
    const hash = app.hash(A, today);
    const calls: [string, string, unknown?][] = [
      ['GET', `/api/tickets/verify-hash?date=${today}`],
      ['POST', '/api/tickets/v1/purchase', { userId: A, date: today, verifyHash: hash }],
      ['POST', '/api/tickets/v2/purchase', { userId: A, date: today, verifyHash: hash }],
      ['GET', '/api/tickets/v2/purchase/result?messageId=abc'],
      ['GET', `/api/tickets/v2/purchase/result/user?date=${today}`],
      ['POST', '/api/tickets/v2/purchase/results', { messageIds: ['abc'] }],
      ['GET', '/api/tickets/v2/purchase/stream?messageId=abc'],
      ['GET', '/api/tickets/orders'],
      ['POST', '/api/tickets/orders/cancel', { orderNo: 'T-1' }],
    ];
    for (const [label, headers] of Object.entries(bad)) {
      for (const [method, path, body] of calls) {
        const answer = method === 'GET' ? await app.get(path, headers) : await app.post(path, body, headers);
        expect({ label, path, status: answer.status, code: code(answer) }).toEqual({
          label,
          path,
          status: 401,
          code: 4002,
        });
      }
    }
    expect(await saleState(app)).toEqual(before);
    // The public reads need no token.
    expect(code(await app.get('/api/tickets/list'))).toBe(200);
    expect(code(await app.get(`/api/tickets/validate-time?date=${today}`))).toBe(200);
  });
});

describe('identity: AUTH_MODE=jwt with RS256 keys from a JWKS', () => {
  let app: TestApp;
  let jwks: Server;
  let privateKey: CryptoKey;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256');
    privateKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    jwks = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const { port } = jwks.address() as AddressInfo;
    app = await startApp({ AUTH_MODE: 'jwt', AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json` });
  });

  afterAll(async () => {
    await app?.stop();
    await new Promise((resolve) => jwks?.close(resolve));
  });

  it('accepts a token signed by the key set and refuses one signed otherwise', async () => {
    const signed = await new SignJWT({ sub: String(A) })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setExpirationTime('5m')
      .sign(privateKey);
    const own = await app.get<{ verifyHash: string }>(
      `/api/tickets/verify-hash?date=${app.dates[0]}`,
      bearer(signed),
    );
    expect(own.body.data.verifyHash).toBe(app.hash(A, app.dates[0]));
    const other = await generateKeyPair('RS256');
    const forged = await new SignJWT({ sub: String(A) })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setExpirationTime('5m')
      .sign(other.privateKey);
    const hs = await token({ sub: String(A) });
    for (const jwt of [forged, hs]) {
      expect(code(await app.get(`/api/tickets/verify-hash?date=${app.dates[0]}`, bearer(jwt)))).toBe(4002);
    }
  });
});
