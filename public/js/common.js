// Shared by the three pages: the API client, human error messages, the header and small DOM helpers.

/** What each SPEC §3 error code means for the person in front of the page. */
export const ERROR_MESSAGES = {
  0: 'Cannot reach the server. Check your connection and try again.',
  1001: 'Something in the request is not right. Check the user id and the date.',
  6001: 'There is no sale for that day: it is outside the days on sale.',
  6002: 'Sold out: every ticket for this day is gone.',
  6003: 'The verify hash is missing, wrong or expired. Get a new hash and try again.',
  6004: 'The sale is closed at this hour. Come back during the sale hours.',
  6005: 'You already have a ticket for this day: one ticket per person per day.',
  6006: 'We do not know this user. Check the user id.',
  6007: 'The sale is paused for a moment. Please try again shortly.',
  6008: 'We cannot find that purchase or order.',
  7001: 'Too many requests at once. Wait a second and try again.',
  4001: 'The admin token is missing or wrong.',
  4002: 'Sign in first: the sign-in token is missing, invalid or expired.',
  4003: 'That is not allowed for your account.',
  5000: 'Something went wrong on our side. Please try again.',
  5030: 'The service is briefly unavailable. Please try again in a few seconds.',
};

export const humanError = (code) => ERROR_MESSAGES[code] ?? ERROR_MESSAGES[5000];

/** The meaning of each purchase status, in plain words. */
export const STATUS_TEXT = {
  IDLE: 'Nothing submitted yet',
  PENDING: 'Waiting in the queue',
  PROCESSING: 'A worker is buying your ticket',
  RETRYING: 'A brief hiccup: retrying',
  DELAYED: 'Back in the queue for a moment',
  SUCCESS: 'You got a ticket',
  FAILED: 'The purchase did not go through',
  REJECTED: 'Refused at once',
};

export const isTerminal = (status) => status === 'SUCCESS' || status === 'FAILED';

export class ApiError extends Error {
  constructor(code, message, httpStatus = 0, data = null) {
    super(message || humanError(code));
    this.name = 'ApiError';
    this.code = code;
    this.httpStatus = httpStatus;
    this.data = data;
    this.human = humanError(code);
  }
}

/**
 * Calls the service and unwraps the `{ code, message, data }` envelope: resolves with `data` for
 * code 200 and throws an ApiError with the code otherwise (code 0 when the server is unreachable).
 */
export async function api(path, { method = 'GET', body, token, signal } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new ApiError(0, humanError(0));
  }
  let envelope;
  try {
    envelope = await res.json();
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    const code = res.status === 404 ? 6008 : res.status >= 500 ? 5030 : 5000;
    throw new ApiError(code, `Unexpected answer (HTTP ${res.status})`, res.status);
  }
  if (envelope?.code !== 200) {
    throw new ApiError(Number(envelope?.code) || 5000, envelope?.message, res.status, envelope?.data);
  }
  return envelope.data;
}

