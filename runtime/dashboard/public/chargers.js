// Chargers: what the OCPP central system (adapters/ocpp) knows, from its REST API
// (GET /api/charging/chargers, /plan, /sessions) and its datapoints (ev.<charger>.<connector>.
// <quantity>, meta { charger, connector }): connectors with status, power, currents and limits
// updated live; per connector the charge mode (off / now / min+PV / PV, the `mode` actuator),
// start and stop, and what load management gives it and why (the live plan); a power plot per
// charger; the session history with energy and cost, and a chart of each session.
import { get, post } from './api.js';
import { h, formatValue, formatTime, flash } from './dom.js';
import { onValue } from './live.js';
import * as charts from './chart.js';
import { card, kv, optionalJson, numberSetpoint, table, setText, canWrite } from './widgets.js';

const PLOT_SPAN_MS = 6 * 3600e3;
const MODES = [
  ['off', 'Off', 'Paused: 0 A, the car stays plugged in'],
  ['now', 'Now', 'As much as load management allows'],
  ['minpv', 'Min+PV', 'The minimum 6 A, more when there is PV surplus'],
  ['pv', 'PV', 'PV surplus only; paused when it stays below the minimum'],
];

/** Datapoints of one charger, by connector and quantity (the id's last segment). */
function indexDatapoints(items, identity) {
  const byConnector = new Map();
  let online;
  for (const dp of items) {
    if (dp.meta?.charger !== identity) continue;
    const quantity = dp.id.slice(dp.id.lastIndexOf('.') + 1);
    if (typeof dp.meta.connector !== 'number') {
      if (quantity === 'online') online = dp;
      continue;
    }
    if (!byConnector.has(dp.meta.connector)) byConnector.set(dp.meta.connector, new Map());
    byConnector.get(dp.meta.connector).set(quantity, dp);
  }
  return { byConnector, online };
}

const kw = (w) => (w === null || w === undefined ? '—' : formatValue(w / 1000, 'kW'));
const amps = (a) => (a === null || a === undefined ? '—' : formatValue(a, 'A'));
const idSafe = (s) => s.replace(/[^A-Za-z0-9_-]/g, '_');
/** A cost as the sessions table shows it: two decimals and the tariff's currency. */
export const formatCost = (s) => (typeof s.cost === 'number' ? `${s.cost.toFixed(2)} ${s.currency}` : '—');
const surplusText = (plan) => {
  const s = plan?.surplus;
  if (!s) return '—';
  return s.kind === 'measured' ? `${formatValue(s.watts / 1000, 'kW')} for min+PV / PV` : `not measured: ${s.reason}`;
};

