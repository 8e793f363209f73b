// The History card of a datapoint: range (presets or a custom from/to), aggregation, other
// datapoints overlaid on the same chart (each with its colour, axis and status line), live
// updates into the matching series, and CSV. The state is kept in the hash (range.js).
import { get } from './api.js';
import { h, formatTime } from './dom.js';
import { onValue } from './live.js';
import { overlayChart, SERIES_COLOURS } from './chart.js';
import { card } from './widgets.js';
import { CHART_RAW_LIMIT, CSV_RAW_LIMIT, loadSeries, mergedCsvLines, newestRaw } from './values.js';
import { AGGREGATIONS, EARLIEST_MS, MAX_SERIES, RANGES, chartQuery, fromLocalInput, rangeProblem, readChartQuery, toLocalInput, windowOf } from './range.js';

const isNumeric = (dp) => dp.type === 'number' || dp.type === 'boolean';
/** What a series' y axis measures: on/off datapoints are drawn as 0/1, numbers in their unit. */
const unitKey = (dp) => (dp.type === 'boolean' ? 'on/off' : (dp.unit ?? ''));
const unitName = (key) => key || 'no unit';
/** Datapoints listed by the "Add series" search at most; the search narrows the rest. */
const PICKER_SHOWN = 50;

/** The query part of the page's hash (`#/datapoints/<id>?…`), raw. */
const hashQuery = () => (location.hash.includes('?') ? location.hash.slice(location.hash.indexOf('?') + 1) : '');

