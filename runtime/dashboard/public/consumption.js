// Consumption analysis (what MyBuzzn gave its customers): energy per hour / day / month
// from meter counters, the previous period beside it, and the largest consumers.
// Figures come from the rollups: GET /api/datapoints/:id/values?interval=&agg=delta
// (runtime/http/values.ts). Rollup buckets are UTC-aligned, so local hours, days and months are
// summed here from 1 h buckets (15 min where the zone's offset is not whole hours), a year
// too (8,784 hourly intervals at most), so local month edges are exact.
import { get } from './api.js';
import { h } from './dom.js';
import { barChart } from './bars.js';
import { card, every, setText } from './widgets.js';

const KINDS = {
  day: { label: 'Day', noun: 'day', bucket: 'hour' },
  week: { label: 'Week', noun: 'week', bucket: 'day' },
  month: { label: 'Month', noun: 'month', bucket: 'day' },
  year: { label: 'Year', noun: 'year', bucket: 'month' },
};

/**
 * Ranked among the largest consumers: an energy counter that counts what was drawn (import or
 * consumption). The role is the gateway's (`GET /api/site/energy/counters`,
 * runtime/site/energy-roles.ts): `site.energy` lists, then `meta.energy`, then the id's words.
 */
export function isConsumer(c) {
  return c.kwhPerUnit !== null && (c.role === 'import' || c.role === 'consumption');
}

/**
 * The local-time period `shift` periods away from the one containing `ref`:
 * { start, end, bounds (bucket edges, ascending), labels, title }.
 */
export function period(kind, ref, shift) {
  const y = ref.getFullYear();
  const m = ref.getMonth();
  const d = ref.getDate();
  let edges;
  let label;
  let title;
  if (kind === 'day') {
    edges = Array.from({ length: 25 }, (_, i) => new Date(y, m, d + shift, i));
    label = (t) => String(t.getHours()).padStart(2, '0');
    title = edges[0].toLocaleDateString(undefined, { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' });
  } else if (kind === 'week') {
    const monday = d - ((ref.getDay() + 6) % 7) + 7 * shift;
    edges = Array.from({ length: 8 }, (_, i) => new Date(y, m, monday + i));
    label = (t) => t.toLocaleDateString(undefined, { weekday: 'short' });
    title = `Week of ${edges[0].toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric' })}`;
  } else if (kind === 'month') {
    const first = new Date(y, m + shift, 1);
    const days = new Date(first.getFullYear(), first.getMonth() + 1, 0).getDate();
    edges = Array.from({ length: days + 1 }, (_, i) => new Date(first.getFullYear(), first.getMonth(), 1 + i));
    label = (t) => String(t.getDate());
    title = first.toLocaleDateString(undefined, { month: 'long', year: 'numeric' });
  } else {
    edges = Array.from({ length: 13 }, (_, i) => new Date(y + shift, i, 1));
    label = (t) => t.toLocaleDateString(undefined, { month: 'short' });
    title = String(y + shift);
  }
  // A spring-forward day has a non-existent hour: drop the repeated edge.
  const bounds = [];
  for (const e of edges) if (!bounds.length || e.getTime() > bounds[bounds.length - 1]) bounds.push(e.getTime());
  return { kind, start: bounds[0], end: bounds[bounds.length - 1], bounds, labels: bounds.slice(0, -1).map((t) => label(new Date(t))), title };
}

/** Rollup interval to sum the period's buckets from (see the module comment). */
export function intervalFor(p) {
  const whole = p.bounds.every((t) => new Date(t).getTimezoneOffset() % 60 === 0);
  return whole ? '1h' : '15m';
}

/** The values URL of a datapoint with its query: the gateway's own (Outpost Central passes its gateway's, as to values.js). */
const valuesUrl = (id, query) => `/api/datapoints/${encodeURIComponent(id)}/values?${new URLSearchParams(query)}`;

/** The counter's increase per rollup interval of period `p` (agg=delta: from the reading before, a drop counted as a reset). */
export async function deltas(id, p, url = valuesUrl) {
  const r = await get(url(id, { from: p.start, to: p.end - 1, interval: intervalFor(p), agg: 'delta' }));
  return r.values;
}

/** Sums interval deltas into the period's buckets; null where no reading fell. */
export function bucketise(points, p, factor = 1) {
  const out = new Array(p.bounds.length - 1).fill(null);
  let i = 0;
  for (const pt of points) {
    if (pt.t < p.start || pt.t >= p.end) continue;
    while (i < out.length - 1 && pt.t >= p.bounds[i + 1]) i++;
    while (i > 0 && pt.t < p.bounds[i]) i--;
    out[i] = (out[i] ?? 0) + pt.v * factor;
  }
  return out;
}

const sum = (xs) => xs.reduce((a, v) => a + (v ?? 0), 0);

export function formatEnergy(v, unit) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  const digits = Math.abs(v) < 10 ? 2 : Math.abs(v) < 1000 ? 1 : 0;
  return `${v.toLocaleString(undefined, { maximumFractionDigits: digits })} ${unit}`;
}

/** Runs `fn` over `items` with at most `n` requests in flight (a Pi serves the rollups). */
async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]);
      }
    }),
  );
  return out;
}

