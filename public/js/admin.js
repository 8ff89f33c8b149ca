// Ticket management: live stock of the sale days, a user's orders with cancel, and the admin controls.
import {
  api,
  ApiError,
  byId,
  clock,
  fmtDateTime,
  fmtInt,
  h,
  humanError,
  longDay,
  mountHeader,
  showNotice,
  toast,
  weekdayOf,
  withBusy,
} from './common.js';

mountHeader();

const TOKEN_KEY = 'miaosha.adminToken';
const STATS_EVERY_MS = 1000;
const DLQ_EVERY_MS = 15_000;

const el = {
  liveState: byId('live-state'),
  liveDot: byId('live-dot'),
  totals: {
    total: byId('total-total'),
    remaining: byId('total-remaining'),
    sold: byId('total-sold'),
    orders: byId('total-orders'),
    cancelled: byId('total-cancelled'),
  },
  days: byId('days'),
  daysMessage: byId('days-message'),
  past: byId('past'),
  pastSummary: byId('past-summary'),
  pastDays: byId('past-days'),
  ordersForm: byId('orders-form'),
  ordersUser: byId('orders-user'),
  ordersLoad: byId('orders-load'),
  ordersMessage: byId('orders-message'),
  ordersList: byId('orders-list'),
  tokenForm: byId('token-form'),
  tokenInput: byId('admin-token'),
  tokenSave: byId('token-save'),
  tokenForget: byId('token-forget'),
  tokenState: byId('token-state'),
  adminMessage: byId('admin-message'),
  pauseState: byId('pause-state'),
  pause: byId('pause'),
  resume: byId('resume'),
  roll: byId('roll'),
  stockForm: byId('stock-form'),
  stockDate: byId('stock-date'),
  stockTotal: byId('stock-total'),
  stockSave: byId('stock-save'),
  reconcile: byId('reconcile'),
  reconcileReport: byId('reconcile-report'),
  dlqCount: byId('dlq-count'),
  dlqRefresh: byId('dlq-refresh'),
  dlqMessage: byId('dlq-message'),
  dlqBody: byId('dlq-body'),
};

const state = { cards: new Map(), paused: null, firstDate: null, ordersUserId: null };

// ---------- Admin token ----------

const getToken = () => sessionStorage.getItem(TOKEN_KEY) ?? '';

function renderToken(kind) {
  const has = getToken() !== '';
  el.tokenState.dataset.kind = kind ?? (has ? 'info' : '');
  el.tokenState.textContent =
    kind === 'ok' ? 'Token accepted' : kind === 'bad' ? 'Token refused' : has ? 'Token set' : 'No token';
  el.tokenForget.disabled = !has;
}

/** An admin call with the Bearer token; a refusal (4001) is shown on the token. */
async function adminCall(path, options = {}) {
  const token = getToken();
  if (!token) throw new ApiError(4001, 'Enter the admin token first.');
  try {
    const data = await api(path, { ...options, token });
    renderToken('ok');
    return data;
  } catch (err) {
    // The token is checked before the action runs: any other answer means it was accepted.
    if (err?.code === 4001) renderToken('bad');
    else if (err?.name !== 'AbortError' && err?.code !== 0) renderToken('ok');
    throw err;
  }
}

/**
 * A user's orders: with the admin token through the operator's endpoints (any user, also when the
 * service signs users in with AUTH_MODE=jwt), without it through the public ones (open mode).
 */
const ordersCall = (path, options) =>
  getToken() ? adminCall(`/api/admin${path}`, options) : api(`/api/tickets${path}`, options);

function adminError(err, target = el.adminMessage) {
  const code = err?.code ?? 5000;
  const text =
    code === 4001 && !getToken() ? 'Enter the admin token first.' : (err?.human ?? humanError(code));
  const server = err?.message && err.message !== text && code === 1001 ? ` ${err.message}` : '';
  showNotice(target, 'error', `${text}${server}`, code);
}

