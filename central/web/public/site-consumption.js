// The site page's Consumption card: the energy one of the site's counters counted per hour (a
// day), per day (a week, a month) or per month (a year), from the central store. The gateway
// dashboard's Consumption page does the arithmetic (consumption.js: local periods, `deltas`
// from the rollups with agg=delta — the step from the reading before each interval, a drop
// counted as a reset, a gap's increase where the next reading lands — summed into local
// buckets; bars.js draws them), pointed at /api/gateways/<gateway>/datapoints/<id>/values.
// Which datapoints are counters, and their unit, central decides from their ids
// (GET /api/gateways/<gateway>/energy/counters, central/energy-counters.ts): gateways send no
// units upstream.
import { get } from './api.js';
import { h } from './dom.js';
import { barChart } from './bars.js';
import { bucketise, deltas, formatEnergy, period, periodControls } from './consumption.js';
import { card } from './ui.js';

/** The periods, as the gateway's Consumption page has them; a week of days first. */
const KINDS = {
  week: { label: 'Week', noun: 'week', bucket: 'day' },
  month: { label: 'Month', noun: 'month', bucket: 'day' },
  day: { label: 'Day', noun: 'day', bucket: 'hour' },
  year: { label: 'Year', noun: 'year', bucket: 'month' },
};

/** Counters whose period totals are listed at most (each is one rollup request). */
const LISTED = 12;

/** A bucket's name in the table: the whole date of a day, a month with its year, an hour. */
function rowLabel(bucket, start) {
  const d = new Date(start);
  if (bucket === 'day') return d.toLocaleDateString(undefined, { weekday: 'short', day: 'numeric', month: 'short' });
  if (bucket === 'month') return d.toLocaleDateString(undefined, { month: 'long', year: 'numeric' });
  return `${String(d.getHours()).padStart(2, '0')}:00`;
}

/** The counter shown first: the grid's or main meter's import, else the first import or consumption counter (the gateway's choice). */
function preferred(counters) {
  return (
    counters.find((c) => /grid\.energy_import$/.test(c.id)) ??
    counters.find((c) => /main\.energy_import$/.test(c.id)) ??
    counters.find((c) => c.role === 'import' || c.role === 'consumption') ??
    counters[0]
  );
}

/** An id that may wrap after its dots on a narrow screen (a <wbr> after each), as the datapoints table. */
const breakable = (id) => id.split('.').flatMap((part, i, all) => (i < all.length - 1 ? [`${part}.`, h('wbr')] : [part]));

const sum = (xs) => xs.reduce((a, v) => a + (v ?? 0), 0);

/**
 * The card and `start()`, which reads the counters and draws the first period. `track` takes
 * the page's cleanups (the chart, the refresh timer).
 */
