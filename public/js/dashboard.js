// Live monitoring: the monitor's SSE stream (snapshot every second, alerts) drawn with Chart.js.
import {
  api,
  byId,
  clock,
  fmtDuration,
  fmtInt,
  fmtMs,
  fmtNum,
  h,
  humanError,
  mountHeader,
  showNotice,
  toast,
} from './common.js';

mountHeader();

const WINDOW_MS = 120_000;
const POLL_MS = 1000;
const RECONNECT_MS = 10_000;
/** With METRICS_TOKEN set the monitor asks for it; it stays in this browser tab only. */
const TOKEN_KEY = 'miaosha.metricsToken';
const metricsToken = () => sessionStorage.getItem(TOKEN_KEY) ?? '';
const monitorApi = (path) => api(path, { token: metricsToken() });

const OUTCOMES = [
  ['accepted', 'Accepted', '#22a75d'],
  ['duplicate', 'Repeat', '#8b5cf6'],
  ['sold_out', 'Sold out', '#f59e0b'],
  ['rejected', 'Rejected', '#e5484d'],
  ['rate_limited', 'Rate limited', '#f97316'],
  ['paused', 'Paused', '#64748b'],
  ['unavailable', 'Unavailable', '#991b1b'],
];
const NODE_COLORS = ['#3b6ef5', '#14b8a6', '#f59e0b', '#8b5cf6', '#e5484d', '#22a75d', '#0ea5e9', '#d946ef'];
const DEPS = { nats: 'NATS', redis: 'Redis', postgres: 'PostgreSQL' };

const state = {
  history: [],
  lastAt: '',
  es: null,
  pollTimer: 0,
  reconnectTimer: 0,
  charts: {},
  nodeIds: { memory: '', cpu: '' },
  alertsTimer: 0,
};

// ---------- Charts ----------

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

function dataset(label, color, { fill = false, dash } = {}) {
  return {
    label,
    data: [],
    borderColor: color,
    backgroundColor: fill ? alpha(color, 0.22) : color,
    fill,
    borderWidth: 2,
    borderDash: dash,
    tension: 0.3,
    pointRadius: 0,
    pointHoverRadius: 3,
    spanGaps: true,
  };
}

function makeChart(id, datasets, { stacked = false, unit = '', max, legend = true } = {}) {
  const Chart = window.Chart;
  return new Chart(byId(id), {
    type: 'line',
    data: { labels: [], datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      normalized: true,
      interaction: { mode: 'index', intersect: false },
      scales: {
        x: { grid: { display: false }, ticks: { maxTicksLimit: 5, maxRotation: 0, autoSkip: true } },
        y: {
          stacked,
          beginAtZero: true,
          suggestedMax: max,
          grid: { color: css('--border') },
          ticks: { maxTicksLimit: 5, callback: (v) => `${fmtNum(v)}${unit}` },
        },
      },
      plugins: {
        legend: {
          display: legend,
          position: 'bottom',
          labels: { boxWidth: 8, boxHeight: 8, usePointStyle: true, pointStyle: 'circle', padding: 14 },
        },
        tooltip: {
          callbacks: {
            label: (item) => ` ${item.dataset.label}: ${item.raw === null ? '—' : fmtNum(item.raw)}${unit}`,
          },
        },
      },
    },
  });
}

function setupCharts() {
  const Chart = window.Chart;
  if (!Chart) return false;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.font.size = 12;
  Chart.defaults.color = css('--muted');
  Chart.defaults.borderColor = css('--border');
  state.charts.submits = makeChart(
    'chart-submits',
    OUTCOMES.map(([, label, color], i) => dataset(label, color, { fill: i === 0 ? 'origin' : '-1' })),
    { stacked: true, unit: '/s', max: 5, legend: false }, // the totals below the chart are its legend
  );
  state.charts.results = makeChart(
    'chart-results',
    [
      dataset('Success', '#22a75d', { fill: 'origin' }),
      dataset('Failed', '#e5484d'),
      dataset('System failures', '#991b1b', { dash: [5, 4] }),
    ],
    { unit: '/s', max: 5 },
  );
  state.charts.latency = makeChart(
    'chart-latency',
    [dataset('p50', '#3b6ef5'), dataset('p95', '#8b5cf6'), dataset('p99', '#e5484d')],
    { unit: ' ms', max: 10 },
  );
  state.charts.queue = makeChart(
    'chart-queue',
    [
      dataset('Waiting', '#3b6ef5', { fill: 'origin' }),
      dataset('In progress', '#14b8a6'),
      dataset('Dead letters', '#e5484d', { dash: [5, 4] }),
    ],
    { max: 10 },
  );
  state.charts.memory = makeChart('chart-memory', [], { unit: ' MB' });
  state.charts.cpu = makeChart('chart-cpu', [], { unit: '%', max: 10 });
  return true;
}