async function useToken(event) {
  event.preventDefault();
  const token = el.tokenInput.value.trim();
  if (!token) {
    showNotice(el.adminMessage, 'error', 'Type the admin token first.');
    el.tokenInput.focus();
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  el.tokenInput.value = '';
  renderToken();
  await withBusy(el.tokenSave, async () => {
    try {
      await loadDeadLetters();
    } catch (err) {
      if (err?.code === 4001) {
        sessionStorage.removeItem(TOKEN_KEY);
        renderToken('bad');
        showNotice(el.adminMessage, 'error', 'That token was refused. Check it and try again.', 4001);
        return;
      }
      el.dlqBody.replaceChildren();
      adminError(err, el.dlqMessage);
      if (err?.code === 0) return adminError(err);
    }
    showNotice(el.adminMessage, 'ok', 'Token accepted. The admin controls are ready.');
  });
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  renderToken();
  showNotice(el.adminMessage, 'info', 'Token forgotten.');
  el.dlqBody.replaceChildren(h('p', { class: 'empty' }, 'Enter the admin token to see the dead letters.'));
  el.dlqCount.textContent = 'Not loaded';
  delete el.dlqCount.dataset.kind;
}

// ---------- Sale days, live ----------

function level(day) {
  if (day.remaining <= 0) return 'empty';
  return day.total > 0 && day.remaining / day.total <= 0.2 ? 'low' : 'ok';
}

function makeCard(day) {
  const inputId = `total-${day.date}`;
  const refs = {};
  refs.status = h('span', { class: 'pill' });
  refs.fill = h('span');
  refs.bar = h(
    'div',
    {
      class: 'stock-bar',
      role: 'meter',
      'aria-valuemin': 0,
      'aria-label': `Tickets left on ${day.date}`,
    },
    refs.fill,
  );
  refs.remaining = h('strong');
  refs.of = h('span');
  refs.soldPct = h('span');
  refs.sold = h('dd');
  refs.orders = h('dd');
  refs.cancelled = h('dd');
  refs.input = h('input', {
    id: inputId,
    type: 'number',
    min: 0,
    step: 1,
    inputmode: 'numeric',
    placeholder: 'New total',
  });
  const button = h('button', { class: 'btn btn-sm', type: 'submit' }, 'Set stock');
  const form = h(
    'form',
    { class: 'set-stock', 'aria-label': `Set the stock of ${day.date}`, novalidate: true },
    h('label', { class: 'sr-only', for: inputId }, `New total for ${day.date}`),
    refs.input,
    button,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    withBusy(button, () => setStock(day.date, refs.input.value, refs.input));
  });
  const card = h(
    'article',
    { class: 'day', dataset: { date: day.date }, 'aria-label': `Sale day ${day.date}` },
    h(
      'div',
      { class: 'day-head' },
      h('h3', null, `${weekdayOf(day.date)} ${day.date}`, h('small', null, longDay(day.date))),
      refs.status,
    ),
    h(
      'div',
      null,
      refs.bar,
      h('div', { class: 'stock-text' }, h('span', null, refs.remaining, refs.of), refs.soldPct),
    ),
    h(
      'dl',
      { class: 'day-stats' },
      h('div', null, h('dt', null, 'Sold'), refs.sold),
      h('div', null, h('dt', null, 'Orders'), refs.orders),
      h('div', null, h('dt', null, 'Cancelled'), refs.cancelled),
    ),
    form,
  );
  return { card, refs };
}

