// The asynchronous purchase demo: hash, V2 submit, live status (polling, long-poll or SSE), log, crowd.
import {
  api as callApi,
  byId,
  clock,
  clockMs,
  fmtInt,
  fmtMs,
  h,
  humanError,
  isTerminal,
  longDay,
  mountHeader,
  pool,
  showNotice,
  sleep,
  STATUS_TEXT,
  weekdayOf,
  withBusy,
} from './common.js';

mountHeader();

const TOKEN_KEY = 'demo.userToken';
const userToken = () => sessionStorage.getItem(TOKEN_KEY) ?? '';
/** With AUTH_MODE=jwt the user endpoints need the pasted sign-in token; open mode ignores it. */
const api = (path, options = {}) => callApi(path, { ...options, token: userToken() });

/** The design's polling interval, used whenever the server gives no advice of its own. */
const DEFAULT_POLL_MS = 500;
const LONG_POLL_WAIT_MS = 25_000;
const MAX_LOG_LINES = 400;
const CROWD_MAX = 500;
const BATCH_MAX = 100;

const el = {
  form: byId('buy-form'),
  userId: byId('user-id'),
  userToken: byId('user-token'),
  date: byId('date'),
  hashBox: byId('hash-box'),
  hashValue: byId('hash-value'),
  hashExpiry: byId('hash-expiry'),
  getHash: byId('get-hash'),
  buy: byId('buy'),
  lookup: byId('lookup'),
  formMessage: byId('form-message'),
  saleState: byId('sale-state'),
  modeNote: byId('mode-note'),
  status: byId('status'),
  statusDesc: byId('status-desc'),
  steps: [byId('step-queued'), byId('step-processing'), byId('step-done')],
  ticket: byId('ticket'),
  ticketCode: byId('ticket-code'),
  ticketDay: byId('ticket-day'),
  orderNo: byId('order-no'),
  outcome: byId('outcome'),
  messageId: byId('message-id'),
  position: byId('position'),
  attempts: byId('attempts'),
  pollInterval: byId('poll-interval'),
  requests: byId('requests'),
  elapsed: byId('elapsed'),
  log: byId('log'),
  clearLog: byId('clear-log'),
  crowdForm: byId('crowd-form'),
  crowdFrom: byId('crowd-from'),
  crowdSize: byId('crowd-size'),
  crowdStart: byId('crowd-start'),
  crowdStop: byId('crowd-stop'),
  crowdMessage: byId('crowd-message'),
  crowdGrid: byId('crowd-grid'),
  crowdProgress: byId('crowd-progress'),
  crowdCounts: {
    sent: byId('crowd-n-sent'),
    queued: byId('crowd-n-queued'),
    success: byId('crowd-n-success'),
    failed: byId('crowd-n-failed'),
    rejected: byId('crowd-n-rejected'),
  },
};

const MODE_NOTES = {
  poll: 'Smart polling: asks again at the interval the server advises',
  long: 'Long-poll: one request waits until the result is final',
  sse: 'Live stream: the server pushes every status change',
};

const state = {
  days: [],
  /** The verify hash of the current user and day: { userId, date, verifyHash, expiresAt }. */
  hash: null,
  /** The purchase being followed. */
  track: null,
  /** Message ids this page has already seen answered, to point out idempotent repeats. */
  seen: new Set(),
  crowd: null,
};

// ---------- Log ----------