/** One dataset per node seen in the window; rebuilt when the set of nodes changes. */
function nodeSeries(chart, key, field) {
  const ids = [...new Set(state.history.flatMap((s) => s.nodes.map((n) => n.nodeID)))].sort();
  const signature = ids.join('|');
  if (state.nodeIds[key] !== signature) {
    state.nodeIds[key] = signature;
    chart.data.datasets = ids.map((id, i) => dataset(id, NODE_COLORS[i % NODE_COLORS.length]));
  }
  chart.data.datasets.forEach((ds, i) => {
    ds.data = state.history.map((s) => s.nodes.find((n) => n.nodeID === ids[i])?.[field] ?? null);
  });
}

function drawCharts() {
  const c = state.charts;
  if (!c.submits) return;
  const labels = state.history.map((s) => clock(new Date(s.at)));
  for (const chart of Object.values(c)) chart.data.labels = labels;
  c.submits.data.datasets.forEach((ds, i) => {
    const key = OUTCOMES[i][0];
    ds.data = state.history.map((s) => s.submits.byOutcome?.[key] ?? 0);
  });
  const r = c.results.data.datasets;
  r[0].data = state.history.map((s) => s.results.successPerSec);
  r[1].data = state.history.map((s) => s.results.failedPerSec);
  r[2].data = state.history.map((s) => s.results.systemFailedPerSec ?? 0);
  const l = c.latency.data.datasets;
  l[0].data = state.history.map((s) => s.latency.p50);
  l[1].data = state.history.map((s) => s.latency.p95);
  l[2].data = state.history.map((s) => s.latency.p99);
  const q = c.queue.data.datasets;
  q[0].data = state.history.map((s) => s.queue?.waiting ?? null);
  q[1].data = state.history.map((s) => s.queue?.inProgress ?? null);
  q[2].data = state.history.map((s) => s.queue?.deadLetters ?? null);
  nodeSeries(c.memory, 'memory', 'rssMb');
  nodeSeries(c.cpu, 'cpu', 'cpuPercent');
  for (const chart of Object.values(c)) chart.update('none');
}

// ---------- Figures ----------

function setKpi(id, text, value) {
  const node = byId(id);
  node.textContent = text;
  if (value !== undefined) node.dataset.value = String(value ?? '');
}

function renderKpis(s) {
  const sum = (record) => Object.values(record ?? {}).reduce((a, b) => a + b, 0);
  setKpi('kpi-submits', fmtNum(s.submits.perSec), s.submits.perSec);
  const accepted = s.submits.total?.accepted ?? 0;
  setKpi('kpi-submits-sub', `${fmtInt(accepted)} accepted of ${fmtInt(sum(s.submits.total))}`, accepted);
  setKpi('kpi-success', fmtNum(s.results.successPerSec), s.results.successPerSec);
  setKpi('kpi-failed', fmtNum(s.results.failedPerSec), s.results.failedPerSec);
  setKpi('kpi-total-success', fmtInt(s.results.totalSuccess), s.results.totalSuccess);
  setKpi('kpi-total-failed', fmtInt(s.results.totalFailed), s.results.totalFailed);
  const ratio = s.results.successRatio;
  setKpi('kpi-ratio', ratio === null ? '—' : `${fmtNum(ratio * 100)}%`, ratio);
  setKpi('kpi-ratio-sub', `over the last ${s.windowSeconds} s`);
  setKpi('kpi-p95', fmtMs(s.latency.p95), s.latency.p95);
  setKpi('kpi-latency-sub', `p50 ${fmtMs(s.latency.p50)} · p99 ${fmtMs(s.latency.p99)}`);
  const queue = s.queue;
  setKpi('kpi-backlog', queue ? fmtInt(queue.backlog) : '—', queue?.backlog);
  setKpi(
    'kpi-backlog-sub',
    queue
      ? `${fmtInt(queue.waiting)} waiting · ${fmtInt(queue.inProgress)} in progress`
      : 'queue not reachable',
  );
  setKpi('kpi-consumers', queue ? fmtInt(queue.consumers) : '—', queue?.consumers);
  setKpi(
    'kpi-consumers-sub',
    queue?.redelivered !== undefined ? `${fmtInt(queue.redelivered)} redelivered` : 'worker instances',
  );
  setKpi('kpi-dead', queue ? fmtInt(queue.deadLetters) : '—', queue?.deadLetters);
  byId('kpi-dead').parentElement.dataset.kind = queue?.deadLetters ? 'bad' : '';
  byId('kpi-backlog').parentElement.dataset.kind = queue && queue.backlog > 0 ? 'warn' : '';

  const totals = byId('outcome-totals');
  totals.replaceChildren(
    ...OUTCOMES.map(([key, label, color]) =>
      h(
        'li',
        { dataset: { outcome: key } },
        h('span', { class: 'cell', style: { background: color } }),
        `${label}: `,
        h('strong', { id: `total-${key}` }, fmtInt(s.submits.total?.[key] ?? 0)),
      ),
    ),
  );
}

