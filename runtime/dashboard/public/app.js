// Outpost dashboard: a hash-routed single page in plain ES modules (no build, no CDN).
import { api, get, post, setCsrf, ApiError } from './api.js';
import { h, formatValue, formatTime, formatDuration, flash } from './dom.js';
import { startLive, stopLive, onValue, onConnection } from './live.js';
import { lineChart } from './chart.js';
import { card, kv, dpTable as dpTableOf, adapterCards as adapterCardsOf, submitSetpoint } from './widgets.js';
import { consumption } from './consumption.js';
import { chargers } from './chargers.js';
import { links } from './links.js';
import { imports } from './imports.js';
import { audit } from './audit.js';
import { deleteCard } from './delete-datapoint.js';

const root = document.getElementById('root');
let me;
/** Cleanups of the current page (live listeners, charts, timers). */
const cleanups = [];
const onLeave = (fn) => cleanups.push(fn);

const PAGES = [
  ['overview', 'Overview'],
  ['datapoints', 'Datapoints'],
  ['consumption', 'Consumption'],
  ['chargers', 'Chargers'],
  ['links', 'Links'],
  ['imports', 'Imports'],
  ['users', 'Users', 'admin'],
  ['audit', 'Audit', 'admin'],
];

// Several requests may notice at once (and the live connection too): the login screen is drawn once.
window.addEventListener('outpost:logged-out', () => me && showLogin('Your session ended: log in again.'));
window.addEventListener('hashchange', () => route());

async function boot() {
  try {
    me = await get('/api/auth/me');
    setCsrf(me.csrf);
    startLive();
    route();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showLogin();
    else root.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Cannot reach the gateway: ${err.message}`));
  }
}

function showLogin(notice) {
  leave();
  stopLive();
  me = undefined;
  const msg = h('p', { class: 'form-msg', role: 'alert', 'aria-live': 'assertive' }, notice ?? '');
  const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none' });
  const pass = h('input', { id: 'login-pass', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h(
    'form',
    { class: 'login card', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Outpost'),
    h('label', { for: 'login-user' }, 'Username'),
    user,
    h('label', { for: 'login-pass' }, 'Password'),
    pass,
    h('button', { type: 'submit' }, 'Log in'),
    msg,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.textContent = '';
    try {
      me = await post('/api/auth/login', { username: user.value.trim(), password: pass.value });
      setCsrf(me.csrf);
      me = await get('/api/auth/me');
      startLive();
      if (!location.hash || location.hash === '#/login') location.hash = '#/overview';
      route();
    } catch (err) {
      msg.textContent = err.message;
      pass.value = '';
      pass.focus();
    }
  });
  root.replaceChildren(h('main', { id: 'main', class: 'login-wrap' }, form));
  user.focus();
}

function leave() {
  for (const fn of cleanups.splice(0)) {
    try {
      fn();
    } catch (err) {
      console.error('cleanup failed', err);
    }
  }
}

function shell(active) {
  const liveDot = h('span', { class: 'live-dot', role: 'status', 'aria-live': 'polite' }, 'connecting');
  onLeave(
    onConnection((up) => {
      liveDot.textContent = up ? 'live' : 'offline';
      liveDot.classList.toggle('up', up);
    }),
  );
  const nav = h(
    'nav',
    { 'aria-label': 'Main' },
    h(
      'ul',
      {},
      PAGES.filter(([, , role]) => !role || me.role === role).map(([id, label]) =>
        h('li', {}, h('a', { href: `#/${id}`, 'aria-current': id === active ? 'page' : undefined }, label)),
      ),
    ),
  );
  const logout = h('button', { type: 'button', class: 'link' }, 'Log out');
  logout.addEventListener('click', async () => {
    await post('/api/auth/logout').catch(() => undefined);
    showLogin('Logged out.');
  });
  const main = h('main', { id: 'main', tabindex: '-1' });
  root.replaceChildren(
    h(
      'header',
      { class: 'top' },
      h('a', { class: 'brand', href: '#/overview' }, 'Outpost'),
      nav,
      h('div', { class: 'who' }, liveDot, h('span', { class: 'user' }, `${me.username} (${me.role})`), me.kind === 'session' ? logout : ''),
    ),
    main,
  );
  return main;
}