function log(level, text) {
  const now = new Date();
  const list = el.log;
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 30;
  list.append(
    h(
      'li',
      { class: `log-${level}` },
      h('time', { datetime: now.toISOString() }, clockMs(now)),
      h('span', { class: 'lvl' }, level),
      h('span', { class: 'msg' }, text),
    ),
  );
  while (list.childElementCount > MAX_LOG_LINES) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

const since = (t0) => fmtMs(performance.now() - t0);

/** Reports a failed call in the form's notice and in the log. */
function reportError(err, context, target = el.formMessage) {
  if (err?.name === 'AbortError') return;
  const code = err?.code ?? 5000;
  const human = err?.human ?? humanError(code);
  showNotice(target, 'error', human, code);
  const server = err?.message && err.message !== human ? ` Server: "${err.message}".` : '';
  log('error', `${context}: ${human} (code ${code}).${server}`);
}

// ---------- Sale days and sale state ----------

function dayLabel(day) {
  const stock = day.soldOut ? 'sold out' : `${fmtInt(day.remaining)} left`;
  return `${weekdayOf(day.date)} ${day.date} · ${stock}`;
}

function renderDays() {
  const select = el.date;
  const current = select.value || sessionStorage.getItem('demo.date') || '';
  const same =
    select.options.length === state.days.length &&
    state.days.every((d, i) => select.options[i].value === d.date);
  if (same) {
    state.days.forEach((d, i) => {
      const text = dayLabel(d);
      if (select.options[i].textContent !== text) select.options[i].textContent = text;
    });
    return;
  }
  if (state.days.length === 0) {
    select.replaceChildren(h('option', { value: '' }, 'No sale days right now'));
    return;
  }
  select.replaceChildren(...state.days.map((d) => h('option', { value: d.date }, dayLabel(d))));
  select.value = state.days.some((d) => d.date === current) ? current : state.days[0].date;
  renderHash();
}

async function loadDays(quiet = false) {
  try {
    state.days = await api('/api/tickets/list');
    renderDays();
    if (!quiet) {
      const list = state.days.map((d) => `${d.date} (${d.remaining}/${d.total} left)`).join(', ');
      log('info', `Sale days loaded: ${list || 'none'}.`);
    }
  } catch (err) {
    if (!quiet) reportError(err, 'Could not load the sale days');
  }
}

async function checkSale() {
  const date = el.date.value;
  if (!date) return;
  try {
    const t = await api(`/api/tickets/validate-time?date=${encodeURIComponent(date)}`);
    if (t.allowed) {
      el.saleState.dataset.kind = 'ok';
      el.saleState.textContent = `Open now · sale hours ${t.saleHours} ${t.timeZone}`;
    } else if (t.reason === 'paused') {
      el.saleState.dataset.kind = 'warn';
      el.saleState.textContent = 'Sale paused';
    } else {
      el.saleState.dataset.kind = 'bad';
      el.saleState.textContent = `Closed · ${t.message}`;
    }
  } catch {
    el.saleState.dataset.kind = 'bad';
    el.saleState.textContent = 'Sale status unknown';
  }
}

// ---------- The request and its hash ----------

function readUserId(input, quiet) {
  const raw = input.value.trim();
  const value = Number(raw);
  const ok = raw !== '' && Number.isSafeInteger(value) && value >= 1;
  if (quiet) return ok ? value : null;
  if (!ok) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    return null;
  }
  input.removeAttribute('aria-invalid');
  return value;
}

/** The user and day in the form, or null (with a message unless `quiet`). */
function readRequest(quiet = false) {
  const userId = readUserId(el.userId, quiet);
  if (userId === null) {
    if (!quiet) showNotice(el.formMessage, 'error', 'Enter a user ID: a whole number from 1 up.', 1001);
    return null;
  }
  const date = el.date.value;
  if (!date) {
    if (!quiet) showNotice(el.formMessage, 'error', 'Choose a sale day.', 1001);
    return null;
  }
  return { userId, date };
}

function hashFits(req) {
  const hash = state.hash;
  return Boolean(
    req &&
    hash &&
    hash.userId === req.userId &&
    hash.date === req.date &&
    Date.parse(hash.expiresAt) > Date.now(),
  );
}