export async function chargers(main, _arg, { track, me }) {
  main.append(h('h1', {}, 'Chargers'));
  const [adapters, dps, list] = await Promise.all([get('/api/adapters'), get('/api/datapoints'), optionalJson('/api/charging/chargers')]);
  const ocpp = adapters.items.filter((a) => a.type === 'ocpp');
  if (!ocpp.length || !list) {
    main.append(
      card('No charging on this gateway', h('p', { class: 'muted' }, 'Add an ocpp adapter: chargers connect to ws://<gateway>/ocpp/<charge point id>.')),
    );
    return;
  }
  const planned = await optionalJson('/api/charging/plan');

  // One listener for the page: datapoint id → updaters.
  const updaters = new Map();
  const watch = (dp, fn) => {
    if (!dp) return;
    if (!updaters.has(dp.id)) updaters.set(dp.id, []);
    updaters.get(dp.id).push(fn);
  };
  track(
    onValue((id, msg) => {
      for (const fn of updaters.get(id) ?? []) fn(msg);
    }),
  );
  // The plan, live from `<prefix>.site.charging_plan` (every plan round): the Load management
  // card and each connector's "what it gets and why" follow it.
  const planListeners = [];
  const onPlan = (fn) => {
    planListeners.push(fn);
    fn(planned?.plan);
  };
  // Each ocpp instance's id prefix (`ev` of ev.<charger>.<connector>.<quantity>): its plan and
  // completed-sessions datapoints are watched by id, as they are registered only once used.
  const ocppIds = new Set(ocpp.map((a) => a.id));
  const prefixes = new Set(
    dps.items.filter((d) => ocppIds.has(d.adapter) && typeof d.meta?.connector === 'number').map((d) => d.id.split('.').slice(0, -3).join('.')),
  );
  for (const p of prefixes)
    watch({ id: `${p}.site.charging_plan` }, (msg) => {
      for (const fn of planListeners) fn(msg.v);
    });

  const lmRows = planned?.plan ? loadManagementRows(onPlan, planned.meterState) : undefined;
  main.append(
    h(
      'div',
      { class: 'grid' },
      card(
        'Central system',
        kv([
          ['adapter', ocpp.map((a) => a.id).join(', ')],
          ['state', h('span', { class: `state state-${ocpp[0].state}` }, ocpp[0].state)],
          ['chargers', `${list.chargers.filter((c) => c.online).length} online of ${list.chargers.length}`],
          ['remote start tag', list.remoteStartIdTag ?? 'none (remoteStartIdTag not configured: Start is off)'],
        ]),
      ),
      lmRows ? card('Load management', kv(lmRows)) : '',
    ),
  );
  if (!list.chargers.length) main.append(h('p', { class: 'muted' }, 'No charger has connected yet.'));

  const refreshers = [];
  const ctx = { watch, track, me, onPlan, managed: Boolean(planned?.plan), remoteStartIdTag: list.remoteStartIdTag, refreshers };
  for (const c of list.chargers) main.append(chargerCard(c, dps.items, ctx));
  // Sessions start and stop as statuses change: the Start/Stop buttons need the open session.
  let refreshing;
  const refreshChargers = () => {
    refreshing ??= setTimeout(async () => {
      refreshing = undefined;
      const fresh = await optionalJson('/api/charging/chargers');
      for (const c of fresh?.chargers ?? []) for (const fn of refreshers) fn(c);
    }, 300);
  };
  track(() => clearTimeout(refreshing));
  for (const dp of dps.items) if (ocppIds.has(dp.adapter) && dp.id.endsWith('.status')) watch(dp, refreshChargers);

  main.append(await sessionsSection({ track, watch, completed: [...prefixes].map((p) => ({ id: `${p}.sessions.completed` })) }));
}

/** Rows of the Load management card, kept up to date by the live plan. */
function loadManagementRows(onPlan, meterState) {
  const cells = { meter: h('span'), available: h('span'), allocated: h('span'), surplus: h('span', { id: 'pv-surplus' }), reason: h('span') };
  onPlan((plan) => {
    if (!plan) return;
    setText(cells.meter, plan.meterState === 'stale' ? 'stale: fallback limit' : (plan.meterState ?? meterState));
    setText(cells.available, plan.availableA.map((a) => a.toFixed(1)).join(' / ') + ' A');
    setText(cells.allocated, plan.allocatedA.map((a) => a.toFixed(1)).join(' / ') + ' A');
    setText(cells.surplus, surplusText(plan));
    setText(cells.reason, plan.reason);
  });
  return [
    ['meter', cells.meter],
    ['available', cells.available],
    ['allocated', cells.allocated],
    ['PV surplus', cells.surplus],
    ['reason', cells.reason],
  ];
}