function updateCard({ card, refs }, day) {
  card.dataset.status = day.status;
  refs.status.textContent =
    day.status === 'stopped' ? 'Stopped' : day.remaining <= 0 ? 'Sold out' : 'On sale';
  refs.status.dataset.kind = day.status === 'stopped' ? '' : day.remaining <= 0 ? 'bad' : 'ok';
  const pct = day.total > 0 ? Math.max(0, Math.min(100, (day.remaining / day.total) * 100)) : 0;
  refs.fill.style.width = `${pct}%`;
  refs.bar.dataset.level = level(day);
  refs.bar.setAttribute('aria-valuemax', String(day.total));
  refs.bar.setAttribute('aria-valuenow', String(day.remaining));
  refs.bar.setAttribute('aria-valuetext', `${day.remaining} of ${day.total} tickets left`);
  refs.bar.dataset.remaining = String(day.remaining);
  refs.bar.dataset.total = String(day.total);
  refs.remaining.textContent = fmtInt(day.remaining);
  refs.of.textContent = ` left of ${fmtInt(day.total)}`;
  refs.soldPct.textContent = day.total > 0 ? `${Math.round((day.sold / day.total) * 100)}% sold` : 'no stock';
  refs.sold.textContent = fmtInt(day.sold);
  refs.orders.textContent = fmtInt(day.orders);
  refs.cancelled.textContent = fmtInt(day.cancelled);
}

function renderDays(days) {
  const current = days.filter((d) => d.status !== 'stopped');
  const past = days.filter((d) => d.status === 'stopped').reverse();
  const seen = new Set();
  const place = (list, container) => {
    list.forEach((day, i) => {
      seen.add(day.date);
      let entry = state.cards.get(day.date);
      if (!entry) {
        entry = makeCard(day);
        state.cards.set(day.date, entry);
      }
      updateCard(entry, day);
      if (container.children[i] !== entry.card)
        container.insertBefore(entry.card, container.children[i] ?? null);
    });
  };
  place(current, el.days);
  place(past, el.pastDays);
  for (const [date, entry] of state.cards) {
    if (!seen.has(date)) {
      entry.card.remove();
      state.cards.delete(date);
    }
  }
  if (current.length === 0 && !el.days.querySelector('.empty')) {
    el.days.append(h('p', { class: 'empty' }, 'No sale days. Roll the days or create one.'));
  } else if (current.length) el.days.querySelector('.empty')?.remove();
  el.past.hidden = past.length === 0;
  el.pastSummary.textContent = `Past days (${past.length})`;
  state.firstDate = current[0]?.date ?? null;
}

function renderTotals(total) {
  for (const [key, node] of Object.entries(el.totals)) node.textContent = fmtInt(total[key]);
}

function setLive(ok, text) {
  el.liveDot.dataset.state = ok ? 'live' : 'down';
  el.liveState.lastChild.textContent = text;
}

async function refreshPause() {
  const date = state.firstDate ?? new Date().toISOString().slice(0, 10);
  try {
    const t = await api(`/api/tickets/validate-time?date=${date}`);
    state.paused = t.reason === 'paused';
    el.pauseState.textContent = state.paused
      ? 'The sale is paused: every purchase is refused until you resume it.'
      : `The sale is running (sale hours ${t.saleHours} ${t.timeZone}).`;
    el.pause.disabled = state.paused;
    el.resume.disabled = !state.paused;
  } catch {
    el.pauseState.textContent = 'Could not read whether the sale is paused.';
  }
}

async function refreshStats() {
  try {
    const stats = await api('/api/tickets/stats');
    renderDays(stats.days);
    renderTotals(stats.total);
    setLive(true, `Live · updated ${clock()}`);
    if (el.daysMessage.dataset.kind === 'error') showNotice(el.daysMessage, null);
  } catch (err) {
    setLive(false, 'Connection lost, retrying…');
    showNotice(el.daysMessage, 'error', err?.human ?? humanError(5000), err?.code);
  }
}

async function tick() {
  if (!document.hidden) await Promise.all([refreshStats(), refreshPause()]);
  setTimeout(tick, STATS_EVERY_MS);
}

// ---------- Stock ----------