function renderHash() {
  const ready = hashFits(readRequest(true));
  el.hashBox.dataset.ready = String(ready);
  el.hashValue.textContent = ready ? state.hash.verifyHash : 'No hash yet: get one for this user and day';
  el.hashValue.title = ready ? state.hash.verifyHash : '';
  el.hashExpiry.textContent = ready ? `valid until ${clock(new Date(state.hash.expiresAt))}` : '';
  if (el.buy.getAttribute('aria-busy') !== 'true') el.buy.disabled = !ready;
}

async function getHash() {
  showNotice(el.formMessage, null);
  const req = readRequest();
  if (!req) return;
  await withBusy(el.getHash, async () => {
    const path = `/api/tickets/verify-hash?userId=${req.userId}&date=${req.date}`;
    log('info', `GET ${path}`);
    const t0 = performance.now();
    try {
      const data = await api(path);
      state.hash = { ...req, verifyHash: data.verifyHash, expiresAt: data.expiresAt };
      log(
        'ok',
        `Verify hash issued in ${since(t0)}: ${data.verifyHash.slice(0, 16)}…, valid until ${clock(new Date(data.expiresAt))}.`,
      );
    } catch (err) {
      state.hash = null;
      reportError(err, 'No verify hash');
    }
  });
  renderHash();
  if (!el.buy.disabled) el.buy.focus();
}

// ---------- Status display ----------

function setSteps(status) {
  const states =
    status === 'REJECTED'
      ? ['failed', '', '']
      : status === 'SUCCESS'
        ? ['done', 'done', 'done']
        : status === 'FAILED'
          ? ['done', 'done', 'failed']
          : status === 'IDLE'
            ? ['', '', '']
            : ['done', 'active', ''];
  el.steps.forEach((step, i) => {
    if (states[i]) step.dataset.state = states[i];
    else delete step.dataset.state;
  });
}

function setStatus(status, description) {
  el.status.dataset.status = status;
  el.status.textContent = status;
  el.statusDesc.textContent = description ?? STATUS_TEXT[status] ?? status;
  setSteps(status);
}

function resetStatus() {
  setStatus('IDLE');
  el.ticket.hidden = true;
  el.ticketCode.textContent = '';
  el.orderNo.textContent = '';
  showNotice(el.outcome, null);
  el.messageId.textContent = '—';
  el.messageId.title = '';
  el.position.textContent = '—';
  el.attempts.textContent = '—';
  el.pollInterval.textContent = '—';
  el.requests.textContent = '0';
  el.elapsed.textContent = '—';
}

function positionText(record) {
  if (isTerminal(record.status)) return '—';
  if (record.status !== 'PENDING') return 'Being processed';
  if (record.position === undefined || record.position === null) return 'In the queue';
  return record.position === 0 ? 'Next in line' : `${fmtInt(record.position)} ahead`;
}

function showRecord(record) {
  setStatus(record.status);
  el.messageId.textContent = record.messageId;
  el.messageId.title = record.messageId;
  el.position.textContent = positionText(record);
  el.attempts.textContent = record.attempts === undefined ? '—' : String(record.attempts);
}

function showNextCheck(text) {
  el.pollInterval.textContent = text;
}

// ---------- Following one purchase ----------

const activeMode = () => el.form.querySelector('input[name="mode"]:checked')?.value ?? 'poll';
const isActive = (track, gen) => state.track === track && !track.done && track.gen === gen;

function stopTracking() {
  const track = state.track;
  if (!track) return;
  track.done = true;
  track.ctrl?.abort();
  track.es?.close();
  clearInterval(track.ticker);
  state.track = null;
}

function follow(record) {
  stopTracking();
  const track = {
    messageId: record.messageId,
    date: record.date,
    userId: record.userId,
    status: record.status,
    startedAt: performance.now(),
    requests: 0,
    done: false,
    gen: 0,
    ctrl: null,
    es: null,
    ticker: 0,
  };
  state.track = track;
  showRecord({ attempts: 0, ...record });
  track.ticker = setInterval(() => {
    el.elapsed.textContent = fmtMs(performance.now() - track.startedAt);
  }, 100);
  if (isTerminal(record.status)) {
    if (record.ticketCode || record.errorCode) finish(track, record);
    else fetchFinal(track);
    return;
  }
  startFollowing(track, record.pollIntervalMs ?? DEFAULT_POLL_MS);
}

