import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { projectRoot } from '../../lib/paths';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const launchBrowser = (): Promise<Browser> =>
  chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });

export const PHONE = { width: 375, height: 812 };
export const DESKTOP = { width: 1280, height: 900 };

export interface OpenPage {
  page: Page;
  context: BrowserContext;
  /** Console errors and uncaught exceptions seen so far (expected API refusals excluded). */
  problems: string[];
  close(): Promise<void>;
}

const FAILED_RESOURCE = /^Failed to load resource: the server responded with a status of (\d{3})/;

/**
 * Chromium logs every non-2xx fetch as a console error. The API answers its documented refusals
 * (sold out 409, paused 503, unknown user 404…) with a matching HTTP status, which the pages show
 * as human messages: those are expected. Anything else, a 500 included, is a problem.
 */
function isExpectedRefusal(text: string, url: string): boolean {
  const status = Number(FAILED_RESOURCE.exec(text)?.[1] ?? 0);
  if (!status || !new URL(url, 'http://x').pathname.startsWith('/api/')) return false;
  return (status >= 400 && status < 500) || status === 503;
}

/** Opens `url` in a fresh context (own storage) and records console errors and page errors. */
export async function openPage(
  browser: Browser,
  url: string,
  viewport: { width: number; height: number } = DESKTOP,
): Promise<OpenPage> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location().url;
    if (!isExpectedRefusal(msg.text(), where)) problems.push(`console: ${msg.text()} (${where})`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => {
    const reason = req.failure()?.errorText ?? '';
    // Requests the page aborts itself (leaving, closing a stream) are not failures.
    if (!/ERR_ABORTED/.test(reason)) problems.push(`request failed: ${req.url()} ${reason}`);
  });
  await page.goto(url, { waitUntil: 'load' });
  // The module scripts ran: the shared header is in place.
  await page.waitForSelector('#site-header .main-nav', { state: 'attached' });
  return { page, context, problems, close: () => context.close() };
}

export const artifactsDir = (): string => {
  const dir = path.join(projectRoot(), 'test-artifacts');
  mkdirSync(dir, { recursive: true });
  return dir;
};

/** Saves a full-page screenshot to test-artifacts/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  const file = path.join(artifactsDir(), `${name}.png`);
  await page.evaluate('window.scrollTo(0, 0)');
  // Toasts are fixed to the viewport: in a full-page picture they would float mid-page.
  await page.screenshot({
    path: file,
    fullPage: true,
    animations: 'disabled',
    style: '.toasts { display: none !important; }',
  });
  return file;
}

/** How far the page is wider than the viewport (0 = no horizontal overflow). */
export async function horizontalOverflow(page: Page): Promise<number> {
  // A string expression: it runs in the browser, and the tests compile without the DOM library.
  return Number(
    await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth'),
  );
}
