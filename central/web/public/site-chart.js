// The chart of one datapoint of a site, from the central store: raw readings, or rollups when an
// aggregation is picked (or automatically for a range holding more than a chart draws), with
// the gateway dashboard's own loaders and chart (values.js, chart.js, range.js) pointed at
// /api/gateways/<gateway>/datapoints/<id>/values. The choice is kept in the page's hash.
import { h, formatValue, formatTime } from './dom.js';
import { lineChart } from './chart.js';
import { loadValues, newestRaw } from './values.js';
import { AGGREGATIONS, DEFAULT_RANGE, RANGES, windowOf } from './range.js';
import { card } from './ui.js';

/** Readings listed for a datapoint that holds text or JSON (no chart for those). */
const TEXT_READINGS = 20;

const isNumeric = (d) => d?.type === 'number' || d?.type === 'boolean';

/** The datapoint shown first: the hash's, else the first number that is not the gateway's own bookkeeping. */
function firstChoice(datapoints, asked) {
  if (asked && datapoints.some((d) => d.id === asked)) return asked;
  const numbers = datapoints.filter(isNumeric);
  return (numbers.find((d) => !d.id.startsWith('gateway.')) ?? numbers[0] ?? datapoints[0])?.id;
}

export function datapointChart(gateway, datapoints, params, { track }) {
  const byId = new Map(datapoints.map((d) => [d.id, d]));
  const state = {
    dp: firstChoice(datapoints, params.get('dp')),
    range: RANGES.some(([name]) => name === params.get('range')) ? params.get('range') : DEFAULT_RANGE,
    agg: AGGREGATIONS.includes(params.get('agg')) ? params.get('agg') : 'raw',
  };
  const url = (id, query) => `/api/gateways/${encodeURIComponent(gateway)}/datapoints/${encodeURIComponent(id)}/values?${new URLSearchParams(query)}`;
  const hashFor = (dp, s = state) => {
    const q = new URLSearchParams({ dp });
    if (s.range !== DEFAULT_RANGE) q.set('range', s.range);
    if (s.agg !== 'raw') q.set('agg', s.agg);
    return `#/site/${encodeURIComponent(gateway)}?${q}`;
  };

  const dpSelect = h(
    'select',
    { id: 'chart-dp' },
    datapoints.map((d) => h('option', { value: d.id, selected: d.id === state.dp }, d.id)),
  );
  const range = h(
    'select',
    { id: 'range' },
    RANGES.map(([name]) => h('option', { value: name, selected: name === state.range }, name)),
  );
  const agg = h(
    'select',
    { id: 'agg' },
    AGGREGATIONS.map((a) => h('option', { value: a, selected: a === state.agg }, a)),
  );
  const chartBox = h('div', { class: 'chart', id: 'chart', role: 'img', 'aria-label': 'Chart' });
  const status = h('p', { class: 'muted', id: 'chart-status', role: 'status', 'aria-live': 'polite' });
  const element = card(
    'Chart',
    h(
      'div',
      { class: 'toolbar' },
      h('span', { class: 'chart-field' }, h('label', { for: 'chart-dp' }, 'Datapoint'), dpSelect),
      h('span', { class: 'chart-field' }, h('label', { for: 'range' }, 'Range'), range),
      h('span', { class: 'chart-field' }, h('label', { for: 'agg' }, 'Aggregation'), agg),
    ),
    chartBox,
    status,
  );

  let plot;
  let drawing = 0;
  const clear = () => {
    plot?.destroy();
    plot = undefined;
  };
  track(clear);

  const draw = async () => {
    const mine = ++drawing;
    const dp = byId.get(state.dp);
    if (!dp) {
      clear();
      chartBox.replaceChildren();
      status.textContent = 'The gateway has sent no readings yet.';
      return;
    }
    chartBox.setAttribute('aria-label', `Chart of ${dp.id}`);
    status.textContent = 'Loading…';
    const { from, to } = windowOf({ preset: state.range });
    try {
      if (!isNumeric(dp)) {
        const raw = await newestRaw(dp.id, from, to, TEXT_READINGS, url);
        if (mine !== drawing) return;
        clear();
        chartBox.dataset.points = String(raw.values.length);
        chartBox.replaceChildren(
          h(
            'ul',
            { class: 'text-readings' },
            raw.values
              .reverse()
              .map((p) => h('li', {}, h('span', { class: 'time muted' }, formatTime(p.t)), ' ', h('span', { class: 'mono' }, formatValue(p.v)))),
          ),
        );
        status.textContent = `${dp.id} holds ${dp.type === 'json' ? 'JSON' : 'text'}: the newest ${raw.values.length} readings of the range, newest first (no chart)`;
        return;
      }
      const data = await loadValues(dp.id, from, to, state.agg, { numeric: true, url });
      if (mine !== drawing) return;
      clear();
      plot = lineChart(chartBox, { label: dp.id, points: data.values, range: { from, to } });
      chartBox.dataset.points = String(data.values.length);
      chartBox.dataset.interval = data.interval ?? '';
      const n = data.values.length;
      status.textContent = data.interval
        ? `${n.toLocaleString()} × ${data.agg ?? state.agg} of ${data.interval}${data.auto ? ' (more readings than a chart draws: averages, the last bucket as readings)' : ''}`
        : `${n.toLocaleString()} ${n === 1 ? 'reading' : 'readings'}${data.truncated ? ' (the newest only: pick a shorter range)' : ''}`;
    } catch (err) {
      if (mine === drawing) status.textContent = `Could not load: ${err.message}`;
    }
  };

  const changed = () => {
    state.dp = dpSelect.value;
    state.range = range.value;
    state.agg = agg.value;
    // The hash follows without a new route (no reload of the page).
    if (state.dp) history.replaceState(null, '', hashFor(state.dp));
    return draw();
  };
  for (const control of [dpSelect, range, agg]) control.addEventListener('change', changed);

  return {
    element,
    hashFor: (dp) => hashFor(dp),
    start: draw,
    /** Shows `dp` (a click in the datapoints table). */
    show(dp) {
      dpSelect.value = dp;
      element.scrollIntoView({ block: 'nearest' });
      return changed();
    },
  };
}