// Survives re-rendering of the page (navigation back and forth) within the session.
const state = { kind: 'day', shift: 0 };

export async function consumption(main, arg, { track }) {
  main.append(h('h1', {}, 'Consumption'));
  // Every meter counter with its role, classified by the gateway; a configured id that cannot be
  // added up (not registered, not a number) is not offered.
  const counters = (await get('/api/site/energy/counters')).counters.filter((c) => !c.problem);
  if (!counters.length) {
    main.append(
      card(
        'No meter counters',
        h(
          'p',
          { class: 'muted' },
          'A counter is a number datapoint with meta.counter: true, or in kWh / Wh (energy import registers of meters, inverters and chargers).',
        ),
      ),
    );
    return;
  }
  const preferred =
    counters.find((d) => d.id === arg) ??
    counters.find((d) => /grid\.energy_import$/.test(d.id)) ??
    counters.find((d) => /main\.energy_import$/.test(d.id)) ??
    counters[0];

  const meter = h(
    'select',
    { id: 'cons-meter' },
    counters.map((d) =>
      h('option', { value: d.id, selected: d.id === preferred.id }, `${d.id} (${[d.unit, d.role].filter(Boolean).join(', ')})`.replace(' ()', '')),
    ),
  );
  const kind = h(
    'select',
    { id: 'cons-period' },
    Object.entries(KINDS).map(([k, v]) => h('option', { value: k, selected: k === state.kind }, v.label)),
  );
  const prevBtn = h('button', { type: 'button', id: 'cons-prev', 'aria-label': 'Previous period' }, '‹ Previous');
  const nextBtn = h('button', { type: 'button', id: 'cons-next', 'aria-label': 'Next period' }, 'Next ›');
  const nowBtn = h('button', { type: 'button', id: 'cons-now', class: 'secondary' }, 'Now');
  const title = h('p', { class: 'period-title', id: 'cons-title', role: 'status', 'aria-live': 'polite' }, '');

  const total = h('p', { class: 'big num', id: 'cons-total' }, '—');
  const totalNote = h('p', { class: 'muted note' }, '');
  const prevTotal = h('p', { class: 'big num', id: 'cons-prev-total' }, '—');
  const prevNote = h('p', { class: 'muted note' }, '');
  const change = h('p', { class: 'big num', id: 'cons-change' }, '—');
  const changeNote = h('p', { class: 'muted note' }, '');
  const thisCard = card('This period', total, totalNote);
  const prevCard = card('Previous period', prevTotal, prevNote);
  const chartBox = h('div', { class: 'chart bars', id: 'cons-chart', role: 'img', 'aria-label': 'Energy per bucket' });
  const table = h('tbody');
  const tableHead = h('tr');
  const rank = h('ol', { class: 'rank', id: 'cons-rank' });
  const rankNote = h(
    'p',
    { class: 'muted note' },
    'Import and consumption counters only: production (PV, inverters), export and total registers are left out (set meta.energy on a datapoint to say what it counts). Sub-meters are also counted by the meter above them, so the figures do not add up to a site total.',
  );
  const msg = h('p', { class: 'form-msg', role: 'alert' });

  main.append(
    h(
      'div',
      { class: 'toolbar' },
      h('label', { for: 'cons-meter' }, 'Meter'),
      meter,
      h('label', { for: 'cons-period' }, 'Period'),
      kind,
      h('span', { class: 'btn-group' }, prevBtn, nowBtn, nextBtn),
    ),
    title,
    msg,
    h('div', { class: 'grid summary' }, thisCard, prevCard, card('Change', change, changeNote)),
    card(
      'Energy',
      chartBox,
      h(
        'details',
        {},
        h('summary', {}, 'Figures as a table'),
        h('div', { class: 'table-wrap' }, h('table', { id: 'cons-table' }, h('thead', {}, tableHead), table)),
      ),
    ),
    card('Largest consumers', rank, rankNote),
  );

  let chart;
  track(() => chart?.destroy());
  let generation = 0;

  const load = async () => {
    const gen = ++generation;
    const dp = counters.find((d) => d.id === meter.value) ?? preferred;
    const factor = dp.kwhPerUnit ?? 1;
    const unit = dp.kwhPerUnit !== null ? 'kWh' : (dp.unit ?? '');
    const noun = KINDS[state.kind].noun;
    const cur = period(state.kind, new Date(), state.shift);
    const prev = period(state.kind, new Date(cur.start), -1);
    const now = Date.now();
    const ongoing = now >= cur.start && now < cur.end;
    nextBtn.disabled = now < cur.end;
    nowBtn.disabled = state.shift === 0;

    const [curPts, prevPts] = await Promise.all([deltas(dp.id, cur), deltas(dp.id, prev)]);
    if (gen !== generation) return;
    msg.textContent = '';
    const curVals = bucketise(curPts, cur, factor);
    const prevVals = bucketise(prevPts, prev, factor);
    // Compare like with like: for a running period, the previous one up to the same elapsed time.
    const cutoff = prev.start + (now - cur.start);
    const prevToDate = sum(prevPts.filter((p) => p.t < cutoff).map((p) => p.v * factor));
    const curTotal = sum(curVals);
    const prevTotalV = sum(prevVals);
    const base = ongoing ? prevToDate : prevTotalV;

    setText(title, `${cur.title} · energy per ${KINDS[state.kind].bucket} of ${dp.id}`);
    thisCard.querySelector('h2').textContent = ongoing ? `This ${noun} so far` : `Selected ${noun}`;
    prevCard.querySelector('h2').textContent = `Previous ${noun}`;
    setText(total, formatEnergy(curTotal, unit));
    setText(totalNote, ongoing ? `since ${new Date(cur.start).toLocaleString()}` : cur.title);
    setText(prevTotal, formatEnergy(prevTotalV, unit));
    setText(prevNote, ongoing ? `${formatEnergy(prevToDate, unit)} by the same time · ${prev.title}` : prev.title);
    if (base > 0) {
      const pct = ((curTotal - base) / base) * 100;
      setText(change, `${pct > 0 ? '▲ +' : pct < 0 ? '▼ −' : ''}${Math.abs(pct).toLocaleString(undefined, { maximumFractionDigits: 1 })}\u00a0%`);
      change.className = `big num ${pct > 0 ? 'more' : pct < 0 ? 'less' : ''}`;
      setText(changeNote, `${pct > 0 ? 'more' : pct < 0 ? 'less' : 'the same'} than the previous ${noun}${ongoing ? ' by the same time' : ''}`);
    } else {
      setText(change, '—');
      change.className = 'big num';
      setText(changeNote, `nothing recorded in the previous ${noun}${ongoing ? ' by the same time' : ''}`);
    }

    const series = [
      { label: cur.title, values: curVals },
      { label: prev.title, values: prevVals },
    ];
    // Categories by position: hour 0…23, Mon…Sun, day 1…31, Jan…Dec (the longer period's labels).
    const labels = prev.labels.length > cur.labels.length ? prev.labels : cur.labels;
    for (const s of series) while (s.values.length < labels.length) s.values.push(null);
    chartBox.setAttribute('aria-label', `Energy per ${KINDS[state.kind].bucket}, ${cur.title} beside ${prev.title}; the figures are in the table below`);
    if (chart) chart.update(labels, series);
    else chart = barChart(chartBox, { labels, series, unit });

    const bucketName = KINDS[state.kind].bucket;
    tableHead.replaceChildren(
      ...[bucketName[0].toUpperCase() + bucketName.slice(1), cur.title, prev.title].map((c, i) => h('th', { scope: 'col', class: i ? 'num' : undefined }, c)),
    );
    table.replaceChildren(
      ...labels.map((l, i) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, l),
          h('td', { class: 'num' }, formatEnergy(curVals[i], unit)),
          h('td', { class: 'num' }, formatEnergy(prevVals[i], unit)),
        ),
      ),
    );

    const energy = counters.filter(isConsumer);
    const ranked = (await pool(energy, 4, async (d) => ({ dp: d, kwh: sum((await deltas(d.id, cur)).map((p) => p.v)) * d.kwhPerUnit })))
      .filter((r) => r.kwh > 0)
      .sort((a, b) => b.kwh - a.kwh);
    if (gen !== generation) return;
    const max = ranked[0]?.kwh ?? 0;
    rank.replaceChildren(
      ...(ranked.length
        ? ranked.slice(0, 15).map((r) => {
            const pick = h('button', { type: 'button', class: 'link', 'aria-label': `Show ${r.dp.id}` }, r.dp.id);
            pick.addEventListener('click', () => {
              meter.value = r.dp.id;
              meter.dispatchEvent(new Event('change'));
            });
            // Through CSSOM: the CSP (style-src 'self') refuses style attributes.
            const fill = h('span');
            fill.style.width = `${max > 0 ? Math.max(1, (r.kwh / max) * 100).toFixed(1) : 0}%`;
            return h(
              'li',
              { dataset: { id: r.dp.id } },
              h('span', { class: 'rank-name' }, pick, r.dp.description ? h('span', { class: 'muted rank-desc' }, r.dp.description) : ''),
              h('span', { class: 'rank-value num' }, formatEnergy(r.kwh, 'kWh')),
              h('span', { class: 'rank-bar', 'aria-hidden': 'true' }, fill),
            );
          })
        : [h('li', { class: 'muted' }, `No energy counted in this ${noun}.`)]),
    );
  };

  const { reload, refresh } = periodControls({ kind, prevBtn, nextBtn, nowBtn, msg }, state, load);
  meter.addEventListener('change', () => {
    history.replaceState(null, '', `#/consumption/${encodeURIComponent(meter.value)}`);
    reload();
  });
  await refresh(track);
}

/**
 * The period controls (kind, previous, now, next) of a consumption view, shared with central's
 * site page: each changes `state` and loads again, a failed load is said in `msg`. `refresh`
 * loads now and then once a minute while the running period is shown (new readings change it;
 * rollups are cheap to read).
 */
export function periodControls({ kind, prevBtn, nextBtn, nowBtn, msg }, state, load) {
  const reload = () =>
    load().catch((err) => {
      msg.textContent = `Cannot load the figures: ${err.message}`;
    });
  kind.addEventListener('change', () => {
    state.kind = kind.value;
    state.shift = 0;
    reload();
  });
  prevBtn.addEventListener('click', () => {
    state.shift--;
    reload();
  });
  nextBtn.addEventListener('click', () => {
    if (state.shift < 0) state.shift++;
    reload();
  });
  nowBtn.addEventListener('click', () => {
    state.shift = 0;
    reload();
  });
  const refresh = (track) => {
    let first = true;
    return every(
      60_000,
      async () => {
        if (!first && state.shift !== 0) return;
        first = false;
        await reload();
      },
      { track },
    );
  };
  return { reload, refresh };
}