function chargerCard(c, items, ctx) {
  const { watch, track, me } = ctx;
  const { byConnector, online: onlineDp } = indexDatapoints(items, c.id);
  const onlineEl = h('span', { class: `state state-${c.online ? 'running' : 'error'}` }, c.online ? 'online' : 'offline');
  watch(onlineDp, (msg) => {
    setText(onlineEl, msg.v ? 'online' : 'offline');
    onlineEl.className = `state state-${msg.v ? 'running' : 'error'}`;
  });
  const lastSeen = h('span', { class: 'time' }, formatTime(c.lastSeen));
  const model = c.boot ? [c.boot.chargePointVendor, c.boot.chargePointModel].filter(Boolean).join(' ') : '—';

  // Connector 0 is the charge point as a whole (OCPP 1.6 §3.3): listed only if it is all there is.
  const connectors = c.connectors.filter((k) => k.id > 0).length ? c.connectors.filter((k) => k.id > 0) : c.connectors;
  const rows = connectors.map((k) => {
    const dpOf = (q) => byConnector.get(k.id)?.get(q);
    const session = c.sessions.find((s) => s.connectorId === k.id);
    const cells = {
      status: h('td', { class: 'status' }, h('span', { class: `cstatus cstatus-${k.status ?? 'unknown'}` }, k.status ?? '—')),
      power: h('td', { class: 'num' }, kw(k.powerW)),
      currents: h(
        'td',
        { class: 'num' },
        k.currentsA.some((a) => a !== null && a !== undefined)
          ? k.currentsA.map((a) => (a === null || a === undefined ? '–' : a.toFixed(1))).join(' / ') + ' A'
          : '—',
      ),
      energy: h('td', { class: 'num' }, k.energyWh === undefined ? '—' : formatValue(k.energyWh / 1000, 'kWh')),
      limit: h('td', { class: 'num' }, k.currentLimitA === undefined ? 'none' : amps(k.currentLimitA)),
      allocated: h('td', { class: 'num' }, amps(dpOf('allocated_current')?.latest?.v)),
      session: h('td', { class: 'num' }, session ? `#${session.id} · ${formatValue(session.energyKwh, 'kWh')}` : '—'),
    };
    const set = (cell, text) => {
      if (setText(cell, text)) flash(cell);
    };
    watch(dpOf('status'), (msg) => {
      const span = cells.status.firstChild;
      setText(span, msg.v ?? '—');
      span.className = `cstatus cstatus-${msg.v ?? 'unknown'}`;
      flash(cells.status);
    });
    watch(dpOf('power'), (msg) => set(cells.power, kw(msg.v)));
    watch(dpOf('energy'), (msg) => set(cells.energy, formatValue(msg.v, dpOf('energy').unit)));
    watch(dpOf('current_limit'), (msg) => set(cells.limit, amps(msg.v)));
    watch(dpOf('allocated_current'), (msg) => set(cells.allocated, amps(msg.v)));
    watch(dpOf('session_energy'), (msg) => {
      if (session) set(cells.session, `#${session.id} · ${formatValue(msg.v, 'kWh')}`);
    });
    const latestCurrents = [...k.currentsA];
    ['current_l1', 'current_l2', 'current_l3'].forEach((q, i) => {
      watch(dpOf(q), (msg) => {
        latestCurrents[i] = msg.v;
        set(cells.currents, latestCurrents.map((a) => (a === null || a === undefined ? '–' : Number(a).toFixed(1))).join(' / ') + ' A');
      });
    });
    return h(
      'tr',
      { dataset: { connector: String(k.id) } },
      h('th', { scope: 'row' }, String(k.id)),
      cells.status,
      cells.power,
      cells.currents,
      cells.energy,
      cells.limit,
      cells.allocated,
      cells.session,
    );
  });
  const head = ['Connector', 'Status', 'Power', 'Current L1 / L2 / L3', 'Energy register', 'Limit', 'Allocated', 'Session'];
  const connTable = h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'connectors' },
      h('caption', {}, `Connectors of ${c.id}`),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          head.map((l, i) => h('th', { scope: 'col', class: i >= 2 ? 'num' : undefined }, l)),
        ),
      ),
      h('tbody', {}, rows),
    ),
  );

  // Per connector: charge mode, start / stop, what load management gives it and why.
  const controls = connectors.filter((k) => k.id > 0).map((k) => connectorControl(c, k, byConnector.get(k.id), ctx));

  // Limits: the connector's current_limit actuator (cap per phase → charging profile).
  const limits = connectors
    .map((k) => ({ k, dp: byConnector.get(k.id)?.get('current_limit') }))
    .filter((x) => x.dp)
    .map(({ k, dp }) =>
      numberSetpoint(dp, {
        me,
        key: idSafe(`${c.id}-${k.id}-limit`),
        label: `Current limit, connector ${k.id} (A)`,
        current: k.currentLimitA ?? dp.latest?.v,
      }),
    );

  // Power plot of one connector (selectable), last 6 h, new readings appended live.
  const powered = connectors.filter((k) => byConnector.get(k.id)?.get('power'));
  const plotBox = h('div', { class: 'chart', role: 'img', 'aria-label': `Power of ${c.id}, last 6 hours` });
  const plotKey = idSafe(`plot-${c.id}`);
  const pick =
    powered.length > 1
      ? h(
          'select',
          { id: plotKey },
          powered.map((k) => h('option', { value: String(k.id) }, `Connector ${k.id}`)),
        )
      : undefined;
  let chart;
  let plotted;
  track(() => chart?.destroy());
  const plot = async () => {
    const k = pick ? Number(pick.value) : powered[0]?.id;
    const dp = byConnector.get(k)?.get('power');
    if (!dp) {
      plotBox.replaceChildren(h('p', { class: 'muted' }, 'No power readings from this charger.'));
      return;
    }
    const to = Date.now();
    // Newest first, so more than 10,000 readings in the span cut its oldest part, never now.
    const r = await get(`/api/datapoints/${encodeURIComponent(dp.id)}/values?from=${to - PLOT_SPAN_MS}&to=${to}&limit=10000&order=desc`);
    chart?.destroy();
    plotted = dp.id;
    chart = charts.lineChart(plotBox, { label: dp.id, unit: dp.unit, points: r.values.reverse(), range: { from: to - PLOT_SPAN_MS, to } });
  };
  pick?.addEventListener('change', () => plot());
  for (const k of powered) {
    const dp = byConnector.get(k.id).get('power');
    watch(dp, (msg) => {
      if (plotted === dp.id) chart?.push(msg.t, msg.v);
    });
  }
  plot().catch((err) => plotBox.replaceChildren(h('p', { class: 'error' }, `power history unavailable: ${err.message}`)));

  return h(
    'section',
    { class: 'card charger', 'aria-labelledby': `${plotKey}-title`, dataset: { charger: c.id } },
    h('h2', { id: `${plotKey}-title` }, c.id, ' ', onlineEl),
    kv([
      ['model', model || '—'],
      ['firmware', c.boot?.firmwareVersion ?? '—'],
      ['profile', c.profile],
      ['last seen', lastSeen],
      ...(c.configured ? [] : [['note', 'not in the configuration (auto-accepted)']]),
    ]),
    connTable,
    controls.length ? h('div', { class: 'connector-controls' }, controls) : '',
    limits.length ? h('div', { class: 'limits' }, h('h3', {}, 'Limits'), ...limits) : '',
    h('h3', {}, 'Power, last 6 hours'),
    pick ? h('div', { class: 'toolbar' }, h('label', { for: plotKey }, 'Connector'), pick) : '',
    plotBox,
  );
}

