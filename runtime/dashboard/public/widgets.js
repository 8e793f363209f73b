// Building blocks shared by the pages: cards, key/value lists, live datapoint tables,
// adapter status cards. Every live listener is handed to `track`, which the page's
// cleanup calls when the page is left.
import { get, post, ApiError } from './api.js';
import { h, formatValue, formatTime, flash } from './dom.js';
import { onValue, onStatus } from './live.js';

export function card(title, ...body) {
  return h('section', { class: 'card', 'aria-label': title }, h('h2', {}, title), ...body);
}

export function kv(rows) {
  return h(
    'dl',
    { class: 'kv' },
    rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
  );
}

/** GET that answers undefined when the API is absent (404) or not ready (503). */
export async function optionalJson(path) {
  try {
    return await get(path);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 503)) return undefined;
    throw err;
  }
}

/** An id that may wrap after its dots on a narrow screen (a <wbr> after each). */
function breakable(id) {
  return id.split('.').flatMap((part, i, all) => (i < all.length - 1 ? [`${part}.`, h('wbr')] : [part]));
}

/** A live table of datapoints: values update in place, with fixed widths. */
export function dpTable(items, { caption, link = true, track }) {
  const cells = new Map();
  const rows = items.map((dp) => {
    // A JSON or long string value is cut with an ellipsis (the whole of it in the tooltip
    // and on the datapoint's page), so it cannot stretch the column past the screen.
    const text = formatValue(dp.latest?.v, dp.unit);
    const shown = h('span', { class: 'val', title: text }, text);
    const value = h('td', { class: 'num' }, shown);
    const time = h('td', { class: 'time' }, formatTime(dp.latest?.t));
    cells.set(dp.id, { value, shown, time, dp });
    return h(
      'tr',
      { dataset: { id: dp.id } },
      h('th', { scope: 'row' }, link ? h('a', { href: `#/datapoints/${encodeURIComponent(dp.id)}` }, breakable(dp.id)) : breakable(dp.id)),
      h('td', { class: 'desc' }, dp.description ?? ''),
      value,
      time,
      h('td', { class: 'col-kind' }, dp.kind === 'actuator' ? h('span', { class: 'tag' }, 'actuator') : ''),
    );
  });
  track(
    onValue((id, msg) => {
      const c = cells.get(id);
      if (!c) return;
      const text = msg.q ? `${msg.q}` : formatValue(msg.v, c.dp.unit);
      c.shown.textContent = text;
      c.shown.title = text;
      c.time.textContent = formatTime(msg.t);
      flash(c.value);
    }),
  );
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'dps' },
      caption ? h('caption', {}, caption) : '',
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          [
            ['Datapoint', ''],
            ['Description', 'desc'],
            ['Value', 'num'],
            ['Measured', 'time'],
            ['Kind', 'col-kind'],
          ].map(([c, cls]) => h('th', { scope: 'col', class: cls || undefined }, c)),
        ),
      ),
      h('tbody', {}, rows),
    ),
  );
}

/** An adapter state as shown: `failed` says that no retry follows. */
function stateText(state) {
  return state === 'failed' ? 'failed (not retried: fix the cause, then restart)' : state;
}

/** Status cards of adapters; the state (and its error) follows the retained status topic live. */
export function adapterCards(statuses, { track, info = true }) {
  if (!statuses.length) return h('p', { class: 'muted' }, 'None configured on this gateway.');
  return h(
    'div',
    { class: 'grid' },
    statuses.map((a) => {
      const state = h('span', { class: `state state-${a.state}` }, stateText(a.state));
      // `failed`: a start error no retry can mend (config, template); the reason stays on the card.
      const error = h('span', { class: 'adapter-error' }, a.error ? a.error.message : '');
      const extra = info && a.info ? Object.entries(a.info).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]) : [];
      const list = kv([
        ['type', a.type],
        ['state', state],
        ['since', formatTime(a.since)],
        ...(a.message ? [['message', a.message]] : []),
        ...(a.error ? [['error', error]] : []),
        ...extra,
      ]);
      const el = card(`${a.id}`, list);
      track(
        onStatus((id, msg) => {
          if (id !== a.id) return;
          state.textContent = stateText(msg.state);
          state.className = `state state-${msg.state}`;
          if (msg.error) {
            error.textContent = msg.error.message;
            if (!error.isConnected) list.append(h('dt', {}, 'error'), h('dd', {}, error));
          } else if (msg.state === 'running') error.textContent = '';
        }),
      );
      return el;
    }),
  );
}

