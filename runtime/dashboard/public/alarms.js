// Alarms page: the active alarms (acknowledge, operators), the recently cleared ones, the
// configured rules (GET /api/alarms, read again when an `alarm.<id>` datapoint changes) and the
// event log (GET /api/events, newest first: severity and source filters, Load older pages back
// with `before`, the oldest id shown).
import { get, post } from './api.js';
import { h, formatTime } from './dom.js';
import { onValue } from './live.js';
import { ackPath, alarmFromValue } from './banner.js';

const PAGE = 50;
const SEVERITY_LABEL = { alarm: 'Alarm', warning: 'Warning', info: 'Info' };
const TYPE_LABEL = { threshold: 'Threshold', stale: 'Stale', adapter: 'Adapter' };

const cell = (label, attrs, ...children) => h('td', { 'data-label': label, ...attrs }, h('div', {}, ...children));
const when = (t) => h('time', { datetime: new Date(t).toISOString() }, formatTime(t));
const sev = (s) => h('span', { class: `sev-tag sev-${s}` }, SEVERITY_LABEL[s] ?? s);

function table(id, caption, columns, cls = 'alarms') {
  const body = h('tbody');
  const el = h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: cls, id },
      h('caption', {}, caption),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          columns.map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      body,
    ),
  );
  return { el, body };
}

function empty(body, columns, text) {
  body.replaceChildren(h('tr', {}, h('td', { colspan: String(columns), class: 'muted' }, text)));
}