function download(lines, name) {
  const url = URL.createObjectURL(new Blob([lines.join('\n') + '\n'], { type: 'text/csv' }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** The status line of one series: what is drawn and why (rollups, a cut). */
function describe(data, agg) {
  if (!data) return 'Loading…';
  if (data.error) return `Could not load: ${data.error}`;
  // Automatic rollups end in the last bucket's raw readings (`tail`): counted apart.
  const n = data.values.length - (data.tail ?? 0);
  const band = data.band ? ', min–max of each as a band' : '';
  const tail = data.tail ? ` and ${data.tail.toLocaleString()} ${data.tail === 1 ? 'reading' : 'readings'}` : '';
  const what = data.interval ? `× ${data.agg ?? agg} of ${data.interval}${data.auto ? tail : band}` : n === 1 ? 'reading' : 'readings';
  const note = data.auto
    ? ` (the range holds more than ${CHART_RAW_LIMIT.toLocaleString()} readings: drawn as averages${band}, the last ${data.interval} as readings, so the line reaches the newest reading${data.band ? '' : '; pick min or max for the extremes'})`
    : data.truncated
      ? ` (the newest ${n.toLocaleString()} only, from ${formatTime(data.values[0]?.t)}: pick a shorter range)`
      : '';
  return `${n.toLocaleString()} ${what}${note}`;
}

/**
 * Builds the card for `dp`; `start()` reads the series of the hash and draws. Returns
 * { element, start }.
 */
export function historyCard(dp, { track }) {
  const { state, notes } = readChartQuery(hashQuery());
  const overlays = isNumeric(dp);
  const range = h(
    'select',
    { id: 'range' },
    RANGES.map(([name]) => h('option', { value: name }, name)),
    h('option', { value: 'custom' }, 'custom'),
  );
  const agg = h(
    'select',
    { id: 'agg' },
    AGGREGATIONS.map((a) => h('option', { value: a }, a)),
  );
  const csv = h('button', { type: 'button', id: 'csv' }, 'Download CSV');
  const addButton = overlays
    ? h('button', { type: 'button', id: 'add-series', class: 'secondary', 'aria-expanded': 'false', 'aria-controls': 'series-picker' }, 'Add series')
    : '';
  const fromInput = h('input', { id: 'range-from', type: 'datetime-local', step: 60, 'aria-describedby': 'range-msg' });
  const toInput = h('input', { id: 'range-to', type: 'datetime-local', step: 60, 'aria-describedby': 'range-msg' });
  const rangeMsg = h('p', { class: 'form-msg', id: 'range-msg', role: 'status', 'aria-live': 'polite' });
  const rangeForm = h(
    'form',
    // Not "range" in its name: the Range select is found by that label.
    { class: 'range-form', novalidate: true, 'aria-label': 'Custom period' },
    h('span', { class: 'chart-field' }, h('label', { for: 'range-from' }, 'From'), fromInput),
    h('span', { class: 'chart-field' }, h('label', { for: 'range-to' }, 'To'), toInput),
    h('button', { type: 'submit', class: 'secondary' }, 'Show'),
    h('span', { class: 'muted note' }, 'local time, at most 366 days'),
    rangeMsg,
  );
  const pickerSearch = h('input', { id: 'series-search', type: 'search', autocomplete: 'off', placeholder: 'id or description' });
  const pickerCount = h('p', { class: 'muted', id: 'series-count' });
  const pickerMsg = h('p', { class: 'form-msg', id: 'series-msg', role: 'status', 'aria-live': 'polite' });
  const options = h('ul', { class: 'series-options', id: 'series-options', 'aria-label': 'Datapoints to add' });
  const picker = h(
    'div',
    { class: 'series-picker', id: 'series-picker', hidden: true },
    h('label', { for: 'series-search' }, 'Find a datapoint (number or on/off)'),
    pickerSearch,
    pickerCount,
    pickerMsg,
    options,
  );
  const chartBox = h('div', { class: 'chart', id: 'chart', role: 'img', 'aria-label': `Chart of ${dp.id}` });
  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const list = h('ul', { class: 'series-list', id: 'series-list', 'aria-label': 'Series on the chart', hidden: true });
  const element = card(
    'History',
    h(
      'div',
      { class: 'toolbar' },
      h('span', { class: 'chart-field' }, h('label', { for: 'range' }, 'Range'), range),
      h('span', { class: 'chart-field' }, h('label', { for: 'agg' }, 'Aggregation'), agg),
      csv,
      addButton,
    ),
    rangeForm,
    picker,
    chartBox,
    status,
    list,
  );

  /** The series drawn: the page's datapoint first; `colour` indexes SERIES_COLOURS. */
  const series = [{ dp, colour: 0 }];
  /** Units of the y axes, left then right: the page's datapoint's unit is always on the left. */
  const axisUnits = () => [...new Set(series.map((s) => unitKey(s.dp)))];
  const axisOf = (d) => (unitKey(d) === axisUnits()[0] ? 'left' : 'right');
  const problemAdding = (d) => {
    if (series.some((s) => s.dp.id === d.id)) return `${d.id} is on the chart already.`;
    if (!isNumeric(d)) return `${d.id} holds ${d.type} values: only number and on/off datapoints are drawn.`;
    if (series.length >= MAX_SERIES) return `At most ${MAX_SERIES} series on one chart: remove one first.`;
    const units = axisUnits();
    if (units.length >= 2 && !units.includes(unitKey(d)))
      return `${d.id} is in ${unitName(unitKey(d))}: this chart has axes for ${unitName(units[0])} (left) and ${unitName(units[1])} (right) only, and a third unit would need a third axis. Remove the ${unitName(units[1])} series first.`;
    return undefined;
  };
  const addSeries = (d) => {
    const colour = SERIES_COLOURS.findIndex((_, c) => !series.some((s) => s.colour === c));
    series.push({ dp: d, colour });
  };

  let chart;
  /** Ids of the series in the chart as drawn (live readings go to their index). */
  let drawnIds = [];
  let shown = windowOf(state);
  let loadSeq = 0;

  const syncHash = () => {
    state.with = series.slice(1).map((s) => s.dp.id);
    const q = chartQuery(state);
    const hash = `#/datapoints/${dp.id}${q ? `?${q}` : ''}`;
    // replaceState: no hashchange, so the page is not built again for its own bookmark.
    if (location.hash !== hash) history.replaceState(history.state, '', hash);
  };
  const renderList = () => {
    status.textContent =
      series.length === 1
        ? describe(series[0].data, state.agg)
        : `${series.length} series, ${formatTime(shown.from)} – ${formatTime(shown.to)}; each one's readings below.`;
    list.hidden = series.length < 2;
    list.replaceChildren(
      ...series.map((s, i) => {
        const remove = h('button', { type: 'button', class: 'secondary', 'aria-label': `Remove ${s.dp.id} from the chart` }, 'Remove');
        remove.addEventListener('click', () => {
          series.splice(series.indexOf(s), 1);
          syncHash();
          draw();
          pickerMsg.textContent = '';
          if (!picker.hidden) renderOptions();
        });
        return h(
          'li',
          { 'data-id': s.dp.id },
          h('span', { class: `swatch c${s.colour}`, 'aria-hidden': 'true' }),
          h(
            'span',
            { class: 'series-name' },
            i === 0 ? h('strong', {}, s.dp.id) : h('a', { href: `#/datapoints/${s.dp.id}` }, s.dp.id),
            h('span', { class: 'muted' }, ` ${unitName(unitKey(s.dp))}, ${axisOf(s.dp)} axis`),
          ),
          h('span', { class: 'series-status muted' }, describe(s.data, state.agg)),
          i === 0 ? '' : remove,
        );
      }),
    );
  };
  const draw = () => {
    chart?.destroy();
    chart = overlayChart(chartBox, {
      series: series.map((s) => ({
        label: s.dp.id,
        unit: unitKey(s.dp) || undefined,
        colour: SERIES_COLOURS[s.colour],
        axis: axisOf(s.dp),
        points: s.data?.values ?? [],
        band: s.data?.band,
      })),
      range: shown,
      slideMs: state.preset === undefined ? undefined : shown.to - shown.from,
    });
    drawnIds = series.map((s) => s.dp.id);
    chartBox.setAttribute('aria-label', `Chart of ${drawnIds.join(', ')}`);
    renderList();
  };
  const load = async () => {
    const seq = ++loadSeq;
    shown = windowOf(state);
    fromInput.value = toLocalInput(shown.from);
    toInput.value = toLocalInput(shown.to);
    range.value = state.preset ?? 'custom';
    agg.value = state.agg;
    syncHash();
    status.textContent = 'Loading…';
    const loading = [...series];
    const results = await Promise.allSettled(loading.map((s) => loadSeries(s.dp.id, shown.from, shown.to, state.agg, { numeric: isNumeric(s.dp) })));
    if (seq !== loadSeq) return;
    results.forEach((r, i) => {
      loading[i].data = r.status === 'fulfilled' ? r.value : { values: [], error: r.reason?.message ?? String(r.reason) };
    });
    draw();
  };

  range.addEventListener('change', () => {
    if (range.value === 'custom') {
      rangeMsg.className = 'form-msg';
      rangeMsg.textContent = 'Pick From and To, then Show.';
      fromInput.focus();
      return;
    }
    Object.assign(state, { preset: range.value, from: undefined, to: undefined });
    rangeMsg.textContent = '';
    void load();
  });
  agg.addEventListener('change', () => {
    state.agg = agg.value;
    void load();
  });
  rangeForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const from = fromLocalInput(fromInput.value);
    const to = fromLocalInput(toInput.value);
    const problem = rangeProblem(from, to);
    const badFrom = problem !== undefined && (!Number.isFinite(from) || from < EARLIEST_MS);
    fromInput.setAttribute('aria-invalid', String(badFrom));
    toInput.setAttribute('aria-invalid', String(problem !== undefined && !badFrom));
    rangeMsg.className = problem ? 'form-msg bad' : 'form-msg';
    rangeMsg.textContent = problem ?? '';
    if (problem) return;
    Object.assign(state, { preset: undefined, from, to });
    void load();
  });

  // "Add series": a searchable list of the gateway's number and on/off datapoints.
  let catalog;
  const renderOptions = () => {
    const q = pickerSearch.value.trim().toLowerCase();
    const numeric = catalog.filter((d) => isNumeric(d) && !series.some((s) => s.dp.id === d.id));
    const found = numeric.filter((d) => !q || d.id.includes(q) || (d.description ?? '').toLowerCase().includes(q));
    pickerCount.textContent =
      found.length > PICKER_SHOWN
        ? `${PICKER_SHOWN} of ${found.length} shown: narrow the search`
        : `${found.length} of ${numeric.length} number and on/off datapoints`;
    options.replaceChildren(
      ...found
        .slice(0, PICKER_SHOWN)
        .map((d) =>
          h(
            'li',
            {},
            h(
              'button',
              { type: 'button', class: 'pick', 'data-id': d.id },
              h('span', { class: 'pick-id' }, d.id),
              h('span', { class: 'muted' }, ` ${unitName(unitKey(d))}${d.description ? ` · ${d.description}` : ''}`),
            ),
          ),
        ),
    );
  };
  if (overlays) {
    addButton.addEventListener('click', async () => {
      const open = picker.hidden;
      picker.hidden = !open;
      addButton.setAttribute('aria-expanded', String(open));
      if (!open) return;
      pickerSearch.focus();
      if (!catalog) {
        pickerCount.textContent = 'Loading the datapoints…';
        try {
          catalog = (await get('/api/datapoints')).items;
        } catch (err) {
          pickerCount.textContent = `Cannot list the datapoints: ${err.message}`;
          return;
        }
      }
      renderOptions();
    });
    pickerSearch.addEventListener('input', () => catalog && renderOptions());
    options.addEventListener('click', (e) => {
      const button = e.target.closest('button[data-id]');
      const d = button && catalog.find((c) => c.id === button.dataset.id);
      if (!d) return;
      const problem = problemAdding(d);
      pickerMsg.className = problem ? 'form-msg bad' : 'form-msg good';
      if (problem) {
        pickerMsg.textContent = problem;
        return;
      }
      addSeries(d);
      pickerMsg.textContent = `Added ${d.id} (${unitName(unitKey(d))}, ${axisOf(d)} axis).`;
      renderOptions();
      void load();
    });
  }

  // CSV: one series as before; several on one time column.
  csv.addEventListener('click', async () => {
    const parts = [...series];
    if (parts.length === 1) return singleCsv(parts[0].data ?? { values: [] });
    const columns = [];
    const cuts = [];
    for (const s of parts) {
      const data = s.data ?? { values: [] };
      if (data.interval && !data.auto) {
        columns.push(data.values);
        continue;
      }
      status.textContent = `Preparing the CSV: ${s.dp.id}…`;
      try {
        const raw = await newestRaw(s.dp.id, shown.from, shown.to, CSV_RAW_LIMIT);
        columns.push(raw.values);
        if (raw.truncated) cuts.push(`${s.dp.id} from ${formatTime(raw.values[0]?.t)}`);
      } catch (err) {
        status.textContent = `No CSV: ${s.dp.id}: ${err.message}`;
        return;
      }
    }
    const lines = mergedCsvLines(['time_iso', 'epoch_ms', ...parts.map((s) => s.dp.id)], columns);
    status.textContent = cuts.length
      ? `CSV cut: the newest ${CSV_RAW_LIMIT.toLocaleString()} readings of ${cuts.join('; ')}; the range holds more (pick a shorter range for the rest).`
      : `CSV: ${parts.length} series, ${(lines.length - 1).toLocaleString()} rows (one per distinct time), the whole range.`;
    download(lines, cuts.length ? `${dp.id}-overlay-newest.csv` : `${dp.id}-overlay.csv`);
  });
  // One series: the aggregates when an aggregation is picked; else the raw readings of the
  // range, the newest CSV_RAW_LIMIT of them, and the page says when the range held more.
  const singleCsv = async (data) => {
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
    status.textContent = cut
      ? `CSV cut: the newest ${rows.length.toLocaleString()} readings of the range, from ${formatTime(rows[0]?.t)}; the range holds more (pick a shorter range for the rest).`
      : `CSV: ${rows.length.toLocaleString()} ${interval ? `× ${data.agg ?? state.agg} of ${interval}` : 'readings'}, the whole range.`;
    download(lines, cut ? `${dp.id}-newest-${rows.length}.csv` : `${dp.id}.csv`);
  };

  // Live readings go into their series: raw lines and automatic rollups (which end in raw
  // readings); not into a picked aggregation, whose points are buckets.
  track(() => chart?.destroy());
  track(
    onValue((id, msg) => {
      const index = drawnIds.indexOf(id);
      const data = series.find((s) => s.dp.id === id)?.data;
      if (!chart || index < 0 || !data || data.error || (data.interval && !data.auto)) return;
      if (msg.t < shown.from || (state.preset === undefined && msg.t > shown.to)) return;
      chart.push(index, msg.t, msg.v);
    }),
  );

  const start = async () => {
    if (!overlays && state.with.length) notes.push("Only number and on/off datapoints take other series: the link's other series are left out.");
    const wanted = overlays ? state.with : [];
    const found = await Promise.allSettled(wanted.map((id) => get(`/api/datapoints/${encodeURIComponent(id)}`)));
    found.forEach((r, i) => {
      const problem = r.status === 'rejected' ? `${wanted[i]}: ${r.reason?.message ?? r.reason}.` : problemAdding(r.value);
      if (problem) notes.push(`${problem} (left out)`);
      else addSeries(r.value);
    });
    rangeMsg.className = notes.length ? 'form-msg bad' : 'form-msg';
    rangeMsg.textContent = notes.join(' ');
    await load();
  };
  return { element, start };
}