/** (Re)starts following with the mode chosen in the switch. */
function startFollowing(track, firstWaitMs) {
  if (track.done) return;
  track.gen += 1;
  const gen = track.gen;
  track.ctrl?.abort();
  track.ctrl = new AbortController();
  track.es?.close();
  track.es = null;
  const mode = activeMode();
  el.modeNote.textContent = MODE_NOTES[mode];
  // An EventSource cannot send the sign-in token: signed in, the result is long-polled instead.
  if (mode === 'sse' && !userToken()) stream(track, gen);
  else if (mode === 'long' || mode === 'sse') longPoll(track, gen);
  else poll(track, gen, firstWaitMs);
}

async function request(track, path) {
  track.requests += 1;
  el.requests.textContent = String(track.requests);
  return api(path, { signal: track.ctrl.signal });
}

const resultPath = (messageId, waitMs) =>
  `/api/tickets/v2/purchase/result?messageId=${encodeURIComponent(messageId)}${waitMs ? `&waitMs=${waitMs}` : ''}`;

function progress(track, record) {
  if (record.status !== track.status) {
    log(
      'info',
      `Status ${track.status} → ${record.status}${record.attempts ? ` (attempt ${record.attempts})` : ''}.`,
    );
    track.status = record.status;
  }
  showRecord(record);
}

/** A check that failed: true to keep trying, false when there is nothing more to follow. */
function checkFailed(track, err) {
  if (err?.name === 'AbortError') return false;
  if (err?.code === 6008) {
    track.done = true;
    clearInterval(track.ticker);
    setStatus('FAILED', 'Unknown message');
    showNotice(el.outcome, 'error', humanError(6008), 6008);
    log('error', `The server does not know message ${track.messageId} (code 6008).`);
    return false;
  }
  log('warn', `Check failed: ${err?.human ?? humanError(5000)} (code ${err?.code ?? 5000}). Trying again.`);
  return true;
}

async function poll(track, gen, firstWaitMs) {
  let wait = firstWaitMs ?? DEFAULT_POLL_MS;
  let failures = 0;
  log('debug', `Smart polling: first check in ${wait} ms (server advice).`);
  while (isActive(track, gen)) {
    showNextCheck(`${fmtInt(wait)} ms`);
    await sleep(wait, track.ctrl.signal);
    if (!isActive(track, gen)) return;
    try {
      const record = await request(track, resultPath(track.messageId));
      failures = 0;
      if (!isActive(track, gen)) return;
      if (isTerminal(record.status)) return finish(track, record);
      wait = record.pollIntervalMs ?? DEFAULT_POLL_MS;
      progress(track, record);
      const where = record.position !== undefined ? `, ${record.position} ahead` : '';
      log('debug', `Poll #${track.requests}: ${record.status}${where}; next check in ${wait} ms.`);
    } catch (err) {
      if (!isActive(track, gen) || !checkFailed(track, err)) return;
      failures += 1;
      wait = Math.min(5000, DEFAULT_POLL_MS * 2 ** failures);
    }
  }
}

async function longPoll(track, gen) {
  let failures = 0;
  while (isActive(track, gen)) {
    showNextCheck('waiting (long-poll)');
    log('debug', `Long-poll #${track.requests + 1}: the server answers as soon as the result is final.`);
    try {
      const record = await request(track, resultPath(track.messageId, LONG_POLL_WAIT_MS));
      failures = 0;
      if (!isActive(track, gen)) return;
      if (isTerminal(record.status)) return finish(track, record);
      progress(track, record);
      log('debug', `Long-poll came back at its time limit with ${record.status}; asking again.`);
    } catch (err) {
      if (!isActive(track, gen) || !checkFailed(track, err)) return;
      failures += 1;
      await sleep(Math.min(5000, DEFAULT_POLL_MS * 2 ** failures), track.ctrl.signal);
    }
  }
}