async function setStock(date, rawTotal, input) {
  const total = Number(String(rawTotal).trim());
  if (String(rawTotal).trim() === '' || !Number.isInteger(total) || total < 0) {
    input?.setAttribute('aria-invalid', 'true');
    showNotice(el.daysMessage, 'error', 'The total must be a whole number, 0 or more.', 1001);
    return;
  }
  input?.removeAttribute('aria-invalid');
  try {
    const day = await adminCall(`/api/admin/tickets/${encodeURIComponent(date)}`, {
      method: 'PUT',
      body: { total },
    });
    if (input) input.value = '';
    showNotice(el.daysMessage, null);
    toast(`${date}: stock set to ${fmtInt(day.total)} (${fmtInt(day.remaining)} left).`, 'ok');
    await refreshStats();
  } catch (err) {
    adminError(err, el.daysMessage);
  }
}

// ---------- Orders ----------

function orderRow(order) {
  const cancel = h('button', { type: 'button', class: 'btn btn-sm btn-danger' }, 'Cancel');
  let armed = 0;
  cancel.addEventListener('click', async () => {
    if (!armed) {
      cancel.textContent = 'Confirm cancel';
      cancel.classList.add('confirming');
      armed = setTimeout(() => {
        armed = 0;
        cancel.textContent = 'Cancel';
        cancel.classList.remove('confirming');
      }, 4000);
      return;
    }
    clearTimeout(armed);
    await withBusy(cancel, async () => {
      try {
        await ordersCall('/orders/cancel', {
          method: 'POST',
          body: { userId: order.userId, orderNo: order.orderNo },
        });
        toast(`Order ${order.orderNo} cancelled: the ticket is back in stock.`, 'ok');
        await Promise.all([loadOrders(order.userId), refreshStats()]);
      } catch (err) {
        showNotice(el.ordersMessage, 'error', err?.human ?? humanError(5000), err?.code);
      }
    });
  });
  const valid = order.status === 'valid';
  return h(
    'li',
    { class: 'order', dataset: { orderNo: order.orderNo, status: order.status } },
    h(
      'div',
      { class: 'order-main' },
      h('code', { class: 'order-code' }, order.ticketCode),
      h(
        'span',
        { class: 'order-meta' },
        `${weekdayOf(order.date)} ${order.date} · bought ${fmtDateTime(order.createdAt)} · order ${order.orderNo}`,
      ),
    ),
    h(
      'div',
      { class: 'order-side' },
      h(
        'span',
        {
          class: 'pill',
          dataset: { kind: valid ? 'ok' : '' },
          title: valid ? undefined : `Cancelled ${fmtDateTime(order.cancelledAt)}`,
        },
        valid ? 'Valid' : 'Cancelled',
      ),
      valid ? cancel : null,
    ),
  );
}

async function loadOrders(userId) {
  const orders = await ordersCall(`/orders?userId=${userId}`);
  state.ordersUserId = userId;
  el.ordersList.replaceChildren(...orders.map(orderRow));
  el.ordersList.hidden = orders.length === 0;
  const valid = orders.filter((o) => o.status === 'valid').length;
  showNotice(
    el.ordersMessage,
    'info',
    orders.length
      ? `User ${userId}: ${orders.length} order${orders.length === 1 ? '' : 's'}, ${valid} valid.`
      : `User ${userId} has no orders yet.`,
  );
}

async function showOrders(event) {
  event.preventDefault();
  const raw = el.ordersUser.value.trim();
  const userId = Number(raw);
  if (!raw || !Number.isSafeInteger(userId) || userId < 1) {
    el.ordersUser.setAttribute('aria-invalid', 'true');
    showNotice(el.ordersMessage, 'error', 'Enter a user ID: a whole number from 1 up.', 1001);
    return;
  }
  el.ordersUser.removeAttribute('aria-invalid');
  await withBusy(el.ordersLoad, async () => {
    try {
      await loadOrders(userId);
    } catch (err) {
      el.ordersList.hidden = true;
      showNotice(el.ordersMessage, 'error', err?.human ?? humanError(5000), err?.code);
    }
  });
}

// ---------- Sale controls, roll, reconcile ----------

