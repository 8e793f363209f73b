// Datapoints pages: the searchable live table, and one datapoint with its chart, CSV download and setpoint form.
import { get } from './api.js';
import { h, formatValue, formatTime, flash } from './dom.js';
import { onValue } from './live.js';
import { lineChart } from './chart.js';
import { card, kv, dpTable, submitSetpoint } from './widgets.js';
import { deleteCard } from './delete-datapoint.js';
import { CHART_RAW_LIMIT, CSV_RAW_LIMIT, loadValues, newestRaw } from './values.js';

export async function datapoints(main, _arg, { track }) {
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
  track(() => stopTable());
  search.focus();
}

const RANGES = [
  ['1h', 3600e3],
  ['6h', 6 * 3600e3],
  ['24h', 86400e3],
  ['7d', 7 * 86400e3],
  ['30d', 30 * 86400e3],
];

export async function datapoint(main, id, { track, me }) {
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

  if (dp.kind === 'actuator') main.append(setpointForm(dp, me));

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
  track(() => chart?.destroy());
  track(
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

function setpointForm(dp, me) {
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
