// Datapoints pages: the searchable live table, and one datapoint with its history chart (overlay.js), CSV download and setpoint form.
import { get } from './api.js';
import { h, formatValue, formatTime, flash } from './dom.js';
import { onValue } from './live.js';
import { card, kv, dpTable, submitSetpoint } from './widgets.js';
import { deleteCard } from './delete-datapoint.js';
import { historyCard } from './overlay.js';

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

export async function datapoint(main, arg, { track, me }) {
  // The route's argument is `<id>` or `<id>?<chart state>` (datapoint ids never hold '?').
  const [id] = arg.split('?');
  const dp = await get(`/api/datapoints/${encodeURIComponent(id)}`);
  main.append(h('p', {}, h('a', { href: '#/datapoints' }, '← All datapoints')), h('h1', {}, dp.id), h('p', { class: 'muted' }, dp.description ?? ''));
  const value = h('span', { class: 'big num', id: 'dp-value' }, formatValue(dp.latest?.v, dp.unit, dp.meta));
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

  // History: range (presets or custom), aggregation, overlaid series, CSV (overlay.js).
  const history = historyCard(dp, { track });
  main.append(history.element);
  // Deleting it with its data is for admins (DELETE /api/datapoints/<id>).
  if (me.role === 'admin') main.append(deleteCard(dp));

  track(
    onValue((vid, msg) => {
      if (vid !== dp.id) return;
      value.textContent = msg.q ? msg.q : formatValue(msg.v, dp.unit, dp.meta);
      time.textContent = formatTime(msg.t);
      flash(value);
    }),
  );
  await history.start();
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