function stream(track, gen) {
  const url = `/api/tickets/v2/purchase/stream?messageId=${encodeURIComponent(track.messageId)}`;
  const es = new EventSource(url);
  track.es = es;
  track.requests += 1;
  el.requests.textContent = String(track.requests);
  showNextCheck('pushed live');
  log('debug', `GET ${url} (Server-Sent Events)`);
  es.addEventListener('open', () => {
    if (isActive(track, gen)) log('debug', 'Stream open: the server pushes every status change.');
  });
  es.addEventListener('status', (event) => {
    if (!isActive(track, gen)) return es.close();
    let record;
    try {
      record = JSON.parse(event.data);
    } catch {
      return;
    }
    log('debug', `Stream event: ${record.status}.`);
    if (isTerminal(record.status)) {
      es.close();
      finish(track, record);
    } else progress(track, record);
  });
  es.addEventListener('error', () => {
    es.close();
    if (!isActive(track, gen)) return;
    log('warn', 'The live stream was interrupted; following the result by polling instead.');
    track.es = null;
    poll(track, gen, DEFAULT_POLL_MS);
  });
}

/** A repeat of a finished purchase answers only its status: read the whole record once. */
async function fetchFinal(track) {
  track.ctrl = new AbortController();
  try {
    const record = await request(track, resultPath(track.messageId));
    if (state.track === track && !track.done) finish(track, record);
  } catch (err) {
    if (state.track === track) checkFailed(track, err);
  }
}

function finish(track, record) {
  track.done = true;
  track.ctrl?.abort();
  track.es?.close();
  clearInterval(track.ticker);
  const elapsed = performance.now() - track.startedAt;
  el.elapsed.textContent = fmtMs(elapsed);
  showNextCheck('done');
  showRecord(record);
  const serverMs =
    record.completedAt && record.queuedAt
      ? Date.parse(record.completedAt) - Date.parse(record.queuedAt)
      : null;
  const serverText = serverMs !== null && serverMs >= 0 ? `, ${fmtMs(serverMs)} from queue to result` : '';
  if (record.status === 'SUCCESS') {
    el.ticket.hidden = false;
    el.ticketCode.textContent = record.ticketCode ?? '—';
    el.ticketDay.textContent = longDay(record.date);
    el.orderNo.textContent = record.orderNo ?? '—';
    if (record.cancelledAt) {
      showNotice(el.outcome, 'warn', `This order was cancelled at ${clock(new Date(record.cancelledAt))}.`);
    } else {
      showNotice(el.outcome, 'ok', `Congratulations! You have a ticket for ${longDay(record.date)}.`);
    }
    log('ok', `SUCCESS: ticket ${record.ticketCode}, order ${record.orderNo}${serverText}.`);
  } else {
    const code = record.errorCode ?? 5000;
    showNotice(el.outcome, 'error', humanError(code), code);
    const detail = record.errorMessage ? ` Server: "${record.errorMessage}".` : '';
    log('error', `FAILED: ${humanError(code)} (code ${code})${serverText}.${detail}`);
  }
  loadDays(true);
}

function showRejected(err) {
  if (err?.name === 'AbortError') return;
  const code = err?.code ?? 5000;
  setStatus('REJECTED', 'Refused at once: nothing was queued');
  showNotice(el.outcome, 'error', err?.human ?? humanError(code), code);
}

// ---------- Buying and looking up ----------