async function setPaused(paused) {
  await withBusy(paused ? el.pause : el.resume, async () => {
    try {
      await adminCall(`/api/admin/sale/${paused ? 'pause' : 'resume'}`, { method: 'POST', body: {} });
      showNotice(
        el.adminMessage,
        paused ? 'warn' : 'ok',
        paused ? 'Sale paused on every gateway.' : 'Sale resumed: purchases are accepted again.',
      );
    } catch (err) {
      adminError(err);
    }
  });
  await refreshPause();
}

async function rollDays() {
  await withBusy(el.roll, async () => {
    try {
      const { created, stopped } = await adminCall('/api/admin/tickets/roll', { method: 'POST', body: {} });
      const parts = [];
      if (created.length) parts.push(`created ${created.join(', ')}`);
      if (stopped.length) parts.push(`stopped ${stopped.join(', ')}`);
      showNotice(
        el.adminMessage,
        'ok',
        parts.length
          ? `Days rolled: ${parts.join('; ')}.`
          : 'Nothing to roll: the sale days are already in place.',
      );
      await refreshStats();
    } catch (err) {
      adminError(err);
    }
  });
}

async function saveStock(event) {
  event.preventDefault();
  const date = el.stockDate.value;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) {
    el.stockDate.setAttribute('aria-invalid', 'true');
    showNotice(el.adminMessage, 'error', 'Choose a date.', 1001);
    return;
  }
  el.stockDate.removeAttribute('aria-invalid');
  await withBusy(el.stockSave, async () => {
    const total = Number(el.stockTotal.value.trim());
    if (el.stockTotal.value.trim() === '' || !Number.isInteger(total) || total < 0) {
      el.stockTotal.setAttribute('aria-invalid', 'true');
      showNotice(el.adminMessage, 'error', 'The total must be a whole number, 0 or more.', 1001);
      return;
    }
    el.stockTotal.removeAttribute('aria-invalid');
    try {
      const day = await adminCall(`/api/admin/tickets/${date}`, { method: 'PUT', body: { total } });
      showNotice(
        el.adminMessage,
        'ok',
        `${day.date}: ${fmtInt(day.total)} tickets, ${fmtInt(day.remaining)} left, ${fmtInt(day.sold)} sold.`,
      );
      el.stockTotal.value = '';
      await refreshStats();
    } catch (err) {
      adminError(err);
    }
  });
}

function renderReport(report) {
  const summary = report.differences
    ? `Repaired ${report.differences} difference${report.differences === 1 ? '' : 's'} between the cache and the database.`
    : 'The cache already agreed with the database: nothing to repair.';
  const rows = report.days.map((d) =>
    h(
      'tr',
      null,
      h('td', null, d.date),
      h(
        'td',
        { class: 'num' },
        d.stock.cached === d.stock.expected
          ? fmtInt(d.stock.expected)
          : `${d.stock.cached === null ? 'missing' : fmtInt(d.stock.cached)} → ${fmtInt(d.stock.expected)}`,
      ),
      h('td', { class: 'num' }, `+${d.claimsAdded} / −${d.claimsRemoved}`),
      h('td', { class: 'num' }, fmtInt(d.resultsRestored)),
      h('td', { class: 'num' }, fmtInt(d.pending)),
    ),
  );
  el.reconcileReport.replaceChildren(
    h(
      'div',
      { class: 'notice', dataset: { kind: report.differences ? 'warn' : 'ok' } },
      `${report.rebuilt ? 'The cache had been lost and was rebuilt. ' : ''}${summary}`,
    ),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        null,
        h('caption', { class: 'sr-only' }, 'Reconcile report'),
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            h('th', { scope: 'col' }, 'Day'),
            h('th', { scope: 'col', class: 'num' }, 'Stock'),
            h('th', { scope: 'col', class: 'num' }, 'Claims'),
            h('th', { scope: 'col', class: 'num' }, 'Results'),
            h('th', { scope: 'col', class: 'num' }, 'In flight'),
          ),
        ),
        h('tbody', null, rows),
      ),
    ),
  );
}

