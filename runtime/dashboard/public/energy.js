// Energy page (issue 24 item 3): import, export, production and consumption per local hour,
// day or month, self-consumption, self-sufficiency and what the energy cost, as Home
// Assistant's energy dashboard and Victron VRM show them. Every figure is the gateway's
// (GET /api/site/energy, runtime/site/energy.ts): this page only draws it, so the screen and
// the REST answer cannot disagree. `#/energy/<day|week|month|year>/<YYYY-MM-DD>` is bookmarkable.
import { get } from './api.js';
import { h } from './dom.js';
import { card, every, setText } from './widgets.js';

const PERIODS = { day: 'Day', week: 'Week', month: 'Month', year: 'Year' };
const BUCKET = { hour: 'Hour', day: 'Day', month: 'Month' };
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element (presentation attributes only: the CSP refuses style attributes). */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== undefined && c !== null) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export function formatKwh(v) {
  if (v === null || v === undefined) return '—';
  const a = Math.abs(v);
  return `${v.toLocaleString(undefined, { maximumFractionDigits: a < 10 ? 2 : a < 1000 ? 1 : 0 })} kWh`;
}

export function formatMoney(v, currency) {
  if (v === null || v === undefined) return '—';
  return v.toLocaleString(undefined, { style: 'currency', currency, minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

export function formatPercent(v) {
  return v === null || v === undefined ? '—' : `${v.toLocaleString(undefined, { maximumFractionDigits: 1 })}\u00a0%`;
}

function scheduleText(schedule, currency) {
  if (schedule === undefined) return 'not set';
  const price = (p) => `${p.toLocaleString(undefined, { style: 'currency', currency, minimumFractionDigits: 2, maximumFractionDigits: 4 })}/kWh`;
  // In the config's order: the first period covering a moment sets its price.
  const parts = schedule.periods.map((p) => `${p.name ? `${p.name} ` : ''}${price(p.price)} ${p.from}–${p.to}${p.days ? ` ${p.days.join(', ')}` : ''}`);
  parts.push(`${price(schedule.default)}${schedule.periods.length ? ' otherwise' : ''}`);
  return parts.join('; ');
}

/** A round step for about `n` grid lines over `span`. */
function niceStep(span, n) {
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((f) => f * mag).find((x) => x >= raw) ?? 10 * mag;
}

/**
 * Stacked bars per bucket: self-consumed PV and import above the axis (what the site used
 * from the sun and from the grid), export below it. Drawn to the box's width.
 */
function drawBars(box, report) {
  const width = Math.max(280, box.clientWidth);
  const height = 260;
  const left = 52;
  const bottom = 24;
  const top = 8;
  const b = report.buckets;
  const pos = (x) => Math.max(0, x ?? 0);
  const up = Math.max(0, ...b.map((x) => pos(x.selfConsumed) + pos(x.import)));
  const down = Math.max(0, ...b.map((x) => pos(x.export)));
  const span = up + down || 1;
  const step = niceStep(span, 4);
  const hi = Math.ceil(up / step) * step || (down ? 0 : step);
  const lo = Math.ceil(down / step) * step;
  const y = (v) => top + ((hi - v) / (hi + lo)) * (height - top - bottom);
  const slot = (width - left - 4) / b.length;
  const barW = Math.max(2, slot * 0.7);
  const ticks = [];
  for (let v = -lo; v <= hi + 1e-9; v += step) ticks.push(v);
  const every = Math.max(1, Math.ceil(30 / slot));
  const svg = s(
    'svg',
    { viewBox: `0 0 ${width} ${height}`, width, height, class: 'energy-svg', 'aria-hidden': 'true' },
    ticks.map((v) =>
      s(
        'g',
        { class: v === 0 ? 'axis zero' : 'axis' },
        s('line', { x1: left, x2: width - 4, y1: y(v), y2: y(v) }),
        s('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, Math.abs(v).toLocaleString(undefined, { maximumFractionDigits: 2 })),
      ),
    ),
    b.map((x, i) => {
      const cx = left + slot * i + (slot - barW) / 2;
      const pv = pos(x.selfConsumed);
      const grid = pos(x.import);
      const out = pos(x.export);
      const rect = (cls, from, to) => (to > from ? s('rect', { class: cls, x: cx, width: barW, y: y(to), height: Math.max(0.5, y(from) - y(to)) }) : undefined);
      return s(
        'g',
        { class: 'bucket' },
        s('title', {}, `${x.name}: self-consumed PV ${formatKwh(x.selfConsumed)}, import ${formatKwh(x.import)}, export ${formatKwh(x.export)}`),
        rect('pv', 0, pv),
        rect('imp', pv, pv + grid),
        out > 0 ? s('rect', { class: 'exp', x: cx, width: barW, y: y(0), height: Math.max(0.5, y(-out) - y(0)) }) : undefined,
        i % every === 0 ? s('text', { class: 'xlabel', x: cx + barW / 2, y: height - 6, 'text-anchor': 'middle' }, x.label) : undefined,
      );
    }),
    s('text', { class: 'unit', x: 4, y: 12 }, 'kWh'),
  );
  box.replaceChildren(svg);
}

function figureCard(id, title) {
  const value = h('p', { class: 'big num', id }, '—');
  const note = h('p', { class: 'muted note', id: `${id}-note` }, '');
  return { el: card(title, value, note), value, note };
}

const COLUMNS = [
  ['import', 'Import'],
  ['export', 'Export'],
  ['production', 'Production'],
  ['selfConsumed', 'Self-consumed'],
  ['consumption', 'Consumption'],
  ['batteryCharge', 'Battery in'],
  ['batteryDischarge', 'Battery out'],
  ['cost', 'Cost'],
  ['earnings', 'Earnings'],
];

export async function energy(main, arg, { track }) {
  const [kindArg, dateArg] = (arg ?? '').split('/');
  const state = { kind: PERIODS[kindArg] ? kindArg : 'day', date: DATE.test(dateArg ?? '') ? dateArg : undefined };
  let report;

  main.append(h('h1', {}, 'Energy'));
  const tabs = Object.entries(PERIODS).map(([k, label]) => {
    const b = h('button', { type: 'button', class: 'secondary', 'aria-pressed': String(k === state.kind), dataset: { period: k } }, label);
    b.addEventListener('click', () => go({ kind: k, date: state.date }));
    return b;
  });
  const prevBtn = h('button', { type: 'button', id: 'energy-prev', 'aria-label': 'Previous period' }, '‹ Previous');
  const nowBtn = h('button', { type: 'button', id: 'energy-now', class: 'secondary' }, 'Now');
  const nextBtn = h('button', { type: 'button', id: 'energy-next', 'aria-label': 'Next period' }, 'Next ›');
  prevBtn.addEventListener('click', () => report && go({ kind: state.kind, date: report.previous }));
  nextBtn.addEventListener('click', () => report && go({ kind: state.kind, date: report.next }));
  nowBtn.addEventListener('click', () => go({ kind: state.kind, date: undefined }));
  const title = h('p', { class: 'period-title', id: 'energy-title', role: 'status', 'aria-live': 'polite' }, '');
  const zone = h('p', { class: 'muted note', id: 'energy-zone' }, '');
  const msg = h('p', { class: 'form-msg', role: 'alert' });

  const cards = {
    import: figureCard('energy-import', 'Import'),
    export: figureCard('energy-export', 'Export'),
    production: figureCard('energy-production', 'Production'),
    consumption: figureCard('energy-consumption', 'Consumption'),
    selfConsumption: figureCard('energy-self-consumption', 'Self-consumption'),
    selfSufficiency: figureCard('energy-self-sufficiency', 'Self-sufficiency'),
    cost: figureCard('energy-cost', 'Cost of import'),
    earnings: figureCard('energy-earnings', 'Earnings of export'),
    netCost: figureCard('energy-net-cost', 'Net cost'),
  };
  const chartBox = h('div', { class: 'energy-chart', id: 'energy-chart' });
  const legend = h(
    'p',
    { class: 'energy-legend muted note' },
    h('span', { class: 'key pv' }, 'Self-consumed PV'),
    h('span', { class: 'key imp' }, 'Import'),
    h('span', { class: 'key exp' }, 'Export (below the axis)'),
  );
  const figure = h('figure', { class: 'energy-figure', role: 'img', 'aria-label': 'Energy per bucket' }, chartBox);
  const head = h('tr');
  const body = h('tbody');
  const foot = h('tfoot');
  const counterList = h('ul', { class: 'energy-counters', id: 'energy-counters' });
  const warnings = h('ul', { class: 'energy-warnings', id: 'energy-warnings' });
  const tariff = h('dl', { class: 'kv', id: 'energy-tariff' });

  main.append(
    h(
      'div',
      { class: 'toolbar' },
      h('span', { class: 'btn-group energy-periods', role: 'group', 'aria-label': 'Period' }, tabs),
      h('span', { class: 'btn-group' }, prevBtn, nowBtn, nextBtn),
    ),
    title,
    zone,
    msg,
    h(
      'div',
      { class: 'grid energy-cards' },
      Object.values(cards).map((c) => c.el),
    ),
    card('Energy per period', legend, figure),
    card('Figures', h('div', { class: 'table-wrap energy-table-wrap' }, h('table', { id: 'energy-table' }, h('thead', {}, head), body, foot))),
    h('div', { class: 'grid' }, card('Tariff', tariff), card('Counters', warnings, counterList)),
  );

  const ro = new ResizeObserver(() => report && drawBars(chartBox, report));
  ro.observe(chartBox);
  track(() => ro.disconnect());

  let generation = 0;
  const load = async () => {
    const gen = ++generation;
    const q = new URLSearchParams({ period: state.kind });
    if (state.date) q.set('at', state.date);
    const r = await get(`/api/site/energy?${q}`);
    if (gen !== generation) return;
    report = r;
    msg.textContent = '';
    render(r);
  };

  const render = (r) => {
    const cur = r.currency;
    for (const b of tabs) b.setAttribute('aria-pressed', String(b.dataset.period === state.kind));
    const ongoing = r.now >= r.start && r.now < r.end;
    nextBtn.disabled = r.now < r.end;
    nowBtn.disabled = ongoing;
    setText(title, `${r.title}${ongoing ? ' (so far)' : ''}`);
    setText(
      zone,
      `Local time of the site: ${r.timezone}. ${r.consumptionFrom === 'counters' ? 'Consumption from its own counters.' : 'Consumption = import + production − export (± battery).'}`,
    );
    const t = r.totals;
    const set = (c, text, note) => {
      setText(c.value, text);
      setText(c.note, note ?? '');
    };
    set(cards.import, formatKwh(t.import), 'from the grid');
    set(cards.export, formatKwh(t.export), 'to the grid');
    set(cards.production, formatKwh(t.production), t.selfConsumed === null ? '' : `${formatKwh(t.selfConsumed)} used on site`);
    set(cards.consumption, formatKwh(t.consumption), r.consumptionFrom === 'balance' ? 'import + production − export' : '');
    set(cards.selfConsumption, formatPercent(t.selfConsumption), 'of production used on site');
    set(cards.selfSufficiency, formatPercent(t.selfSufficiency), 'of consumption not imported');
    set(cards.cost, formatMoney(t.cost, cur), r.tariff.import ? 'import × price of its hour' : 'no import price (site.tariff.import)');
    set(cards.earnings, formatMoney(t.earnings, cur), r.tariff.export ? 'export × feed-in price' : 'no feed-in price (site.tariff.export)');
    set(cards.netCost, formatMoney(t.netCost, cur), 'cost − earnings');

    drawBars(chartBox, r);
    figure.setAttribute(
      'aria-label',
      `Energy per ${r.bucket}, ${r.title}: self-consumed PV and import above the axis, export below; the figures are in the table`,
    );

    // Battery columns only where the site has battery counters.
    const cols = COLUMNS.filter(([k]) =>
      k === 'batteryCharge' || k === 'batteryDischarge' ? r.roles.battery_charge !== 'none' || r.roles.battery_discharge !== 'none' : true,
    );
    const cell = (k, v) => h('td', { class: 'num', dataset: { col: k } }, k === 'cost' || k === 'earnings' ? formatMoney(v, cur) : formatKwh(v));
    head.replaceChildren(h('th', { scope: 'col' }, BUCKET[r.bucket]), ...cols.map(([, label]) => h('th', { scope: 'col', class: 'num' }, label)));
    body.replaceChildren(...r.buckets.map((b) => h('tr', {}, h('th', { scope: 'row' }, b.name), ...cols.map(([k]) => cell(k, b[k])))));
    foot.replaceChildren(h('tr', {}, h('th', { scope: 'row' }, 'Total'), ...cols.map(([k]) => cell(k, t[k]))));

    tariff.replaceChildren(
      h('dt', {}, 'Import'),
      h('dd', {}, scheduleText(r.tariff.import, cur)),
      h('dt', {}, 'Export'),
      h('dd', {}, scheduleText(r.tariff.export, cur)),
      h('dt', {}, 'Currency'),
      h('dd', {}, cur),
    );
    warnings.replaceChildren(...r.warnings.map((w) => h('li', { class: 'warn' }, w)));
    counterList.replaceChildren(
      ...(r.counters.length
        ? r.counters.map((c) =>
            h(
              'li',
              { class: c.used ? 'used' : 'unused', dataset: { id: c.id } },
              h('a', { href: `#/datapoints/${encodeURIComponent(c.id)}`, class: 'mono' }, c.id),
              ' ',
              h('span', { class: 'tag' }, c.role),
              h('span', { class: 'muted note' }, ` ${c.used ? `added up · ${c.readings} readings` : `not added up: ${c.note}`} · ${c.why}`),
            ),
          )
        : [h('li', { class: 'muted' }, 'No energy counters (Wh, kWh or MWh number datapoints). List them in site.energy.')]),
    );
  };

  const go = (next) => {
    state.kind = next.kind;
    state.date = next.date;
    // Back and Forward go through the router (hashchange), which draws the page for that address.
    history.pushState(null, '', `#/energy/${state.kind}${state.date ? `/${state.date}` : ''}`);
    reload();
  };
  const reload = () =>
    load().catch((err) => {
      msg.textContent = `Cannot load the figures: ${err.message}`;
    });

  // The running period changes as readings arrive: read it again once a minute (one request).
  let first = true;
  await every(
    60_000,
    async () => {
      if (!first && report && !(report.now >= report.start && report.now < report.end)) return;
      first = false;
      await reload();
    },
    { track },
  );
}