/** One connector's controls: mode (segmented buttons), Start / Stop with the charger's answer, the plan's share and reason. */
function connectorControl(c, k, dps, { watch, me, onPlan, managed, remoteStartIdTag, refreshers }) {
  const key = `${c.id}/${k.id}`;
  const write = canWrite(me);
  const modeDp = dps?.get('mode');
  const msgId = idSafe(`ctl-${key}-msg`);
  const msg = h('p', { class: 'form-msg', id: msgId, role: 'status', 'aria-live': 'polite' }, write ? '' : 'Your role (viewer) cannot control chargers.');
  const answer = (text, good) => {
    msg.textContent = text;
    msg.className = `form-msg ${good ? 'good' : 'bad'}`;
  };

  let mode = k.mode ?? modeDp?.latest?.v;
  const buttons = MODES.map(([value, label, help]) =>
    h('button', { type: 'button', class: 'mode-btn', dataset: { mode: value }, title: help, 'aria-describedby': msgId, disabled: !write || !modeDp }, label),
  );
  const showMode = (v) => {
    mode = v;
    for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.mode === v));
  };
  showMode(mode);
  watch(modeDp, (m) => showMode(m.v));
  for (const b of buttons) {
    b.addEventListener('click', async () => {
      try {
        const r = await post(`/api/datapoints/${encodeURIComponent(modeDp.id)}/setpoint`, { v: b.dataset.mode });
        showMode(r.v);
        answer(`Mode: ${MODES.find((m) => m[0] === r.v)?.[1] ?? r.v}`, true);
      } catch (err) {
        answer(`Refused: ${err.message}`, false);
      }
    });
  }

  // Start sends the configured remoteStartIdTag (the gateway adds it); Stop the open session's id.
  let session = c.sessions.find((s) => s.connectorId === k.id);
  const start = h('button', { type: 'button', class: 'secondary' }, 'Start');
  const stop = h('button', { type: 'button', class: 'danger' }, 'Stop');
  const showSession = () => {
    start.disabled = !write || !remoteStartIdTag || Boolean(session);
    stop.disabled = !write || !session;
  };
  showSession();
  refreshers.push((fresh) => {
    if (fresh.id !== c.id) return;
    session = fresh.sessions.find((s) => s.connectorId === k.id);
    showSession();
  });
  const command = async (action, body, label) => {
    try {
      const r = await post(`/api/charging/chargers/${encodeURIComponent(c.id)}/${action}`, body);
      const status = r.result?.status ?? 'done';
      answer(`${label}: ${status}`, status === 'Accepted');
    } catch (err) {
      answer(`${label}: ${err.message}`, false);
    }
  };
  start.addEventListener('click', () => command('remote-start', { connectorId: k.id }, 'Start'));
  stop.addEventListener('click', () => command('remote-stop', { transactionId: session?.id }, 'Stop'));

  const share = h('span', { class: 'lm-share' }, '—');
  const why = h('span', { class: 'lm-reason' });
  onPlan((plan) => {
    if (!plan) return;
    const a = plan.allocations.find((x) => x.key === key);
    setText(share, a ? `${formatValue(a.limitA, 'A')}${a.paused ? ' (paused)' : ''}` : 'no session');
    setText(why, a ? `— ${a.reason}` : '');
  });

  return h(
    'div',
    { class: 'connector-control', dataset: { connector: String(k.id) } },
    h('h3', {}, `Connector ${k.id}`),
    h('div', { class: 'modes', role: 'group', 'aria-label': `Charge mode, connector ${k.id}` }, buttons),
    h('div', { class: 'start-stop' }, start, stop),
    msg,
    managed
      ? h('p', { class: 'lm' }, h('span', { class: 'muted' }, 'Load management: '), share, ' ', why)
      : h(
          'p',
          { class: 'lm muted' },
          'No load management: a mode is a fixed limit (off 0 A, min+PV 6 A, PV 0 A as no surplus is measured, now the limits below).',
        ),
  );
}