async function buy(event) {
  event.preventDefault();
  showNotice(el.formMessage, null);
  const req = readRequest();
  if (!req) return;
  if (!hashFits(req)) {
    showNotice(el.formMessage, 'warn', 'Get a verify hash for this user and day first.');
    return;
  }
  stopTracking();
  resetStatus();
  await withBusy(el.buy, async () => {
    log('info', `POST /api/tickets/v2/purchase { userId: ${req.userId}, date: "${req.date}" }`);
    const t0 = performance.now();
    try {
      const answer = await api('/api/tickets/v2/purchase', {
        method: 'POST',
        body: { userId: req.userId, date: req.date, verifyHash: state.hash.verifyHash },
      });
      const where = answer.position !== undefined ? `, ${answer.position} ahead in the queue` : '';
      log(
        'ok',
        `Accepted in ${since(t0)}: message ${answer.messageId} is ${answer.status}${where}; the server advises checking every ${answer.pollIntervalMs} ms.`,
      );
      if (state.seen.has(answer.messageId)) {
        log('info', 'Same message ID as before: the server recognised the repeat and queued nothing new.');
      }
      state.seen.add(answer.messageId);
      follow({ ...answer, userId: req.userId, date: req.date });
    } catch (err) {
      showRejected(err);
      reportError(err, 'Purchase refused', el.outcome);
    }
  });
  renderHash();
}

async function lookup() {
  showNotice(el.formMessage, null);
  const req = readRequest();
  if (!req) return;
  stopTracking();
  resetStatus();
  await withBusy(el.lookup, async () => {
    const path = `/api/tickets/v2/purchase/result/user?userId=${req.userId}&date=${req.date}`;
    log('info', `GET ${path}`);
    try {
      const record = await api(path);
      log('ok', `Found message ${record.messageId}: ${record.status}.`);
      state.seen.add(record.messageId);
      follow(record);
    } catch (err) {
      if (err?.code === 6008) {
        showNotice(el.outcome, 'info', `No purchase yet for user ${req.userId} on ${longDay(req.date)}.`);
        log('info', 'No purchase found for this user and day.');
      } else reportError(err, 'Lookup failed');
    }
  });
}

// ---------- Crowd ----------

function renderCrowd(crowd) {
  if (crowd.frame) return;
  crowd.frame = requestAnimationFrame(() => {
    crowd.frame = 0;
    const n = { sent: crowd.sent, queued: 0, success: 0, failed: 0, rejected: 0 };
    for (const u of crowd.users) {
      if (u.status === 'SUCCESS') n.success += 1;
      else if (u.status === 'FAILED') n.failed += 1;
      else if (u.status === 'REJECTED') n.rejected += 1;
      else if (u.messageId) n.queued += 1;
    }
    for (const [key, node] of Object.entries(el.crowdCounts)) node.textContent = fmtInt(n[key]);
    const finished = n.success + n.failed + n.rejected;
    const pct = crowd.users.length ? Math.round((finished / crowd.users.length) * 100) : 0;
    el.crowdProgress.setAttribute('aria-valuenow', String(pct));
    el.crowdProgress.firstElementChild.style.width = `${pct}%`;
    el.crowdGrid.setAttribute(
      'aria-label',
      `${crowd.users.length} users: ${n.success} got a ticket, ${n.failed} failed, ${n.rejected} refused, ${n.queued} in the queue`,
    );
  });
}

function setCell(crowd, user, status, title) {
  user.status = status;
  user.cell.dataset.status = status;
  user.cell.title = `User ${user.userId}: ${title ?? STATUS_TEXT[status] ?? status}`;
  renderCrowd(crowd);
}

function refuse(crowd, user, err) {
  const code = err?.code ?? 5000;
  user.code = code;
  crowd.codes.set(code, (crowd.codes.get(code) ?? 0) + 1);
  setCell(crowd, user, 'REJECTED', `refused: ${humanError(code)} (code ${code})`);
}

function stopCrowd(reason) {
  const crowd = state.crowd;
  if (!crowd || crowd.done) return;
  crowd.done = true;
  crowd.ctrl.abort();
  el.crowdStop.disabled = true;
  if (reason) {
    showNotice(el.crowdMessage, 'warn', reason);
    log('warn', `Crowd: ${reason}`);
  }
}