/** A plain table of objects (first 8 keys as columns). */
export function objectTable(rows, caption) {
  if (!rows.length) return h('p', { class: 'muted' }, `No ${caption.toLowerCase()}.`);
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))].slice(0, 8);
  const cell = (v) => (v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      h('caption', {}, caption),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          cols.map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      h(
        'tbody',
        {},
        rows.map((r) =>
          h(
            'tr',
            {},
            cols.map((c) => h('td', {}, cell(r[c]))),
          ),
        ),
      ),
    ),
  );
}

/** Runs `fn` now and every `ms` while the page is shown; errors go to `onError`. */
export function every(ms, fn, { track, onError }) {
  let stopped = false;
  let timer;
  const tick = async () => {
    try {
      await fn();
    } catch (err) {
      if (onError) onError(err);
      else console.error(err);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  track(() => {
    stopped = true;
    clearTimeout(timer);
  });
  return tick();
}

/** Sets text only when it changed, so unchanged cells do not flash or re-layout. */
export function setText(el, text) {
  const s = String(text);
  if (el.textContent === s) return false;
  el.textContent = s;
  return true;
}

export function formatBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  const units = ['B', 'kB', 'MB', 'GB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toLocaleString(undefined, { maximumFractionDigits: i ? 1 : 0 })} ${units[i]}`;
}

/** Whether this user may write (setpoints, charger control): operator and admin. */
export const canWrite = (me) => me?.role === 'operator' || me?.role === 'admin';

/**
 * Sends a setpoint and shows the gateway's answer in `msg`: the applied value, or the
 * refusal's reason verbatim (it says what range or values are allowed).
 */
export async function submitSetpoint(dp, v, { input, msg }) {
  try {
    const r = await post(`/api/datapoints/${encodeURIComponent(dp.id)}/setpoint`, { v });
    msg.textContent = `Applied: ${formatValue(r.v, dp.unit)}`;
    msg.classList.add('good');
    input.removeAttribute('aria-invalid');
  } catch (err) {
    msg.textContent = `Refused: ${err.message}`;
    msg.classList.add('bad');
    input.setAttribute('aria-invalid', 'true');
  }
}

/**
 * A compact setpoint form for one numeric actuator (e.g. a charger's current limit):
 * label, number field, Set button, the gateway's answer in a live region. `key` makes
 * the element ids unique on a page with several of them.
 */
export function numberSetpoint(dp, { me, key, label, current }) {
  const inputId = `sp-${key}`;
  const msgId = `sp-${key}-msg`;
  const input = h('input', {
    id: inputId,
    type: 'number',
    step: 'any',
    inputmode: 'decimal',
    min: dp.min,
    max: dp.max,
    value: current ?? undefined,
    'aria-describedby': msgId,
  });
  const msg = h(
    'p',
    { class: 'form-msg', id: msgId, role: 'status', 'aria-live': 'polite' },
    canWrite(me) ? `${dp.min ?? '−∞'} … ${dp.max ?? '∞'} ${dp.unit ?? ''}`.trim() : 'Your role (viewer) cannot change limits.',
  );
  const button = h('button', { type: 'submit', disabled: !canWrite(me) }, 'Set');
  const form = h('form', { class: 'inline compact', novalidate: true }, h('label', { for: inputId }, label), input, button, msg);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.className = 'form-msg';
    const v = Number(input.value);
    if (input.value.trim() === '' || !Number.isFinite(v)) {
      msg.textContent = 'Enter a number.';
      msg.classList.add('bad');
      input.setAttribute('aria-invalid', 'true');
      return;
    }
    await submitSetpoint(dp, v, { input, msg });
  });
  return form;
}

/** A table from column definitions [{ label, cell(row) → Node|string, class? }]. */
export function table(rows, cols, { caption, id, empty = 'Nothing yet.' } = {}) {
  if (!rows.length) return h('p', { class: 'muted', id }, empty);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { id },
      caption ? h('caption', {}, caption) : '',
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          cols.map((c) => h('th', { scope: 'col', class: c.class }, c.label)),
        ),
      ),
      h(
        'tbody',
        {},
        rows.map((r) =>
          h(
            'tr',
            {},
            cols.map((c, i) => (i === 0 ? h('th', { scope: 'row', class: c.class }, c.cell(r)) : h('td', { class: c.class }, c.cell(r)))),
          ),
        ),
      ),
    ),
  );
}