/** Session history (newest first, last 30 days) with energy and cost; a click opens the session's chart. */
async function sessionsSection({ track, watch, completed }) {
  const wrap = h('div');
  const detail = h('section', { class: 'card session-detail', id: 'session-detail', 'aria-live': 'polite', hidden: true });
  let detailChart;
  track(() => detailChart?.destroy());

  const open = async (id) => {
    detail.hidden = false;
    detail.replaceChildren(h('h2', {}, `Session #${id}`), h('p', { class: 'muted' }, 'Loading…'));
    const { session: s, series } = await get(`/api/charging/sessions/${id}`);
    const box = h('div', { class: 'chart session-chart', role: 'img', 'aria-label': `Power and energy of session ${id}` });
    detail.replaceChildren(
      h('h2', {}, `Session #${s.id} · ${s.charger} #${s.connectorId}`),
      kv([
        ['start', formatTime(s.start)],
        ['stop', s.stop ? formatTime(s.stop) : 'charging'],
        ['energy', formatValue(s.energyKwh, 'kWh')],
        [
          'cost',
          typeof s.cost === 'number'
            ? `${formatCost(s)} (${s.costBasis === 'samples' ? 'priced per meter-value interval' : 'at the start hour'})`
            : (s.costNote ?? '—'),
        ],
        ['tag', s.idTag],
      ]),
      box,
    );
    detailChart?.destroy();
    const range = { from: s.start, to: s.stop ?? Date.now() };
    const power = series.power.map((p) => ({ t: p.t, v: p.v / 1000 }));
    if (!power.length && !series.energyKwh.length) {
      box.replaceChildren(h('p', { class: 'muted' }, 'No meter values in this session.'));
      return;
    }
    detailChart = charts.overlayChart
      ? charts.overlayChart(box, {
          range,
          height: 240,
          series: [
            { label: 'Power', unit: 'kW', colour: charts.SERIES_COLOURS?.[0] ?? '#1f6feb', axis: 'left', points: power },
            { label: 'Energy', unit: 'kWh', colour: charts.SERIES_COLOURS?.[1] ?? '#d55e00', axis: 'right', points: series.energyKwh },
          ],
        })
      : charts.lineChart(box, { label: 'Power', unit: 'kW', points: power, range, height: 240 });
    detail.scrollIntoView({ block: 'nearest' });
  };

  const render = async () => {
    // The store answers in start order; show the newest first.
    const recent = await get(`/api/charging/sessions?from=${Date.now() - 30 * 86400e3}&limit=1000`);
    const sessions = recent.sessions.slice(-20).reverse();
    wrap.replaceChildren(
      table(
        sessions,
        [
          {
            label: 'Session',
            cell: (s) =>
              h('button', { type: 'button', class: 'link', 'aria-label': `Show session ${s.id}`, onclick: () => open(s.id).catch(showError) }, `#${s.id}`),
          },
          { label: 'Charger', cell: (s) => `${s.charger} #${s.connectorId}` },
          { label: 'Tag', cell: (s) => s.idTag },
          { label: 'Start', cell: (s) => formatTime(s.start), class: 'time' },
          { label: 'Stop', cell: (s) => (s.stop ? formatTime(s.stop) : h('span', { class: 'state state-running' }, 'charging')), class: 'time' },
          { label: 'Energy', cell: (s) => formatValue(s.energyKwh, 'kWh'), class: 'num energy' },
          {
            label: 'Cost',
            cell: (s) => h('span', { title: s.costNote ?? (s.costBasis === 'start-hour' ? 'priced at the start hour' : '') }, formatCost(s)),
            class: 'num cost',
          },
          { label: 'Reason', cell: (s) => s.stopReason ?? (s.authorization !== 'Accepted' ? s.authorization : '') },
        ],
        { caption: 'Last 30 days, newest first; cost with the site tariff', id: 'sessions', empty: 'No sessions in the last 30 days.' },
      ),
    );
    for (const [i, tr] of [...wrap.querySelectorAll('tbody tr')].entries()) tr.dataset.session = String(sessions[i].id);
  };
  const showError = (err) => detail.replaceChildren(h('p', { class: 'error' }, `session unavailable: ${err.message}`));
  await render();
  // A session that ends is published on `<prefix>.sessions.completed`: the table follows.
  for (const dp of completed) watch(dp, () => render().catch(showError));

  return h(
    'div',
    {},
    card('Sessions', wrap, h('p', {}, h('a', { href: '/api/charging/sessions.csv', download: 'charging-sessions.csv' }, 'All sessions as CSV (with cost)'))),
    detail,
  );
}