async function runCrowd(event) {
  event.preventDefault();
  const from = readUserId(el.crowdFrom);
  const size = Number(el.crowdSize.value);
  if (from === null) {
    showNotice(el.crowdMessage, 'error', 'Enter the first user ID: a whole number from 1 up.', 1001);
    return;
  }
  if (!Number.isInteger(size) || size < 1 || size > CROWD_MAX) {
    el.crowdSize.setAttribute('aria-invalid', 'true');
    showNotice(el.crowdMessage, 'error', `Choose between 1 and ${CROWD_MAX} users.`, 1001);
    return;
  }
  el.crowdSize.removeAttribute('aria-invalid');
  const date = el.date.value;
  if (!date) {
    showNotice(el.crowdMessage, 'error', 'Choose a sale day above first.', 1001);
    return;
  }
  stopCrowd();
  const crowd = {
    ctrl: new AbortController(),
    users: [],
    sent: 0,
    codes: new Map(),
    done: false,
    frame: 0,
    startedAt: performance.now(),
  };
  state.crowd = crowd;
  const { signal } = crowd.ctrl;
  for (let i = 0; i < size; i++) {
    const user = { userId: from + i, status: 'HASHING', cell: h('span', { class: 'cell' }) };
    crowd.users.push(user);
    user.cell.dataset.status = 'HASHING';
    user.cell.title = `User ${user.userId}: getting a verify hash`;
  }
  el.crowdGrid.replaceChildren(...crowd.users.map((u) => u.cell));
  renderCrowd(crowd);
  el.crowdStop.disabled = false;

  await withBusy(el.crowdStart, async () => {
    const last = from + size - 1;
    log('info', `Crowd: ${size} users (${from}–${last}) go for ${date}.`);
    showNotice(el.crowdMessage, 'info', `Getting ${size} verify hashes…`);
    await pool(crowd.users, 16, async (user) => {
      if (signal.aborted) return;
      try {
        const data = await api(`/api/tickets/verify-hash?userId=${user.userId}&date=${date}`, { signal });
        user.hash = data.verifyHash;
        setCell(crowd, user, 'HASHING', 'hash ready, about to submit');
      } catch (err) {
        if (err?.name !== 'AbortError') refuse(crowd, user, err);
      }
    });
    if (signal.aborted) return;

    const ready = crowd.users.filter((u) => u.hash);
    showNotice(el.crowdMessage, 'info', `Submitting ${ready.length} purchases at once…`);
    const t0 = performance.now();
    let advice = DEFAULT_POLL_MS;
    await Promise.all(
      ready.map(async (user) => {
        try {
          const answer = await api('/api/tickets/v2/purchase', {
            method: 'POST',
            body: { userId: user.userId, date, verifyHash: user.hash },
            signal,
          });
          user.messageId = answer.messageId;
          advice = Math.min(advice, answer.pollIntervalMs ?? DEFAULT_POLL_MS);
          crowd.sent += 1;
          setCell(crowd, user, answer.status);
        } catch (err) {
          if (err?.name === 'AbortError') return;
          crowd.sent += 1;
          refuse(crowd, user, err);
        }
      }),
    );
    if (signal.aborted) return;
    const accepted = ready.filter((u) => u.messageId).length;
    const refusals = [...crowd.codes].map(([code, n]) => `${n} × ${code}`).join(', ');
    log(
      'ok',
      `Crowd: ${crowd.sent} submits in ${since(t0)}: ${accepted} accepted, ${crowd.sent - accepted} refused at once${refusals ? ` (${refusals})` : ''}.`,
    );

    const byMessage = new Map(ready.filter((u) => u.messageId).map((u) => [u.messageId, u]));
    let batches = 0;
    for (;;) {
      const open = [...byMessage.values()].filter((u) => !isTerminal(u.status));
      if (open.length === 0 || signal.aborted) break;
      showNotice(el.crowdMessage, 'info', `Following ${open.length} messages with batch queries…`);
      await sleep(advice, signal);
      if (signal.aborted) break;
      let nextAdvice = null;
      try {
        for (let i = 0; i < open.length; i += BATCH_MAX) {
          const messageIds = open.slice(i, i + BATCH_MAX).map((u) => u.messageId);
          const records = await api('/api/tickets/v2/purchase/results', {
            method: 'POST',
            body: { messageIds },
            signal,
          });
          batches += 1;
          for (const record of records) {
            const user = byMessage.get(record.messageId);
            if (!user) continue;
            if (record.code) {
              setCell(crowd, user, 'FAILED', humanError(record.code));
              continue;
            }
            const note =
              record.status === 'SUCCESS'
                ? `ticket ${record.ticketCode}`
                : record.status === 'FAILED'
                  ? humanError(record.errorCode)
                  : undefined;
            setCell(crowd, user, record.status, note);
            if (record.pollIntervalMs) nextAdvice = Math.min(nextAdvice ?? Infinity, record.pollIntervalMs);
          }
        }
        advice = nextAdvice ?? DEFAULT_POLL_MS;
      } catch (err) {
        if (err?.name === 'AbortError') break;
        log('warn', `Crowd: batch query failed: ${err?.human ?? humanError(5000)}. Trying again.`);
        advice = Math.min(5000, advice * 2);
      }
    }
    if (signal.aborted) return;
    crowd.done = true;
    el.crowdStop.disabled = true;
    const count = (s) => crowd.users.filter((u) => u.status === s).length;
    const summary = `Done in ${since(crowd.startedAt)}: ${count('SUCCESS')} got a ticket, ${count('FAILED')} failed, ${count('REJECTED')} refused at once (${batches} batch ${batches === 1 ? 'query' : 'queries'}).`;
    showNotice(el.crowdMessage, 'ok', summary);
    log('ok', `Crowd: ${summary}`);
    loadDays(true);
  });
}

