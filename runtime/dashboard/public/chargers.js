// Chargers: what the OCPP central system (adapters/ocpp) knows, from its REST API
// (GET /api/charging/chargers, /api/charging/sessions) and its datapoints
// (ev.<charger>.<connector>.<quantity>, meta { charger, connector }): connectors with status,
// power, currents and limits updated live, open and recent sessions, a power plot per
// charger, and the current limit as a setpoint for operators.
import { get } from './api.js';
import { h, formatValue, formatTime, flash } from './dom.js';
import { onValue } from './live.js';
import { lineChart } from './chart.js';
import { card, kv, optionalJson, numberSetpoint, table, setText } from './widgets.js';

const PLOT_SPAN_MS = 6 * 3600e3;

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
  const plan = await optionalJson('/api/charging/plan');
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
        ]),
      ),
      ...(plan?.plan
        ? [
            card(
              'Load management',
              kv([
                ['site limit', `${plan.plan.siteLimitA} A per phase`],
                ['meter', plan.meterState === 'stale' ? 'stale: fallback limit' : plan.meterState],
                ['available', plan.plan.availableA.map((a) => a.toFixed(1)).join(' / ') + ' A'],
                ['allocated', plan.plan.allocatedA.map((a) => a.toFixed(1)).join(' / ') + ' A'],
                ['reason', plan.plan.reason],
              ]),
            ),
          ]
        : []),
    ),
  );
  if (!list.chargers.length) main.append(h('p', { class: 'muted' }, 'No charger has connected yet.'));

  // One listener for the page: datapoint id → cell updaters.
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

  for (const c of list.chargers) main.append(chargerCard(c, dps.items, { watch, track, me }));

  // Recent sessions: the store answers in start order; show the newest first.
  const recent = await get(`/api/charging/sessions?from=${Date.now() - 30 * 86400e3}&limit=1000`);
  const sessions = recent.sessions.slice(-20).reverse();
  main.append(
    card(
      'Recent sessions',
      table(
        sessions,
        [
          { label: 'Session', cell: (s) => String(s.id) },
          { label: 'Charger', cell: (s) => `${s.charger} #${s.connectorId}` },
          { label: 'Tag', cell: (s) => s.idTag },
          { label: 'Start', cell: (s) => formatTime(s.start), class: 'time' },
          { label: 'Stop', cell: (s) => (s.stop ? formatTime(s.stop) : h('span', { class: 'state state-running' }, 'charging')), class: 'time' },
          { label: 'Energy', cell: (s) => formatValue(s.energyKwh, 'kWh'), class: 'num' },
          { label: 'Reason', cell: (s) => s.stopReason ?? (s.authorization !== 'Accepted' ? s.authorization : '') },
        ],
        { caption: 'Last 30 days, newest first', id: 'sessions', empty: 'No sessions in the last 30 days.' },
      ),
      h('p', {}, h('a', { href: '/api/charging/sessions.csv', download: 'charging-sessions.csv' }, 'All sessions as CSV')),
    ),
  );
}

function chargerCard(c, items, { watch, track, me }) {
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
          head.map((l, i) => h('th', { scope: 'col', class: i >= 2 && i !== 1 ? 'num' : undefined }, l)),
        ),
      ),
      h('tbody', {}, rows),
    ),
  );

  // Limits: the connector's current_limit actuator (cap per phase → charging profile).
  const limits = connectors
    .map((k) => ({ k, dp: byConnector.get(k.id)?.get('current_limit') }))
    .filter((x) => x.dp)
    .map(({ k, dp }) =>
      numberSetpoint(dp, {
        me,
        key: `${c.id}-${k.id}-limit`.replace(/[^A-Za-z0-9_-]/g, '_'),
        label: `Current limit, connector ${k.id} (A)`,
        current: k.currentLimitA ?? dp.latest?.v,
      }),
    );

  // Power plot of one connector (selectable), last 6 h, new readings appended live.
  const powered = connectors.filter((k) => byConnector.get(k.id)?.get('power'));
  const plotBox = h('div', { class: 'chart', role: 'img', 'aria-label': `Power of ${c.id}, last 6 hours` });
  const plotKey = `plot-${c.id}`.replace(/[^A-Za-z0-9_-]/g, '_');
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
    chart = lineChart(plotBox, { label: dp.id, unit: dp.unit, points: r.values.reverse(), range: { from: to - PLOT_SPAN_MS, to } });
  };
  pick?.addEventListener('change', () => plot());
  for (const k of powered) {
    const dp = byConnector.get(k.id).get('power');
    watch(dp, (msg) => {
      if (plotted === dp.id) chart?.push(msg.t, msg.v);
    });
  }
  const plotting = plot();
  plotting.catch((err) => plotBox.replaceChildren(h('p', { class: 'error' }, `power history unavailable: ${err.message}`)));

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
    limits.length ? h('div', { class: 'limits' }, h('h3', {}, 'Limits'), ...limits) : '',
    h('h3', {}, 'Power, last 6 hours'),
    pick ? h('div', { class: 'toolbar' }, h('label', { for: plotKey }, 'Connector'), pick) : '',
    plotBox,
  );
}