function route() {
  if (!me) return;
  leave();
  const [page, ...rest] = (location.hash.replace(/^#\/?/, '') || 'overview').split('/');
  const arg = rest.map(decodeURIComponent).join('/');
  const needs = PAGES.find(([id]) => id === page)?.[2];
  if (needs && me.role !== needs) {
    location.replace('#/overview');
    return;
  }
  const main = shell(page);
  const pages = { overview, datapoints: arg ? datapoint : datapoints, consumption, chargers, links, imports, users, audit };
  const fn = pages[page] ?? overview;
  document.title = `${(PAGES.find(([id]) => id === page) ?? ['', 'Overview'])[1]} · Outpost`;
  // Pages in their own modules get what they need: the cleanup tracker and the user.
  Promise.resolve(fn(main, arg, { track: onLeave, me })).catch((err) => {
    if (err instanceof ApiError && err.status === 401) return;
    main.append(h('p', { class: 'error', role: 'alert' }, err.message));
  });
}

// ---------- shared pieces ----------

/** Raw readings a chart asks for at most; more in the range and it draws rollups instead. */
const CHART_RAW_LIMIT = 10_000;
/** Raw readings a CSV download holds at most (the API's cap): the newest of the range. */
const CSV_RAW_LIMIT = 100_000;
const INTERVALS = [
  ['1m', 60e3],
  ['15m', 900e3],
  ['1h', 3600e3],
  ['1d', 86400e3],
];

const valuesUrl = (id, query) => `/api/datapoints/${encodeURIComponent(id)}/values?${new URLSearchParams(query)}`;

/** Rollups of a range, or undefined when the gateway does not serve them (a 4xx). */
async function rollups(id, from, to, interval, agg) {
  try {
    const r = await get(valuesUrl(id, { from, to, interval, agg }));
    if (r.interval !== undefined) return { ...r, interval };
  } catch (err) {
    if (!(err instanceof ApiError) || err.status >= 500) throw err;
  }
  return undefined;
}

/**
 * The newest raw readings of a range (at most `limit`), oldest first: asked newest first,
 * so a range holding more than `limit` readings loses its oldest part, never its newest.
 */
async function newestRaw(id, from, to, limit) {
  const r = await get(valuesUrl(id, { from, to, limit, order: 'desc' }));
  return { ...r, values: r.values.reverse() };
}

/**
 * Values of one datapoint for a chart. An aggregation reads the rollups (raw when they are
 * not served). Raw reads the newest readings; when the range holds more than a chart draws,
 * a number datapoint is drawn from 'avg' rollups of the finest interval giving at most
 * ~2,000 points, the still-filling last bucket drawn from its raw readings (`auto` says
 * so), else the newest readings only (`truncated`).
 */
async function loadValues(id, from, to, agg, { numeric = true } = {}) {
  const span = to - from;
  if (agg && agg !== 'raw') {
    const interval = span <= 2 * 3600e3 ? '1m' : span <= 2 * 86400e3 ? '15m' : span <= 14 * 86400e3 ? '1h' : '1d';
    const r = await rollups(id, from, to, interval, agg);
    if (r) return r;
  }
  const raw = await newestRaw(id, from, to, CHART_RAW_LIMIT);
  if (!raw.truncated || !numeric) return raw;
  const [interval] = INTERVALS.find(([, ms]) => span / ms <= 2000) ?? INTERVALS[INTERVALS.length - 1];
  const r = await rollups(id, from, to, interval, 'avg');
  if (!r) return raw;
  // The last bucket is still filling: its raw readings (already read, the newest) end the
  // line, so the chart reaches the newest reading rather than the last bucket's start.
  const lastStart = r.values.length ? r.values[r.values.length - 1].t : from;
  if (!raw.values.length || raw.values[0].t > lastStart) return { ...r, auto: true };
  return { ...r, values: [...r.values.slice(0, -1), ...raw.values.filter((p) => p.t >= lastStart)], auto: true };
}

/** The shared widgets, with this page's cleanup as the default tracker. */
const dpTable = (items, opts = {}) => dpTableOf(items, { track: onLeave, ...opts });
const adapterCards = (statuses) => adapterCardsOf(statuses, { track: onLeave });

// ---------- pages ----------

async function overview(main) {
  main.append(h('h1', {}, 'Overview'));
  // /healthz answers 503 with the reason when storage is read-only (a full disk): that is what to show.
  const healthOf = (e) => (e.status === 503 && e.body?.storage ? e.body : Promise.reject(e));
  const [health, adapters, dps] = await Promise.all([get('/healthz').catch(healthOf), get('/api/adapters'), get('/api/datapoints')]);
  if (health.storage.state !== 'ok') {
    const s = health.storage;
    main.append(
      h(
        'p',
        { class: 'banner-bad', role: 'alert' },
        `Storage is ${s.state}: readings are refused until writes succeed again (${s.error ?? 'unknown error'}). ${s.recovery ?? s.repair ?? ''}`,
      ),
    );
  }
  const power = dps.items.find((d) => /grid\.power$/.test(d.id)) ?? dps.items.find((d) => d.unit === 'W' || d.unit === 'kW');
  const now = h('p', { class: 'big num', 'aria-live': 'off' }, power ? formatValue(power.latest?.v, power.unit) : '—');
  const chartBox = h('div', { class: 'chart', role: 'img', 'aria-label': 'Site power today' });
  const backlog = h('div', {}, h('p', { class: 'muted' }, 'Reading /metrics…'));
  main.append(
    h(
      'div',
      { class: 'grid' },
      card('Site power now', h('p', { class: 'muted' }, power ? power.id : 'no power datapoint'), now),
      card(
        'Gateway health',
        kv([
          ['status', h('span', { class: `state state-${health.status}` }, health.status)],
          ['gateway', health.gateway],
          ['version', health.version],
          ['uptime', formatDuration(health.uptimeSeconds)],
          ['storage', health.storage.state],
        ]),
      ),
      card('Sync backlog', backlog),
    ),
    card("Today's power", chartBox),
    h('h2', {}, 'Adapters'),
    adapterCards(adapters.items),
  );
  if (power) {
    const midnight = new Date();
    midnight.setHours(0, 0, 0, 0);
    const today = { from: midnight.getTime(), to: Date.now() };
    const r = await loadValues(power.id, today.from, today.to, 'avg');
    const chart = lineChart(chartBox, { label: power.id, unit: power.unit, points: r.values, range: today });
    onLeave(() => chart.destroy());
    onLeave(
      onValue((id, msg) => {
        if (id !== power.id) return;
        now.textContent = formatValue(msg.v, power.unit);
        flash(now);
        if (r.interval === undefined) chart.push(msg.t, msg.v);
      }),
    );
  } else chartBox.append(h('p', { class: 'muted' }, 'No power datapoint on this site.'));
  loadBacklog(backlog);
}

/** Upstream backlog in brief (GET /api/sync, the sync service's snapshot); details on Links. */
async function loadBacklog(box) {
  try {
    const s = await get('/api/sync');
    box.replaceChildren(
      s.enabled
        ? kv([
            ['mode', h('span', { class: `state state-${s.mode}` }, s.mode)],
            ['backlog', `${s.backlogRecords.toLocaleString()} records`],
            ['oldest unsent', s.backlogRecords ? formatDuration(s.oldestUnsentAgeSeconds) : '—'],
          ])
        : h('p', { class: 'muted' }, 'Upstream sync is off on this gateway.'),
      h('p', {}, h('a', { href: '#/links' }, 'Links and backlog →')),
    );
  } catch (err) {
    box.replaceChildren(h('p', { class: 'error' }, `sync state unavailable: ${err.message}`));
  }
}

async function datapoints(main) {
  main.append(h('h1', {}, 'Datapoints'));
  const search = h('input', { id: 'dp-search', type: 'search', placeholder: 'id or description', autocomplete: 'off' });
  const count = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const box = h('div');
  main.append(h('div', { class: 'toolbar' }, h('label', { for: 'dp-search' }, 'Search'), search, count), box);
  const { items } = await get('/api/datapoints');
  // Each search draws a new table; the old table's live listener is dropped with it.
  let stopTable = () => undefined;
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const shown = items.filter((d) => !q || d.id.includes(q) || (d.description ?? '').toLowerCase().includes(q));
    stopTable();
    box.replaceChildren(dpTable(shown, { track: (fn) => (stopTable = fn) }));
    count.textContent = `${shown.length} of ${items.length}`;
  };
  search.addEventListener('input', render);
  render();
  onLeave(() => stopTable());
  search.focus();
}

const RANGES = [
  ['1h', 3600e3],
  ['6h', 6 * 3600e3],
  ['24h', 86400e3],
  ['7d', 7 * 86400e3],
  ['30d', 30 * 86400e3],
];

async function datapoint(main, id) {
  const dp = await get(`/api/datapoints/${encodeURIComponent(id)}`);
  main.append(h('p', {}, h('a', { href: '#/datapoints' }, '← All datapoints')), h('h1', {}, dp.id), h('p', { class: 'muted' }, dp.description ?? ''));
  const value = h('span', { class: 'big num', id: 'dp-value' }, formatValue(dp.latest?.v, dp.unit));
  const time = h('span', { class: 'muted time' }, formatTime(dp.latest?.t));
  main.append(
    h(
      'div',
      { class: 'grid' },
      card('Latest value', h('p', {}, value), h('p', {}, time)),
      card(
        'Datapoint',
        kv([
          ['kind', dp.kind],
          ['type', dp.type],
          ['unit', dp.unit ?? '—'],
          ['adapter', dp.adapter],
          ...(dp.min !== undefined ? [['min', String(dp.min)]] : []),
          ...(dp.max !== undefined ? [['max', String(dp.max)]] : []),
          ...(dp.allowed ? [['allowed', dp.allowed.join(', ')]] : []),
        ]),
      ),
    ),
  );

  if (dp.kind === 'actuator') main.append(setpointForm(dp));

  const range = h(
    'select',
    { id: 'range' },
    RANGES.map(([label]) => h('option', { value: label, selected: label === '24h' }, label)),
  );
  const agg = h(
    'select',
    { id: 'agg' },
    ['raw', 'avg', 'min', 'max'].map((a) => h('option', { value: a }, a)),
  );
  const csv = h('button', { type: 'button', id: 'csv' }, 'Download CSV');
  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const chartBox = h('div', { class: 'chart', id: 'chart', role: 'img', 'aria-label': `Chart of ${dp.id}` });
  main.append(
    card(
      'History',
      h('div', { class: 'toolbar' }, h('label', { for: 'range' }, 'Range'), range, h('label', { for: 'agg' }, 'Aggregation'), agg, csv),
      chartBox,
      status,
    ),
  );
  // Deleting it with its data is for admins (DELETE /api/datapoints/<id>).
  if (me.role === 'admin') main.append(deleteCard(dp));

  let chart;
  let data = { values: [] };
  let shown = { from: 0, to: 0 };
  const numeric = dp.type === 'number' || dp.type === 'boolean';
  const load = async () => {
    const to = Date.now();
    const from = to - RANGES.find(([l]) => l === range.value)[1];
    shown = { from, to };
    status.textContent = 'Loading…';
    data = await loadValues(dp.id, from, to, agg.value, { numeric });
    chart?.destroy();
    chart = lineChart(chartBox, { label: dp.id, unit: dp.unit, points: data.values, range: shown });
    const n = data.values.length;
    const what = data.interval ? `× ${data.agg ?? agg.value} of ${data.interval}` : n === 1 ? 'reading' : 'readings';
    const note = data.auto
      ? ` (the range holds more than ${CHART_RAW_LIMIT.toLocaleString()} readings: drawn as averages, the last ${data.interval} as readings, so it reaches now; pick min or max for the extremes)`
      : data.truncated
        ? ` (the newest ${n.toLocaleString()} only, from ${formatTime(data.values[0]?.t)}: pick a shorter range)`
        : '';
    status.textContent = `${n.toLocaleString()} ${what}${note}`;
  };
  range.addEventListener('change', load);
  agg.addEventListener('change', load);
  // CSV: the aggregates when an aggregation is picked; else the raw readings of the range,
  // the newest CSV_RAW_LIMIT of them, and the page says when the range held more.
  csv.addEventListener('click', async () => {
    let rows = data.values;
    let cut = false;
    const interval = data.auto ? undefined : data.interval;
    if (!interval) {
      status.textContent = 'Preparing the CSV…';
      try {
        const raw = await newestRaw(dp.id, shown.from, shown.to, CSV_RAW_LIMIT);
        rows = raw.values;
        cut = raw.truncated;
      } catch (err) {
        status.textContent = `No CSV: ${err.message}`;
        return;
      }
    }
    const lines = ['time_iso,epoch_ms,value' + (interval ? ',count' : '')];
    for (const p of rows) lines.push([new Date(p.t).toISOString(), p.t, JSON.stringify(p.v ?? ''), ...(interval ? [p.count] : [])].join(','));
    const name = cut ? `${dp.id}-newest-${rows.length}.csv` : `${dp.id}.csv`;
    status.textContent = cut
      ? `CSV cut: the newest ${rows.length.toLocaleString()} readings of the range, from ${formatTime(rows[0]?.t)}; the range holds more (pick a shorter range for the rest).`
      : `CSV: ${rows.length.toLocaleString()} ${interval ? `× ${data.agg ?? agg.value} of ${interval}` : 'readings'}, the whole range.`;
    const url = URL.createObjectURL(new Blob([lines.join('\n') + '\n'], { type: 'text/csv' }));
    const a = h('a', { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });
  onLeave(() => chart?.destroy());
  onLeave(
    onValue((vid, msg) => {
      if (vid !== dp.id) return;
      value.textContent = msg.q ? msg.q : formatValue(msg.v, dp.unit);
      time.textContent = formatTime(msg.t);
      flash(value);
      if (!data.interval && chart) chart.push(msg.t, msg.v);
    }),
  );
  await load();
}

function setpointForm(dp) {
  const msg = h('p', { class: 'form-msg', id: 'sp-msg', role: 'status', 'aria-live': 'polite' });
  let input;
  if (dp.type === 'boolean') input = h('select', { id: 'sp-value' }, h('option', { value: 'true' }, 'on'), h('option', { value: 'false' }, 'off'));
  else if (dp.allowed)
    input = h(
      'select',
      { id: 'sp-value' },
      dp.allowed.map((a) => h('option', { value: JSON.stringify(a) }, String(a))),
    );
  else if (dp.type === 'number')
    input = h('input', { id: 'sp-value', type: 'number', step: 'any', inputmode: 'decimal', 'aria-describedby': 'sp-hint sp-msg' });
  else input = h('input', { id: 'sp-value', 'aria-describedby': 'sp-msg' });
  const hint =
    dp.type === 'number' ? h('p', { class: 'muted', id: 'sp-hint' }, `Allowed: ${dp.min ?? '−∞'} … ${dp.max ?? '∞'}${dp.unit ? ' ' + dp.unit : ''}`) : '';
  const canWrite = me.role === 'operator' || me.role === 'admin';
  const button = h('button', { type: 'submit', disabled: !canWrite }, 'Set');
  const form = h(
    'form',
    { class: 'setpoint', novalidate: true },
    h('label', { for: 'sp-value' }, `New value${dp.unit ? ` (${dp.unit})` : ''}`),
    input,
    button,
    hint,
    msg,
  );
  if (!canWrite) msg.textContent = 'Your role (viewer) cannot change setpoints.';
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.className = 'form-msg';
    let v;
    if (dp.type === 'boolean') v = input.value === 'true';
    else if (dp.allowed) v = JSON.parse(input.value);
    else if (dp.type === 'number') {
      if (input.value.trim() === '' || !Number.isFinite(Number(input.value))) {
        msg.textContent = 'Enter a number.';
        msg.classList.add('bad');
        input.setAttribute('aria-invalid', 'true');
        return;
      }
      v = Number(input.value);
    } else v = input.value;
    await submitSetpoint(dp, v, { input, msg });
  });
  return card('Setpoint', form);
}

async function users(main) {
  main.append(h('h1', {}, 'Users'));
  if (me.role !== 'admin') {
    main.append(h('p', { class: 'error' }, 'Only admins manage users.'));
    return;
  }
  const list = h('div');
  const tokenList = h('div');
  const refresh = async () => {
    const [u, tk] = await Promise.all([get('/api/users'), get('/api/tokens')]);
    list.replaceChildren(
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'people', id: 'users' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['User', 'Role', 'Changed', ''].map((c) => h('th', { scope: 'col' }, c)),
            ),
          ),
          h(
            'tbody',
            {},
            u.items.map((user) => {
              const role = h(
                'select',
                { 'aria-label': `Role of ${user.username}` },
                ['viewer', 'operator', 'admin'].map((r) => h('option', { value: r, selected: r === user.role }, r)),
              );
              role.addEventListener('change', () =>
                act(() => api('PATCH', `/api/users/${encodeURIComponent(user.username)}`, { role: role.value }), `${user.username} is now ${role.value}`),
              );
              const del = h('button', { type: 'button', class: 'danger', disabled: user.username === me.username }, 'Remove');
              del.addEventListener(
                'click',
                () =>
                  confirm(`Remove ${user.username}?`) &&
                  act(() => api('DELETE', `/api/users/${encodeURIComponent(user.username)}`), `${user.username} removed`),
              );
              return h(
                'tr',
                {},
                h('th', { scope: 'row' }, user.username),
                h('td', {}, role),
                h('td', { class: 'time' }, formatTime(user.updatedAt)),
                h('td', {}, del),
              );
            }),
          ),
        ),
      ),
    );
    tokenList.replaceChildren(
      tk.items.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'people', id: 'tokens' },
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  ['Token', 'Name', 'Role', 'Created', ''].map((c) => h('th', { scope: 'col' }, c)),
                ),
              ),
              h(
                'tbody',
                {},
                tk.items.map((t) => {
                  const del = h('button', { type: 'button', class: 'danger' }, 'Revoke');
                  del.addEventListener('click', () => act(() => api('DELETE', `/api/tokens/${t.id}`), `token ${t.name} revoked`));
                  return h(
                    'tr',
                    {},
                    h('td', { class: 'mono' }, t.id),
                    h('td', {}, t.name),
                    h('td', {}, t.role),
                    h('td', { class: 'time' }, formatTime(t.createdAt)),
                    h('td', {}, del),
                  );
                }),
              ),
            ),
          )
        : h('p', { class: 'muted' }, 'No API tokens.'),
    );
  };
  const msg = h('p', { class: 'form-msg', role: 'status', 'aria-live': 'polite' });
  const act = async (fn, done) => {
    msg.className = 'form-msg';
    try {
      const r = await fn();
      msg.textContent = typeof done === 'function' ? done(r) : done;
      msg.classList.add('good');
      await refresh();
      return true;
    } catch (err) {
      msg.textContent = err.message;
      msg.classList.add('bad');
      await refresh();
      return false;
    }
  };
  const name = h('input', { id: 'nu-name', autocomplete: 'off', required: true, autocapitalize: 'none' });
  const pw = h('input', { id: 'nu-pass', type: 'password', autocomplete: 'new-password', required: true, minlength: '10' });
  const role = h(
    'select',
    { id: 'nu-role' },
    ['viewer', 'operator', 'admin'].map((r) => h('option', { value: r }, r)),
  );
  const add = h(
    'form',
    { class: 'inline', novalidate: true },
    h('label', { for: 'nu-name' }, 'Username'),
    name,
    h('label', { for: 'nu-pass' }, 'Password'),
    pw,
    h('label', { for: 'nu-role' }, 'Role'),
    role,
    h('button', { type: 'submit' }, 'Add user'),
  );
  add.addEventListener('submit', (e) => {
    e.preventDefault();
    act(() => post('/api/users', { username: name.value.trim(), password: pw.value, role: role.value }), `${name.value} added`).then((ok) => ok && add.reset());
  });
  const tname = h('input', { id: 'nt-name', autocomplete: 'off', required: true });
  const trole = h(
    'select',
    { id: 'nt-role' },
    ['viewer', 'operator', 'admin'].map((r) => h('option', { value: r }, r)),
  );
  const shown = h('output', { class: 'mono secret', id: 'nt-secret' });
  const tform = h(
    'form',
    { class: 'inline' },
    h('label', { for: 'nt-name' }, 'Token name'),
    tname,
    h('label', { for: 'nt-role' }, 'Role'),
    trole,
    h('button', { type: 'submit' }, 'Create token'),
  );
  tform.addEventListener('submit', (e) => {
    e.preventDefault();
    act(
      () => post('/api/tokens', { name: tname.value, role: trole.value }),
      (r) => {
        shown.textContent = r.token;
        return `Token ${r.name} created: copy it now, it is shown only once.`;
      },
    );
  });
  main.append(msg, card('Users', list, add), card('API tokens', tokenList, tform, shown));
  await refresh();
}

boot();