// ---------- Wiring ----------

function init() {
  const savedUser = sessionStorage.getItem('demo.userId');
  el.userId.value = savedUser ?? String(1 + Math.floor(Math.random() * 1000));
  resetStatus();
  el.modeNote.textContent = MODE_NOTES[activeMode()];

  el.userId.addEventListener('input', () => {
    el.userId.removeAttribute('aria-invalid');
    sessionStorage.setItem('demo.userId', el.userId.value);
    renderHash();
  });
  el.date.addEventListener('change', () => {
    sessionStorage.setItem('demo.date', el.date.value);
    renderHash();
    checkSale();
  });
  el.userToken.value = userToken();
  el.userToken.addEventListener('change', () => {
    sessionStorage.setItem(TOKEN_KEY, el.userToken.value.trim());
    renderHash();
  });
  el.getHash.addEventListener('click', getHash);
  el.form.addEventListener('submit', buy);
  el.lookup.addEventListener('click', lookup);
  el.clearLog.addEventListener('click', () => el.log.replaceChildren());
  for (const radio of el.form.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener('change', () => {
      el.modeNote.textContent = MODE_NOTES[activeMode()];
      const track = state.track;
      if (track && !track.done) {
        log('info', `Switched to ${MODE_NOTES[activeMode()].split(':')[0].toLowerCase()}.`);
        startFollowing(track, 0);
      }
    });
  }
  el.crowdForm.addEventListener('submit', runCrowd);
  el.crowdStop.addEventListener('click', () => stopCrowd('Stopped: messages already queued still complete.'));

  loadDays().then(checkSale);
  setInterval(() => {
    if (document.hidden) return;
    loadDays(true);
    checkSale();
  }, 5000);
  setInterval(renderHash, 30_000); // hashes expire
}

init();
