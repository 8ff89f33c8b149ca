import { ADMIN_TOKEN, startApp, type TestApp } from '../helpers/app';

/**
 * SPEC §3.1: operations data is not public when METRICS_TOKEN is set (the admin token works too),
 * and every answer carries the security headers (CSP with frame-ancestors, nosniff).
 */
const METRICS_TOKEN = 'metrics-token-0123456789';

describe('operations data and security headers', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startApp({ METRICS_TOKEN });
  });
  afterAll(() => app?.stop());

  const paths = ['/metrics', '/api/monitor/snapshot', '/api/monitor/alerts', '/api/monitor/stream'];

  it.each(paths)('%s refuses without METRICS_TOKEN, and answers with it or the admin token', async (path) => {
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789', `Basic ${METRICS_TOKEN}`]) {
      const res = await fetch(app.baseUrl + path, { headers: authorization ? { authorization } : {} });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { code: number }).code).toBe(4001);
    }
    for (const token of [METRICS_TOKEN, ADMIN_TOKEN]) {
      const ctrl = new AbortController();
      const res = await fetch(app.baseUrl + path, {
        headers: { authorization: `Bearer ${token}` },
        signal: ctrl.signal,
      });
      expect(res.status).toBe(200);
      ctrl.abort(); // the monitor stream stays open
    }
  });

  it.each(['/', '/admin.html', '/dashboard.html', '/js/demo.js'])(
    'the page file %s carries the security headers and the pages policy',
    async (path) => {
      const res = await fetch(app.baseUrl + path);
      await res.arrayBuffer();
      expect(res.status).toBe(200);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toMatch(/script-src[^;]*unsafe/);
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    },
  );

  it.each(['/api/tickets/list', '/no-such-page', '/api/tickets/v2/purchase/result?messageId=x'])(
    'the JSON answer of %s carries the security headers and lets nothing load or frame it',
    async (path) => {
      const res = await fetch(app.baseUrl + path);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      await res.arrayBuffer();
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'");
      expect(res.headers.get('x-frame-options')).toBe('DENY');
    },
  );

  it('the submit answers written before moleculer-web (accepted, refused, unreadable) carry them too', async () => {
    const [date] = app.dates;
    const submit = '/api/tickets/v2/purchase';
    const answers = [
      await app.post(submit, { userId: 1, date, verifyHash: app.hash(1, date) }),
      await app.post(submit, { userId: 2, date, verifyHash: app.hash(3, date) }),
      await app.post(
        submit,
        { userId: 4, date, verifyHash: app.hash(4, date) },
        { 'x-request-id': 'client-7' },
      ),
    ];
    const unreadable = await fetch(app.baseUrl + submit, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"userId":',
    });
    await unreadable.arrayBuffer();
    expect([...answers.map((a) => a.body.code), unreadable.status]).toEqual([200, 6003, 200, 400]);
    for (const headers of [...answers.map((a) => a.headers), unreadable.headers]) {
      expect(headers.get('x-content-type-options')).toBe('nosniff');
      expect(headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'");
      expect(headers.get('x-frame-options')).toBe('DENY');
      expect(headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$|^client-7$/);
    }
    expect(answers[2].headers.get('x-request-id')).toBe('client-7');
  });
});