function renderDeps(deps) {
  for (const [key, name] of Object.entries(DEPS)) {
    const li = document.querySelector(`#deps [data-dep="${key}"]`);
    const up = deps?.[key];
    li.querySelector('.dot').dataset.state = up ? 'up' : 'down';
    const pill = li.querySelector('.pill');
    pill.textContent = up ? 'Connected' : 'Down';
    pill.dataset.kind = up ? 'ok' : 'bad';
    li.setAttribute('aria-label', `${name}: ${up ? 'connected' : 'down'}`);
  }
}

function alertItem(alert) {
  const resolved = Boolean(alert.resolvedAt);
  const when = resolved
    ? `raised ${clock(new Date(alert.raisedAt))}, resolved ${clock(new Date(alert.resolvedAt))}`
    : `since ${clock(new Date(alert.raisedAt))}`;
  return h(
    'li',
    { class: 'alert', dataset: { severity: alert.severity, resolved: String(resolved), rule: alert.rule } },
    h('span', { class: 'sev' }, resolved ? 'resolved' : alert.severity),
    h('span', null, alert.message),
    h('time', { datetime: alert.raisedAt }, when),
  );
}

function renderActiveAlerts(alerts) {
  const list = byId('active-alerts');
  if (!alerts?.length) {
    list.replaceChildren(h('li', { class: 'all-clear' }, 'No active alerts: all is well.'));
    return;
  }
  const order = { critical: 0, warning: 1 };
  list.replaceChildren(
    ...[...alerts].sort((a, b) => (order[a.severity] ?? 2) - (order[b.severity] ?? 2)).map(alertItem),
  );
}

async function loadRecentAlerts() {
  try {
    const { active, recent } = await monitorApi('/api/monitor/alerts');
    const seen = new Set();
    const all = [...active, ...recent]
      .filter((a) => !seen.has(a.id) && seen.add(a.id))
      .sort((a, b) => Date.parse(b.resolvedAt ?? b.raisedAt) - Date.parse(a.resolvedAt ?? a.raisedAt))
      .slice(0, 12);
    const list = byId('recent-alerts');
    if (all.length === 0) list.replaceChildren(h('li', { class: 'empty' }, 'No alerts so far.'));
    else list.replaceChildren(...all.map(alertItem));
  } catch {
    // The stream's banner already tells when the monitor is unreachable.
  }
}

function scheduleRecentAlerts() {
  clearTimeout(state.alertsTimer);
  state.alertsTimer = setTimeout(loadRecentAlerts, 300);
}

function renderNodes(nodes) {
  const body = byId('nodes-body');
  if (!nodes.length) {
    body.replaceChildren(h('tr', null, h('td', { colspan: 6, class: 'empty' }, 'No nodes reported.')));
    return;
  }
  body.replaceChildren(
    ...[...nodes]
      .sort((a, b) => a.nodeID.localeCompare(b.nodeID))
      .map((n) =>
        h(
          'tr',
          { dataset: { node: n.nodeID } },
          h('td', null, h('code', null, n.nodeID)),
          h('td', { class: 'wrap' }, n.services.join(', ') || '—'),
          h('td', { class: 'num' }, `${fmtNum(n.rssMb)} MB`),
          h('td', { class: 'num' }, `${fmtNum(n.heapUsedMb)} MB`),
          h('td', { class: 'num' }, `${fmtNum(n.cpuPercent)}%`),
          h('td', { class: 'num' }, fmtDuration(n.uptimeSeconds)),
        ),
      ),
  );
}