export async function alarms(main, _arg, { track, me }) {
  const canAck = me.role === 'operator' || me.role === 'admin';
  main.append(h('h1', {}, 'Alarms'));
  const activeMsg = h('p', { class: 'form-msg', role: 'status', 'aria-live': 'polite' });
  const active = table('alarms-active', 'Active, alarms first', ['Severity', 'Alarm', 'Since', 'Acknowledged']);
  const cleared = table('alarms-cleared', 'Recently cleared, newest first', ['Severity', 'Alarm', 'Raised', 'Cleared', 'Acknowledged']);
  const rules = table('alarm-rules', 'alarms.rules in the configuration', ['Rule', 'Type', 'Checks', 'Severity', 'State']);

  const ackCell = (a) => {
    if (a.acknowledged) return cell('Acknowledged', {}, `${a.ackedBy ?? ''}`, a.ackedAt ? h('span', { class: 'muted when' }, formatTime(a.ackedAt)) : '');
    if (!canAck) return cell('Acknowledged', { class: 'muted' }, 'not yet');
    const button = h('button', { type: 'button', class: 'ack', 'aria-label': `Acknowledge ${a.id}` }, 'Acknowledge');
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await post(ackPath(a.id));
        activeMsg.className = 'form-msg good';
        activeMsg.textContent = `Acknowledged: ${a.message}`;
      } catch (err) {
        activeMsg.className = 'form-msg bad';
        activeMsg.textContent = err.message;
      }
      await loadAlarms();
    });
    return cell('Acknowledged', {}, button);
  };
  const name = (a) =>
    cell(
      'Alarm',
      { class: 'alarm-name' },
      h('span', { class: 'msg' }, a.message),
      h('span', { class: 'muted id' }, `${a.id} · ${a.source === 'flows' ? 'from flows' : (a.rule ?? 'rule')}`),
    );

  const loadAlarms = async () => {
    const r = await get('/api/alarms');
    if (r.active.length === 0) empty(active.body, 4, 'No active alarms.');
    else
      active.body.replaceChildren(
        ...r.active.map((a) =>
          h(
            'tr',
            { 'data-alarm': a.id, class: a.acknowledged ? 'acked' : 'open' },
            cell('Severity', {}, sev(a.severity)),
            name(a),
            cell('Since', { class: 'time' }, when(a.raisedAt ?? a.since)),
            ackCell(a),
          ),
        ),
      );
    if (r.cleared.length === 0) empty(cleared.body, 5, 'Nothing cleared recently.');
    else
      cleared.body.replaceChildren(
        ...r.cleared.map((a) =>
          h(
            'tr',
            { 'data-alarm': a.id },
            cell('Severity', {}, sev(a.severity)),
            name(a),
            cell('Raised', { class: 'time' }, when(a.raisedAt)),
            cell('Cleared', { class: 'time' }, when(a.clearedAt ?? a.since)),
            ackCell(a),
          ),
        ),
      );
    if (r.rules.length === 0) empty(rules.body, 5, 'No rules configured (alarms.rules); flows may still raise alarms.');
    else
      rules.body.replaceChildren(
        ...r.rules.map((rule) =>
          h(
            'tr',
            {},
            cell('Rule', { class: 'mono' }, rule.id),
            cell('Type', {}, TYPE_LABEL[rule.type] ?? rule.type),
            cell('Checks', {}, rule.description, rule.message ? h('span', { class: 'muted id' }, `“${rule.message}”`) : ''),
            cell('Severity', {}, sev(rule.severity)),
            cell('State', {}, h('span', { class: rule.active ? 'state state-error' : 'state state-ok' }, rule.active ? 'active' : 'normal')),
          ),
        ),
      );
  };

  // The event log.
  const severity = h(
    'select',
    { id: 'events-severity' },
    h('option', { value: '' }, 'All'),
    h('option', { value: 'warning' }, 'Warnings and alarms'),
    h('option', { value: 'alarm' }, 'Alarms only'),
  );
  const source = h('select', { id: 'events-source' }, h('option', { value: '' }, 'All sources'));
  const refresh = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const log = table('events-table', 'Newest first', ['Time', 'Severity', 'Source', 'Event'], 'events');
  const older = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load older');
  const knownSources = new Set();
  let oldest;
  let shown = 0;
  const loadEvents = async (append) => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (severity.value) q.set('severity', severity.value);
    if (source.value) q.set('source', source.value);
    if (append && oldest !== undefined) q.set('before', String(oldest));
    status.textContent = 'Loading…';
    older.disabled = true;
    try {
      const r = await get(`/api/events?${q}`);
      for (const s of r.sources) {
        if (knownSources.has(s)) continue;
        knownSources.add(s);
        source.append(h('option', { value: s }, s));
      }
      if (!append) {
        log.body.replaceChildren();
        shown = 0;
        oldest = undefined;
      }
      log.body.append(
        ...r.items.map((e) =>
          h(
            'tr',
            { 'data-id': String(e.id), class: `ev-${e.severity}` },
            cell('Time', { class: 'time' }, when(e.t)),
            cell('Severity', {}, sev(e.severity)),
            cell('Source', { class: 'mono' }, e.source),
            cell(
              'Event',
              { class: 'event' },
              h('span', { class: 'msg' }, e.message),
              h('span', { class: 'muted id' }, e.kind, e.suppressedBefore ? ` · ${e.suppressedBefore} like it left out before` : ''),
            ),
          ),
        ),
      );
      shown += r.items.length;
      if (r.items.length) oldest = r.items[r.items.length - 1].id;
      older.hidden = !r.more;
      status.textContent = `${shown} ${shown === 1 ? 'event' : 'events'}${r.dropped ? ` · ${r.dropped} not written to disk (see the gateway log)` : ''}`;
      if (!shown) empty(log.body, 4, 'Nothing recorded.');
    } finally {
      older.disabled = false;
    }
  };
  const failed = (err) => {
    status.textContent = err.message;
  };
  severity.addEventListener('change', () => loadEvents(false).catch(failed));
  source.addEventListener('change', () => loadEvents(false).catch(failed));
  refresh.addEventListener('click', () => loadEvents(false).catch(failed));
  older.addEventListener('click', () => loadEvents(true).catch(failed));

  main.append(
    h('h2', { class: 'section' }, 'Active'),
    activeMsg,
    active.el,
    h('h2', { class: 'section' }, 'Recently cleared'),
    cleared.el,
    h('h2', { class: 'section' }, 'Rules'),
    rules.el,
    h('h2', { class: 'section' }, 'Event log'),
    h(
      'div',
      { class: 'toolbar' },
      h('label', { for: 'events-severity' }, 'Severity'),
      severity,
      h('label', { for: 'events-source' }, 'Source'),
      source,
      refresh,
      status,
    ),
    log.el,
    h('p', {}, older),
  );

  // An alarm changed (live): the lists again, and the newest events unless older pages are open.
  let timer;
  track(
    onValue((id, msg) => {
      if (!alarmFromValue(id, msg)) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        loadAlarms().catch((err) => (activeMsg.textContent = err.message));
        if (shown <= PAGE) loadEvents(false).catch(failed);
      }, 300);
    }),
  );
  track(() => clearTimeout(timer));
  await Promise.all([loadAlarms(), loadEvents(false)]);
}