export function consumptionCard(gateway, { track }) {
  const base = `/api/gateways/${encodeURIComponent(gateway)}`;
  const url = (id, query) => `${base}/datapoints/${encodeURIComponent(id)}/values?${new URLSearchParams(query)}`;
  const body = h('div', { id: 'cons' }, h('p', { class: 'muted' }, 'Loading…'));
  const element = card('Consumption', body);
  const state = { kind: 'week', shift: 0 };

  const empty = () =>
    body.replaceChildren(
      h(
        'p',
        { class: 'muted', id: 'cons-empty' },
        'No energy counters reported. A counter is a number datapoint whose id has the word energy (or wh, kwh, mwh), such as meter.main.energy_import; gateways send no units upstream, so central goes by the id.',
      ),
    );

  const start = async () => {
    let counters;
    try {
      ({ counters } = await get(`${base}/energy/counters`));
    } catch (err) {
      body.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Cannot load the energy counters: ${err.message}`));
      return;
    }
    if (!counters.length) return empty();
    const first = preferred(counters);
    const meter = h(
      'select',
      { id: 'cons-meter' },
      counters.map((c) => h('option', { value: c.id, selected: c.id === first.id }, `${c.id} (${c.role})`)),
    );
    const kind = h(
      'select',
      { id: 'cons-period' },
      Object.entries(KINDS).map(([k, v]) => h('option', { value: k, selected: k === state.kind }, v.label)),
    );
    const prevBtn = h('button', { type: 'button', id: 'cons-prev', 'aria-label': 'Previous period' }, '‹ Previous');
    const nowBtn = h('button', { type: 'button', id: 'cons-now', class: 'secondary' }, 'Now');
    const nextBtn = h('button', { type: 'button', id: 'cons-next', 'aria-label': 'Next period' }, 'Next ›');
    const title = h('p', { class: 'period-title', id: 'cons-title', role: 'status', 'aria-live': 'polite' });
    const msg = h('p', { class: 'form-msg', role: 'alert' });
    const total = h('p', { class: 'big num', id: 'cons-total' }, '—');
    const totalNote = h('p', { class: 'muted note' });
    const chartBox = h('div', { class: 'chart bars', id: 'cons-chart', role: 'img', 'aria-label': 'Energy per bucket' });
    const bucketHead = h('th', { scope: 'col' }, 'Day');
    const rows = h('tbody');
    const listed = h('tbody');
    const unitNote = h('p', { class: 'muted note', id: 'cons-units' });
    body.replaceChildren(
      h(
        'div',
        { class: 'toolbar' },
        h('span', { class: 'chart-field' }, h('label', { for: 'cons-meter' }, 'Counter'), meter),
        h('span', { class: 'chart-field' }, h('label', { for: 'cons-period' }, 'Period'), kind),
        h('span', { class: 'btn-group' }, prevBtn, nowBtn, nextBtn),
      ),
      title,
      msg,
      total,
      totalNote,
      chartBox,
      h(
        'div',
        { class: 'table-wrap' },
        h('table', { id: 'cons-table', class: 'cons-table' }, h('thead', {}, h('tr', {}, bucketHead, h('th', { scope: 'col', class: 'num' }, 'Energy'))), rows),
      ),
      h('h3', {}, 'Counters in this period'),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'cons-counters', class: 'cons-table' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Counter (what it counts)'), h('th', { scope: 'col', class: 'num' }, 'Energy'))),
          listed,
        ),
      ),
      unitNote,
    );
    const assumed = counters.filter((c) => c.unitFrom === 'assumed');
    unitNote.textContent = `${counters.length > LISTED ? `The first ${LISTED} of ${counters.length} counters are listed; pick any above. ` : ''}${
      assumed.length
        ? `Gateways send no units upstream: ${assumed.length === counters.length ? (assumed.length === 1 ? 'the counter is' : 'every counter is') : assumed.length === 1 ? '1 counter is' : `${assumed.length} counters are`} taken as kWh (an id ending in _wh or _mwh says otherwise). `
        : ''
    }What each counts is read from its id, as the gateway does without a configuration.`;

    let chart;
    track(() => chart?.destroy());
    let generation = 0;

    const load = async () => {
      const gen = ++generation;
      const dp = counters.find((c) => c.id === meter.value) ?? first;
      const { noun, bucket } = KINDS[state.kind];
      const cur = period(state.kind, new Date(), state.shift);
      const now = Date.now();
      const ongoing = now >= cur.start && now < cur.end;
      nextBtn.disabled = now < cur.end;
      nowBtn.disabled = state.shift === 0;
      const values = bucketise(await deltas(dp.id, cur, url), cur, dp.kwhPerUnit);
      if (gen !== generation) return;
      msg.textContent = '';
      title.textContent = `${cur.title} · energy per ${bucket} of ${dp.id}`;
      total.textContent = formatEnergy(sum(values), 'kWh');
      totalNote.textContent = `${ongoing ? `this ${noun} so far` : `in the ${noun}`}${dp.unitFrom === 'assumed' ? ' · readings taken as kWh' : ''}`;
      chartBox.setAttribute('aria-label', `Energy of ${dp.id} per ${bucket}, ${cur.title}; the figures are in the table below`);
      const series = [{ label: cur.title, values }];
      if (chart) chart.update(cur.labels, series);
      else chart = barChart(chartBox, { labels: cur.labels, series, unit: 'kWh' });
      bucketHead.textContent = bucket[0].toUpperCase() + bucket.slice(1);
      rows.replaceChildren(
        ...values.map((v, i) =>
          h(
            'tr',
            { dataset: { start: String(cur.bounds[i]), end: String(cur.bounds[i + 1]) } },
            h('th', { scope: 'row' }, rowLabel(bucket, cur.bounds[i])),
            h('td', { class: 'num', dataset: { kwh: v === null ? '' : String(v) } }, formatEnergy(v, 'kWh')),
          ),
        ),
      );
      // Every counter's total of the period, a few requests at a time (one rollup read each).
      const shown = counters.slice(0, LISTED);
      const totals = [];
      for (let i = 0; i < shown.length; i += 3) {
        totals.push(...(await Promise.all(shown.slice(i, i + 3).map(async (c) => sum((await deltas(c.id, cur, url)).map((p) => p.v)) * c.kwhPerUnit))));
        if (gen !== generation) return;
      }
      listed.replaceChildren(
        ...shown.map((c, i) =>
          h(
            'tr',
            { dataset: { id: c.id } },
            // What it counts under the id (two columns fit a phone), with why on hover.
            h('th', { scope: 'row', class: 'dp-id' }, breakable(c.id), h('span', { class: 'muted cons-role', title: c.why }, c.role)),
            h('td', { class: 'num', dataset: { kwh: String(totals[i]) } }, formatEnergy(totals[i], 'kWh')),
          ),
        ),
      );
      // Which period the totals are of (they arrive after the bars).
      listed.dataset.start = String(cur.start);
    };

    const { reload, refresh } = periodControls({ kind, prevBtn, nextBtn, nowBtn, msg }, state, load);
    meter.addEventListener('change', reload);
    await refresh(track);
  };

  return { element, start };
}