function onSnapshot(snapshot) {
  if (!snapshot?.at || snapshot.at === state.lastAt) return;
  state.lastAt = snapshot.at;
  const newest = Date.parse(snapshot.at);
  state.history.push(snapshot);
  while (state.history.length && Date.parse(state.history[0].at) < newest - WINDOW_MS) state.history.shift();
  renderKpis(snapshot);
  renderDeps(snapshot.dependencies);
  renderActiveAlerts(snapshot.alerts);
  renderNodes(snapshot.nodes ?? []);
  drawCharts();
  byId('conn-text').textContent =
    `${state.es?.readyState === 1 ? 'Live' : 'Polling'} · ${clock(new Date(snapshot.at))}`;
  showNotice(byId('monitor-message'), null);
}

function onAlert(alert) {
  if (alert.resolvedAt) toast(`Resolved: ${alert.message}`, 'ok');
  else toast(`${alert.severity === 'critical' ? 'Critical' : 'Warning'}: ${alert.message}`, 'error', 8000);
  scheduleRecentAlerts();
}

// ---------- Connection: SSE, with snapshot polling while the stream is unavailable ----------

function setConn(kind, text) {
  byId('conn-dot').dataset.state = kind === 'live' ? 'live' : kind === 'down' ? 'down' : '';
  byId('conn-text').textContent = text;
}

async function pollOnce() {
  try {
    onSnapshot(await monitorApi('/api/monitor/snapshot'));
  } catch (err) {
    if (err?.code === 4001) return askForToken();
    setConn('down', 'No data');
    showNotice(
      byId('monitor-message'),
      'error',
      `The monitoring service is not answering. ${err?.human ?? humanError(5030)}`,
      err?.code,
    );
  }
}

function startPolling() {
  if (state.pollTimer) return;
  pollOnce();
  state.pollTimer = setInterval(() => {
    if (!document.hidden) pollOnce();
  }, POLL_MS);
}

function stopPolling() {
  clearInterval(state.pollTimer);
  state.pollTimer = 0;
}

/** The service keeps its monitoring data behind METRICS_TOKEN: show the token form. */
function askForToken() {
  stopPolling();
  clearTimeout(state.reconnectTimer);
  const refused = metricsToken() !== '';
  sessionStorage.removeItem(TOKEN_KEY);
  setConn('down', 'Token needed');
  byId('metrics-token-form').hidden = false;
  showNotice(
    byId('monitor-message'),
    'error',
    refused
      ? 'That metrics token was refused. Check it and try again.'
      : 'The monitoring data needs the metrics token (or the admin token). Enter it below.',
    4001,
  );
}

function useToken(event) {
  event.preventDefault();
  const input = byId('metrics-token');
  const token = input.value.trim();
  if (!token) return input.focus();
  sessionStorage.setItem(TOKEN_KEY, token);
  input.value = '';
  byId('metrics-token-form').hidden = true;
  showNotice(byId('monitor-message'), 'info', '');
  connect();
  loadRecentAlerts();
}

function connect() {
  clearTimeout(state.reconnectTimer);
  state.es?.close();
  if (metricsToken()) {
    // An EventSource cannot send the token: with one, the snapshots are polled.
    setConn('', 'Polling');
    startPolling();
    return;
  }
  const es = new EventSource('/api/monitor/stream');
  state.es = es;
  es.addEventListener('open', () => {
    stopPolling();
    setConn('live', 'Live');
    loadRecentAlerts();
  });
  es.addEventListener('snapshot', (event) => {
    try {
      onSnapshot(JSON.parse(event.data));
    } catch {
      // A malformed event is skipped; the next one arrives within a second.
    }
  });
  es.addEventListener('alert', (event) => {
    try {
      onAlert(JSON.parse(event.data));
    } catch {
      // Skipped as above.
    }
  });
  es.addEventListener('error', () => {
    if (es.readyState === EventSource.CLOSED) {
      // Refused (e.g. the monitor is not running): poll snapshots, and try the stream again later.
      setConn('', 'Polling');
      startPolling();
      state.reconnectTimer = setTimeout(connect, RECONNECT_MS);
    } else {
      setConn('', 'Reconnecting…');
    }
  });
}

function init() {
  renderActiveAlerts([]);
  if (!setupCharts()) {
    showNotice(
      byId('monitor-message'),
      'warn',
      'The chart library did not load: figures are shown without charts.',
    );
  }
  byId('metrics-token-form').addEventListener('submit', useToken);
  connect();
  loadRecentAlerts();
}

init();
