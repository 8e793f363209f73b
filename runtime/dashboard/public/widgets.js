// Building blocks shared by the pages: cards, key/value lists, live datapoint tables,
// adapter status cards. Every live listener is handed to `track`, which the page's
// cleanup calls when the page is left.
import { get, post, ApiError } from './api.js';
import { h, formatValue, formatTime, flash } from './dom.js';
import { onValue, onStatus } from './live.js';
import { statusInfo, formatBytes } from './status-view.js';

export { formatBytes };

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
    const text = formatValue(dp.latest?.v, dp.unit, dp.meta);
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
      const text = msg.q ? `${msg.q}` : formatValue(msg.v, c.dp.unit, c.dp.meta);
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

/** The adapter types' status schemas (GET /api/adapters/types), asked once per page load. */
let typesOnce;
function adapterTypes() {
  typesOnce ??= optionalJson('/api/adapters/types')
    .then((r) => r?.types ?? {})
    .catch((err) => {
      typesOnce = undefined; // asked again on the next page
      console.warn('adapter types not loaded: status shown by key', err);
      return {};
    });
  return typesOnce;
}

/**
 * Status cards of adapters: state, since, message and error, then the adapter's status `info`
 * as its type's status schema describes it (status-view.js: labels, units, words, tables).
 * Everything follows the retained status topic live. `types` (the `types` of GET
 * /api/adapters) saves asking for the schemas.
 */
export function adapterCards(statuses, { track, info = true, types }) {
  if (!statuses.length) return h('p', { class: 'muted' }, 'None configured on this gateway.');
  const schemas = types ? Promise.resolve(types) : adapterTypes();
  return h(
    'div',
    { class: 'grid adapters' },
    statuses.map((a) => {
      const state = h('span', { class: `state state-${a.state}` }, stateText(a.state));
      const since = h('span', { class: 'time' }, formatTime(a.since));
      const message = h('span', { class: 'adapter-message' }, a.message ?? '');
      // `failed`: a start error no retry can mend (config, template); the reason stays on the card.
      const error = h('span', { class: 'adapter-error' }, a.error ? a.error.message : '');
      const typeText = h('span', {}, a.type);
      const list = kv([
        ['type', typeText],
        ['state', state],
        ['since', since],
        ['message', message],
        ['error', error],
      ]);
      // Rows without content take no room (message and error come and go with the status).
      const rowOf = (el) => [el.parentElement.previousElementSibling, el.parentElement];
      const showRow = (el) => {
        for (const node of rowOf(el)) node.hidden = el.textContent === '';
      };
      showRow(message);
      showRow(error);
      const details = h('div', { class: 'adapter-info', 'aria-live': 'off' });
      let schema;
      let shown = '';
      const render = (payload) => {
        if (!info) return;
        const json = JSON.stringify(payload ?? {});
        if (json === shown) return;
        shown = json;
        details.replaceChildren(payload && Object.keys(payload).length ? statusInfo(payload, schema) : '');
      };
      let latest = a.info;
      let ready = false;
      schemas.then((byType) => {
        const type = byType[a.type];
        schema = type?.statusSchema;
        if (type?.description) typeText.title = type.description;
        ready = true;
        render(latest);
      });
      const el = h('section', { class: 'card adapter', 'aria-label': a.id, dataset: { adapter: a.id } }, h('h2', {}, a.id), list, details);
      track(
        onStatus((id, msg) => {
          if (id !== a.id) return;
          state.textContent = stateText(msg.state);
          state.className = `state state-${msg.state}`;
          if (msg.since) since.textContent = formatTime(msg.since);
          message.textContent = msg.message ?? '';
          error.textContent = msg.error ? msg.error.message : msg.state === 'running' ? '' : error.textContent;
          showRow(message);
          showRow(error);
          latest = msg.info;
          if (ready) render(latest);
        }),
      );
      return el;
    }),
  );
}

/** Where the Node-RED editor is: undefined until asked, null when flows are off (asked once per page load). */
let flowsEditor;
let flowsAsked;

/**
 * The top navigation's `Flows ↗` link to the Node-RED editor, for admins (the editor is
 * theirs only) on a gateway whose flows are on: GET /api/system/flows is asked once per page
 * load, not on every page; hidden until it says so.
 */
export function flowsNavItem(me) {
  if (me?.role !== 'admin') return '';
  const link = h('a', { href: flowsEditor ?? '/flows/', target: '_blank', rel: 'noopener', title: 'Node-RED flow editor (new tab)' }, 'Flows ↗');
  const item = h('li', { class: 'nav-flows', hidden: !flowsEditor }, link);
  if (flowsEditor === undefined) {
    flowsAsked ??= optionalJson('/api/system/flows').then(
      (r) => {
        flowsEditor = r?.enabled ? r.editor : null;
      },
      (err) => {
        flowsAsked = undefined; // asked again on the next page
        console.warn('flows state not known: no Flows link', err);
      },
    );
    flowsAsked.then(() => {
      if (!flowsEditor) return;
      link.href = flowsEditor;
      item.hidden = false;
    });
  }
  return item;
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

/** Whether this user may write (setpoints, charger control): operator and admin. */
export const canWrite = (me) => me?.role === 'operator' || me?.role === 'admin';

/**
 * Sends a setpoint and shows the gateway's answer in `msg`: the applied value, or the
 * refusal's reason verbatim (it says what range or values are allowed).
 */
export async function submitSetpoint(dp, v, { input, msg }) {
  try {
    const r = await post(`/api/datapoints/${encodeURIComponent(dp.id)}/setpoint`, { v });
    msg.textContent = `Applied: ${formatValue(r.v, dp.unit, dp.meta)}`;
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
