import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { projectRoot } from '../../lib/paths';
import { ADMIN_TOKEN, eventually, startApp, type TestApp } from '../helpers/app';
import {
  horizontalOverflow,
  launchBrowser,
  openPage,
  PHONE,
  screenshot,
  type OpenPage,
} from '../helpers/browser';

/** The dashboard test runs once the monitoring backend is part of the code base. */
const monitorLanded = existsSync(path.join(projectRoot(), 'services', 'monitor.service.ts'));

interface Row {
  ticket_code: string;
  message_id: string | null;
  status: string;
}

describe('pages in a real browser', () => {
  let app: TestApp;
  let browser: Browser;
  const opened: OpenPage[] = [];

  beforeAll(async () => {
    [app, browser] = await Promise.all([startApp(), launchBrowser()]);
  });

  afterAll(async () => {
    await browser?.close();
    await app?.stop();
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((p) => p.close()));
  });

  async function open(pathname: string, viewport?: { width: number; height: number }): Promise<OpenPage> {
    const page = await openPage(browser, app.baseUrl + pathname, viewport);
    opened.push(page);
    return page;
  }

  const text = async (page: Page, selector: string) => ((await page.textContent(selector)) ?? '').trim();

  async function orderOf(userId: number, date: string): Promise<Row | undefined> {
    const [rows] = (await app.rt.db.query(
      'SELECT ticket_code, message_id, status FROM orders WHERE user_id = $1 AND date = $2',
      { bind: [userId, date] },
    )) as [Row[], unknown];
    return rows[0];
  }

  /** Fills the demo form, gets the hash and buys; resolves when the status is final or refused. */
  async function buyOnDemo(page: Page, userId: number, date: string, mode = 'poll') {
    await page.waitForSelector(`#date option[value="${date}"]`, { state: 'attached' });
    await page.selectOption('#date', date);
    await page.fill('#user-id', String(userId));
    await page.check(`input[name="mode"][value="${mode}"]`);
    await page.click('#get-hash');
    await page.waitForSelector('#hash-box[data-ready="true"]');
    await page.click('#buy');
    await page.waitForSelector(
      '#status[data-status="SUCCESS"], #status[data-status="FAILED"], #status[data-status="REJECTED"]',
    );
  }

  it('demo: gets a hash, buys through V2 and shows the ticket stored in the database', async () => {
    const demo = await open('/demo'); // redirects to /
    const { page } = demo;
    expect(new URL(page.url()).pathname).toBe('/');
    const date = app.dates[0];

    await buyOnDemo(page, 101, date);
    expect(await text(page, '#status')).toBe('SUCCESS');
    const ticketCode = await text(page, '#ticket-code');
    const messageId = await text(page, '#message-id');
    const order = await orderOf(101, date);
    expect(order).toMatchObject({ ticket_code: ticketCode, message_id: messageId, status: 'valid' });
    expect(await text(page, '#log')).toContain(`SUCCESS: ticket ${ticketCode}`);

    // Buying again for the same day: the same message and the same ticket, nothing new queued.
    await page.click('#buy');
    await page.waitForSelector('#log li:has-text("Same message ID as before")');
    await page.waitForSelector('#status[data-status="SUCCESS"]');
    await page.waitForSelector('#ticket:not([hidden])');
    expect(await text(page, '#message-id')).toBe(messageId);
    expect(await text(page, '#ticket-code')).toBe(ticketCode);

    // The other two ways of following a result.
    await buyOnDemo(page, 102, date, 'sse');
    expect(await text(page, '#status')).toBe('SUCCESS');
    expect(await text(page, '#log')).toContain('Stream event: SUCCESS');
    expect((await orderOf(102, date))?.ticket_code).toBe(await text(page, '#ticket-code'));

    await buyOnDemo(page, 103, date, 'long');
    expect(await text(page, '#status')).toBe('SUCCESS');
    expect(await text(page, '#log')).toContain('Long-poll');
    expect((await orderOf(103, date))?.ticket_code).toBe(await text(page, '#ticket-code'));

    await screenshot(page, 'demo');
    expect(demo.problems).toEqual([]);
  });

  it('demo: shows a human message for sold out, paused and unknown user', async () => {
    const demo = await open('/');
    const { page } = demo;
    const lastDay = app.dates[app.dates.length - 1];

    // Sold out: the day's stock set to zero.
    await app.put(`/api/admin/tickets/${lastDay}`, { total: 0 }, app.admin);
    try {
      await buyOnDemo(page, 111, lastDay);
      await page.waitForSelector('#outcome[data-code="6002"]');
      expect(await text(page, '#status')).toBe('REJECTED');
      expect(await text(page, '#outcome')).toContain('Sold out: every ticket for this day is gone.');
    } finally {
      await app.put(`/api/admin/tickets/${lastDay}`, { total: 200 }, app.admin);
    }

    // Paused sale.
    const paused = await app.post('/api/admin/sale/pause', {}, app.admin);
    expect(paused.body.code).toBe(200);
    try {
      await buyOnDemo(page, 112, app.dates[0]);
      await page.waitForSelector('#outcome[data-code="6007"]');
      expect(await text(page, '#outcome')).toContain('The sale is paused for a moment.');
      expect(await orderOf(112, app.dates[0])).toBeUndefined();
    } finally {
      await app.post('/api/admin/sale/resume', {}, app.admin);
    }

    // Unknown user: refused when the hash is asked for.
    await page.fill('#user-id', '99999999');
    await page.click('#get-hash');
    await page.waitForSelector('#form-message[data-code="6006"]');
    expect(await text(page, '#form-message')).toContain('We do not know this user.');
    expect(await page.isDisabled('#buy')).toBe(true);

    expect(demo.problems).toEqual([]);
  });

  it('demo: the crowd panel fires concurrent purchases and shows them resolve', async () => {
    const demo = await open('/');
    const { page } = demo;
    const date = app.dates[0];
    await page.waitForSelector(`#date option[value="${date}"]`, { state: 'attached' });
    await page.selectOption('#date', date);
    await page.fill('#crowd-from', '401');
    await page.fill('#crowd-size', '30');
    await page.click('#crowd-start');
    await page.waitForSelector('#crowd-message[data-kind="ok"]');
    expect(await text(page, '#crowd-n-success')).toBe('30');
    expect(await text(page, '#crowd-n-queued')).toBe('0');
    const cells = await page.$$eval('#crowd-grid .cell', (nodes) =>
      nodes.map((n) => n.getAttribute('data-status')),
    );
    expect(cells).toEqual(Array(30).fill('SUCCESS'));
    const [[{ n }]] = (await app.rt.db.query(
      "SELECT count(*)::int AS n FROM orders WHERE user_id BETWEEN 401 AND 430 AND date = $1 AND status = 'valid'",
      { bind: [date] },
    )) as [{ n: number }[], unknown];
    expect(n).toBe(30);
    expect(demo.problems).toEqual([]);
  });

  it('management: the stock bar drops after a purchase, and an admin stock change shows up', async () => {
    const admin = await open('/admin.html');
    const { page } = admin;
    const date = app.dates[1];
    const bar = `.day[data-date="${date}"] .stock-bar`;
    await page.waitForSelector(`${bar}[aria-valuenow="150"][aria-valuemax="150"]`);

    const submit = await app.post<{ messageId: string }>('/api/tickets/v2/purchase', {
      userId: 201,
      date,
      verifyHash: app.hash(201, date),
    });
    const result = await app.get<{ status: string; ticketCode: string }>(
      `/api/tickets/v2/purchase/result?messageId=${submit.body.data.messageId}&waitMs=10000`,
    );
    expect(result.body.data.status).toBe('SUCCESS');
    await page.waitForSelector(`${bar}[aria-valuenow="149"]`);

    // The admin token, entered on the page, kept for the tab and sent as Bearer.
    await page.fill('#admin-token', ADMIN_TOKEN);
    await page.click('#token-save');
    await page.waitForSelector('#token-state[data-kind="ok"]');
    expect(await page.evaluate(() => sessionStorage.getItem('miaosha.adminToken'))).toBe(ADMIN_TOKEN);

    await page.fill(`#total-${date}`, '300');
    await page.click(`.day[data-date="${date}"] button[type="submit"]`);
    await page.waitForSelector(`${bar}[aria-valuemax="300"][aria-valuenow="299"]`);
    const [[day]] = (await app.rt.db.query('SELECT total, remaining FROM ticket_days WHERE date = $1', {
      bind: [date],
    })) as [{ total: number; remaining: number }[], unknown];
    expect(day).toEqual({ total: 300, remaining: 299 });

    // The user's order, cancelled from the page: the ticket goes back to stock.
    await page.fill('#orders-user', '201');
    await page.click('#orders-load');
    const row = `#orders-list li:has-text("${result.body.data.ticketCode}")`;
    await page.waitForSelector(row);
    await page.click(`${row} button`); // arms the confirmation
    await page.click(`${row} button:has-text("Confirm cancel")`);
    await page.waitForSelector(`${row}:has-text("Cancelled")`);
    await page.waitForSelector(`${bar}[aria-valuenow="300"]`);
    expect((await orderOf(201, date))?.status).toBe('cancelled');

    await screenshot(page, 'admin');
    expect(admin.problems).toEqual([]);
  });

  (monitorLanded ? it : it.skip)(
    'dashboard: the live figures change after a burst of purchases',
    async () => {
      const dash = await open('/dashboard.html');
      const { page } = dash;
      await page.waitForSelector('#conn-dot[data-state="live"]');
      await page.waitForSelector('#kpi-total-success[data-value]');
      const successBefore = Number(await page.getAttribute('#kpi-total-success', 'data-value'));
      const acceptedBefore = Number(await page.getAttribute('#kpi-submits-sub', 'data-value'));

      const date = app.dates[0];
      const users = Array.from({ length: 25 }, (_, i) => 301 + i);
      const submits = await Promise.all(
        users.map((userId) =>
          app.post<{ messageId: string }>('/api/tickets/v2/purchase', {
            userId,
            date,
            verifyHash: app.hash(userId, date),
          }),
        ),
      );
      const messageIds = submits.map((s) => s.body.data.messageId);
      await eventually(async () => {
        const res = await app.post<{ status: string }[]>('/api/tickets/v2/purchase/results', { messageIds });
        return res.body.data.every((r) => r.status === 'SUCCESS') ? true : undefined;
      });

      await eventually(async () => {
        const success = Number(await page.getAttribute('#kpi-total-success', 'data-value'));
        const accepted = Number(await page.getAttribute('#kpi-submits-sub', 'data-value'));
        return success >= successBefore + 25 && accepted >= acceptedBefore + 25 ? true : undefined;
      });
      // The charts hold a rolling series, and the dependencies are shown up.
      const points = Number(await page.evaluate("Chart.getChart('chart-submits').data.labels.length"));
      expect(points).toBeGreaterThan(1);
      for (const dep of ['nats', 'redis', 'postgres']) {
        expect(await text(page, `#deps [data-dep="${dep}"] .pill`)).toBe('Connected');
      }
      expect(await page.$$eval('#nodes-body tr[data-node]', (rows) => rows.length)).toBeGreaterThan(0);

      await screenshot(page, 'dashboard');
      expect(dash.problems).toEqual([]);
    },
  );

  it('every page fits a phone screen without horizontal overflow', async () => {
    for (const [pathname, name] of [
      ['/', 'demo-phone'],
      ['/admin.html', 'admin-phone'],
      ['/dashboard.html', 'dashboard-phone'],
    ]) {
      const opened = await open(pathname, PHONE);
      const { page } = opened;
      if (pathname === '/') {
        await buyOnDemo(page, 121, app.dates[0]);
        expect(await text(page, '#status')).toBe('SUCCESS');
      } else if (pathname === '/admin.html') {
        await page.waitForSelector('.day .stock-bar[aria-valuenow]');
      } else if (monitorLanded) {
        await page.waitForSelector('#kpi-total-success[data-value]');
      }
      expect(await horizontalOverflow(page)).toBe(0);
      await screenshot(page, name);
      expect(opened.problems).toEqual([]);
    }
  });
});
