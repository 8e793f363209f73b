// Alarms across the fleet (GET /api/alarms): each gateway's alarm datapoints whose newest value
// is active, unacknowledged first; an operator acknowledges one here (POST
// /api/gateways/<gateway>/alarms/<id>/ack: kept and audited at central, not yet sent to the site).
import { get, post } from './api.js';
import { h, formatTime } from './dom.js';
import { every, splitArg, whenSeen } from './ui.js';

const REFRESH_MS = 15_000;
const canAck = (me) => me.role === 'operator' || me.role === 'admin';

function ackCell(a, me, after) {
  if (a.ack)
    return h(
      'span',
      { class: 'acked' },
      `${a.ack.by}${a.ack.where === 'site' ? ' at the site' : ' at central'}, `,
      h('span', { class: 'time' }, formatTime(a.ack.at)),
    );
  if (a.raisedAt === undefined) return '—';
  const msg = h('span', { class: 'form-msg', role: 'status', 'aria-live': 'polite' });
  const button = h('button', { type: 'button', class: 'ack', disabled: !canAck(me), 'aria-label': `Acknowledge ${a.id} of ${a.gateway}` }, 'Acknowledge');
  button.addEventListener('click', async () => {
    button.disabled = true;
    msg.textContent = '';
    try {
      await post(`/api/gateways/${encodeURIComponent(a.gateway)}/alarms/${encodeURIComponent(a.id)}/ack`);
      await after();
    } catch (err) {
      msg.textContent = err.message;
      msg.className = 'form-msg bad';
      button.disabled = false;
    }
  });
  return h('span', { class: 'ack-cell' }, button, msg);
}

/** The table of `items` (FleetAlarm); `showGateway` adds the gateway's column; `after` reloads once one is acknowledged. */
export function alarmTable(items, { me, showGateway = true, after }) {
  if (!items.length) return h('p', { class: 'muted', id: 'alarm-table' }, 'No active alarms.');
  const cols = [...(showGateway ? ['Gateway'] : []), 'Alarm', 'Severity', 'Raised', 'Acknowledged'];
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'alarms', id: 'alarm-table' },
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
        items.map((a) =>
          h(
            'tr',
            { 'data-gateway': a.gateway, 'data-alarm': a.id, class: a.active ? 'active' : 'cleared' },
            showGateway ? h('td', { 'data-label': 'Gateway' }, h('a', { href: `#/site/${encodeURIComponent(a.gateway)}` }, a.gateway)) : '',
            h(
              'th',
              { scope: 'row', 'data-label': 'Alarm' },
              h('span', { class: 'stack' }, h('span', { class: 'alarm-id' }, a.id), h('span', { class: 'alarm-msg' }, a.message)),
            ),
            h('td', { 'data-label': 'Severity' }, h('span', { class: `sev sev-${a.severity}` }, a.active ? a.severity : `${a.severity}, cleared`)),
            h('td', { 'data-label': 'Raised' }, whenSeen(a.raisedAt ?? a.t)),
            h('td', { 'data-label': 'Acknowledged', class: 'c-ack' }, ackCell(a, me, after)),
          ),
        ),
      ),
    ),
  );
}

export async function alarms(main, arg, { track, me }) {
  const [, query] = splitArg(arg);
  const params = new URLSearchParams(query);
  main.append(h('h1', {}, 'Alarms'));
  const summary = h('p', { class: 'muted', id: 'alarm-summary', role: 'status', 'aria-live': 'polite' }, 'Loading…');
  const stateSelect = h('select', { id: 'alarm-state' }, h('option', { value: 'active' }, 'active'), h('option', { value: 'all' }, 'active and cleared'));
  const gateway = h('input', { id: 'alarm-gateway', type: 'search', placeholder: 'gateway id', autocomplete: 'off', value: params.get('gateway') ?? '' });
  const box = h('div');
  const error = h('p', { class: 'error', role: 'alert' });
  main.append(
    summary,
    error,
    h('div', { class: 'toolbar' }, h('label', { for: 'alarm-state' }, 'Show'), stateSelect, h('label', { for: 'alarm-gateway' }, 'Gateway'), gateway),
    canAck(me) ? '' : h('p', { class: 'muted', id: 'ack-note' }, `Your role (${me.role}) cannot acknowledge alarms.`),
    box,
  );
  const load = async () => {
    const q = new URLSearchParams({ state: stateSelect.value });
    if (gateway.value.trim()) q.set('gateway', gateway.value.trim());
    const r = await get(`/api/alarms?${q}`);
    summary.textContent = `${r.active} active, ${r.unacknowledged} unacknowledged${gateway.value.trim() ? ` on ${gateway.value.trim()}` : ' across the fleet'}`;
    error.textContent = '';
    box.replaceChildren(alarmTable(r.items, { me, after: load }));
  };
  stateSelect.addEventListener('change', () => load().catch((err) => (error.textContent = err.message)));
  gateway.addEventListener('change', () => load().catch((err) => (error.textContent = err.message)));
  await every(REFRESH_MS, load, { track, onError: (err) => (error.textContent = `Could not refresh: ${err.message}`) });
}