async function reconcile() {
  await withBusy(el.reconcile, async () => {
    try {
      const report = await adminCall('/api/admin/reconcile', { method: 'POST', body: {} });
      renderReport(report);
      showNotice(el.adminMessage, null);
    } catch (err) {
      adminError(err);
    }
  });
}

// ---------- Dead letters ----------

function letterRow(letter) {
  const resend = h('button', { type: 'button', class: 'btn btn-sm' }, 'Resend');
  resend.addEventListener('click', () =>
    withBusy(resend, async () => {
      try {
        await adminCall(`/api/admin/dlq/${encodeURIComponent(letter.messageId)}/resend`, {
          method: 'POST',
          body: {},
        });
        toast(`Message ${letter.messageId.slice(0, 8)}… is back in the queue.`, 'ok');
        await loadDeadLetters();
      } catch (err) {
        adminError(err, el.dlqMessage);
      }
    }),
  );
  return h(
    'tr',
    { dataset: { messageId: letter.messageId } },
    h('td', null, h('code', { title: letter.messageId }, `${letter.messageId.slice(0, 8)}…`)),
    h('td', { class: 'num' }, fmtInt(letter.userId)),
    h('td', null, letter.date),
    h('td', { class: 'wrap' }, letter.error ?? '—'),
    h('td', { class: 'num' }, fmtInt(letter.deliveries)),
    h('td', null, fmtDateTime(letter.deadLetteredAt)),
    h('td', { class: 'num' }, resend),
  );
}

async function loadDeadLetters() {
  const { total, letters } = await adminCall('/api/admin/dlq?limit=100');
  el.dlqCount.textContent = `${fmtInt(total)} dead letter${total === 1 ? '' : 's'}`;
  el.dlqCount.dataset.kind = total ? 'bad' : 'ok';
  showNotice(el.dlqMessage, null);
  if (letters.length === 0) {
    el.dlqBody.replaceChildren(h('p', { class: 'empty' }, 'No dead letters: every message went through.'));
    return;
  }
  const head = ['Message', 'User', 'Day', 'Error', 'Deliveries', 'Dead since', ''].map((t, i) =>
    h(
      'th',
      { scope: 'col', class: i === 1 || i === 4 ? 'num' : undefined },
      t || h('span', { class: 'sr-only' }, 'Action'),
    ),
  );
  el.dlqBody.replaceChildren(
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        null,
        h('caption', { class: 'sr-only' }, 'Dead letters'),
        h('thead', null, h('tr', null, head)),
        h('tbody', null, letters.map(letterRow)),
      ),
    ),
  );
}

async function refreshDeadLetters(button) {
  const run = async () => {
    try {
      await loadDeadLetters();
    } catch (err) {
      el.dlqBody.replaceChildren();
      adminError(err, el.dlqMessage);
    }
  };
  if (button) await withBusy(button, run);
  else await run();
}

// ---------- Wiring ----------

function init() {
  renderToken();
  el.stockDate.value = new Date().toISOString().slice(0, 10);
  el.tokenForm.addEventListener('submit', useToken);
  el.tokenForget.addEventListener('click', forgetToken);
  el.ordersForm.addEventListener('submit', showOrders);
  el.pause.addEventListener('click', () => setPaused(true));
  el.resume.addEventListener('click', () => setPaused(false));
  el.roll.addEventListener('click', rollDays);
  el.stockForm.addEventListener('submit', saveStock);
  el.reconcile.addEventListener('click', reconcile);
  el.dlqRefresh.addEventListener('click', () => refreshDeadLetters(el.dlqRefresh));
  if (getToken()) refreshDeadLetters();
  else
    el.dlqBody.replaceChildren(h('p', { class: 'empty' }, 'Enter the admin token to see the dead letters.'));
  setInterval(() => {
    if (getToken() && !document.hidden) refreshDeadLetters();
  }, DLQ_EVERY_MS);
  tick();
}

init();