/** Waits `ms`, or less if the signal aborts (then resolves, the caller checks its own state). */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Builds an element: `h('p', { class: 'x', dataset: { a: 1 }, onclick }, 'text', child)`. */
export function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'style') Object.assign(node.style, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export const byId = (id) => document.getElementById(id);

const pad = (n, width = 2) => String(n).padStart(width, '0');

/** 14:03:07.123 */
export const clockMs = (d = new Date()) =>
  `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;

/** 14:03:07 */
export const clock = (d = new Date()) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;

const INT = new Intl.NumberFormat('en-US');
export const fmtInt = (n) => (n === null || n === undefined || Number.isNaN(n) ? '—' : INT.format(n));

/** A rate or small figure: one decimal below 10, none above. */
export function fmtNum(n, digits = 1) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  if (Math.abs(n) >= 10) return INT.format(Math.round(n));
  return n.toFixed(digits).replace(/\.0+$/, '');
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1) return '< 1 ms';
  if (ms < 1000) return `${fmtNum(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function fmtDateTime(value) {
  if (!value) return '—';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return '—';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(d)}`;
}

const WEEKDAY = new Intl.DateTimeFormat('en-US', { weekday: 'short', timeZone: 'UTC' });
const LONG_DAY = new Intl.DateTimeFormat('en-US', {
  weekday: 'long',
  month: 'long',
  day: 'numeric',
  timeZone: 'UTC',
});
/** "Tue" for a YYYY-MM-DD sale date (a calendar date, so read in UTC). */
export const weekdayOf = (date) => WEEKDAY.format(new Date(`${date}T00:00:00Z`));
export const longDay = (date) => LONG_DAY.format(new Date(`${date}T00:00:00Z`));

/** A note in the corner that disappears by itself (role=status, so screen readers hear it). */
export function toast(message, kind = 'info', ms = 4500) {
  let box = byId('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const note = h('div', { class: 'toast', dataset: { kind } }, message);
  box.append(note);
  setTimeout(() => note.remove(), ms);
}

/** Shows an error (or clears with null) in a notice element, with its code. */
export function showNotice(target, kind, message, code) {
  target.replaceChildren();
  if (!message) {
    target.removeAttribute('data-kind');
    return;
  }
  target.dataset.kind = kind;
  if (code !== undefined) target.dataset.code = String(code);
  else delete target.dataset.code;
  target.append(h('span', null, message));
  if (code !== undefined && code !== 0) target.append(h('span', { class: 'code-tag' }, `code ${code}`));
}

/** Marks a button busy (spinner, disabled) while `task` runs. */
export async function withBusy(button, task) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await task();
  } finally {
    button.removeAttribute('aria-busy');
    button.disabled = false;
  }
}

/** Runs `fn` over `items` with at most `limit` at once. */
export async function pool(items, limit, fn) {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  });
  await Promise.all(workers);
}

// ---------- The header shared by the three pages ----------

const ICONS = {
  bolt: '<path d="M13 2 4 14h7l-1 8 9-12h-7l1-8z"/>',
  ticket:
    '<path d="M3 8a2 2 0 0 0 2-2h14a2 2 0 0 0 2 2v2a2 2 0 0 0 0 4v2a2 2 0 0 0-2 2H5a2 2 0 0 0-2-2v-2a2 2 0 0 0 0-4z"/><path d="M13 6v12" stroke-dasharray="2 2"/>',
  sliders:
    '<path d="M4 6h10M18 6h2M4 12h4M12 12h8M4 18h12M20 18h0"/><circle cx="16" cy="6" r="2"/><circle cx="10" cy="12" r="2"/><circle cx="18" cy="18" r="2"/>',
  pulse: '<path d="M3 12h4l2-6 4 12 2-6h6"/>',
};

const icon = (name) =>
  `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${ICONS[name]}</svg>`;

const PAGES = [
  {
    href: '/',
    label: 'Buy',
    title: 'Async purchase demo',
    icon: 'ticket',
    paths: ['/', '/index.html', '/demo'],
  },
  {
    href: '/admin.html',
    label: 'Manage',
    title: 'Ticket management',
    icon: 'sliders',
    paths: ['/admin.html'],
  },
  {
    href: '/dashboard.html',
    label: 'Monitor',
    title: 'Live monitoring',
    icon: 'pulse',
    paths: ['/dashboard.html'],
  },
];

/** Fills `<header id="site-header">` with the brand, the navigation and a health indicator. */
export function mountHeader() {
  const header = byId('site-header');
  if (!header) return;
  const here = location.pathname.replace(/\/+$/, '') || '/';
  const links = PAGES.map((p) => {
    const current = p.paths.includes(here) ? ' aria-current="page"' : '';
    return `<li><a href="${p.href}" title="${p.title}"${current}>${icon(p.icon)}<span>${p.label}</span></a></li>`;
  }).join('');
  header.innerHTML = `
    <a class="skip-link" href="#main">Skip to content</a>
    <div class="header-inner">
      <a class="brand" href="/" aria-label="Miaosha tickets, home">
        <svg class="brand-logo" viewBox="0 0 32 32" aria-hidden="true">
          <rect width="32" height="32" rx="9" fill="var(--brand)"/>
          <path d="M18 5 9 18h6l-1 9 9-13h-6l1-9z" fill="#fff"/>
        </svg>
        <span class="brand-text">Miaosha <span class="brand-sub">Tickets</span></span>
      </a>
      <nav class="main-nav" aria-label="Main"><ul>${links}</ul></nav>
      <span class="health" id="health" role="status" title="Service health">
        <span class="dot" id="health-dot"></span><span class="health-text" id="health-text">Checking…</span>
      </span>
    </div>`;
  watchHealth();
}

const DEP_NAMES = { postgres: 'PostgreSQL', redis: 'Redis', nats: 'NATS' };

async function checkHealthOnce() {
  const dot = byId('health-dot');
  const text = byId('health-text');
  if (!dot || !text) return;
  let health;
  try {
    const res = await fetch('/health', { cache: 'no-store' });
    health = (await res.json()).data;
  } catch {
    health = null;
  }
  if (!health?.dependencies) {
    dot.dataset.state = 'down';
    text.textContent = 'Server unreachable';
    return;
  }
  const down = Object.entries(health.dependencies)
    .filter(([, dep]) => !dep.up)
    .map(([name]) => DEP_NAMES[name] ?? name);
  dot.dataset.state = down.length ? 'down' : 'up';
  text.textContent = down.length ? `${down.join(', ')} down` : 'All systems up';
  byId('health').title = Object.entries(health.dependencies)
    .map(([name, dep]) => `${DEP_NAMES[name] ?? name}: ${dep.up ? `up (${dep.latencyMs ?? 0} ms)` : 'down'}`)
    .join('\n');
}

function watchHealth() {
  checkHealthOnce();
  setInterval(() => {
    if (!document.hidden) checkHealthOnce();
  }, 15_000);
}
