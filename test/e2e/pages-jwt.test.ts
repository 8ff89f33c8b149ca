import type { Browser } from 'playwright-core';
import { SignJWT } from 'jose';
import { startApp, type TestApp } from '../helpers/app';
import { launchBrowser, openPage, type OpenPage } from '../helpers/browser';

/**
 * SPEC §3.1 in the browser: with AUTH_MODE=jwt the demo page buys with a pasted sign-in token, and
 * with METRICS_TOKEN the dashboard asks for the token before it shows any figure. The pages' CSP
 * holds (a violation is a console error, which fails the test).
 */
const SECRET = 'pages-jwt-secret-0123456789abcdef';
const METRICS_TOKEN = 'pages-metrics-token-0123';

describe('pages with sign-in and a metrics token', () => {
  let app: TestApp;
  let browser: Browser;
  const opened: OpenPage[] = [];

  beforeAll(async () => {
    [app, browser] = await Promise.all([
      startApp({ AUTH_MODE: 'jwt', AUTH_JWT_SECRET: SECRET, METRICS_TOKEN }),
      launchBrowser(),
    ]);
  });

  afterAll(async () => {
    await Promise.all(opened.map((p) => p.close()));
    await browser?.close();
    await app?.stop();
  });

  it('demo: buys with a pasted token (live mode follows by long-poll)', async () => {
    const demo = await openPage(browser, `${app.baseUrl}/`);
    opened.push(demo);
    const { page } = demo;
    const userId = 401;
    const date = app.dates[0];
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(String(userId))
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode(SECRET));
    await page.waitForSelector(`#date option[value="${date}"]`, { state: 'attached' });
    await page.selectOption('#date', date);
    await page.fill('#user-id', String(userId));
    await page.fill('#user-token', token);
    await page.dispatchEvent('#user-token', 'change');
    await page.check('input[name="mode"][value="sse"]');
    await page.click('#get-hash');
    await page.waitForSelector('#hash-box[data-ready="true"]');
    await page.click('#buy');
    await page.waitForSelector('#status[data-status="SUCCESS"]');
    expect(await page.textContent('#log')).toContain('Long-poll');
    expect(demo.problems).toEqual([]);
  });

  it('dashboard: asks for the metrics token, then shows the figures', async () => {
    const dash = await openPage(browser, `${app.baseUrl}/dashboard.html`);
    opened.push(dash);
    const { page } = dash;
    await page.waitForSelector('#metrics-token-form:not([hidden])');
    expect(await page.getAttribute('#kpi-total-success', 'data-value')).toBeNull();
    await page.fill('#metrics-token', METRICS_TOKEN);
    await page.click('#metrics-token-form button[type="submit"]');
    await page.waitForSelector('#kpi-total-success[data-value]');
    await page.waitForSelector('#metrics-token-form[hidden]', { state: 'attached' });
    expect(dash.problems).toEqual([]);
  });
});
