// A site's commands (central/README.md "Commands"): the form that sends a setpoint or a
// schedule (operators and admins; viewers see why they cannot), and the site's commands with
// their states as the gateway acknowledged them, refreshed while the page is shown.
import { get, post } from './api.js';
import { h, formatValue } from './dom.js';
import { card, every, whenSeen } from './ui.js';

const REFRESH_MS = 3000;

/** `"42"` → 42, `"true"` → true; anything else stays the text the operator typed. */
function typedValue(text) {
  const t = text.trim();
  if (t === 'true' || t === 'false') return t === 'true';
  const n = Number(t);
  return t !== '' && Number.isFinite(n) ? n : t;
}

/** What the command asked, in a few words. */
function asked(c) {
  if (c.type === 'setpoint') return `${c.body.id} = ${formatValue(c.body.v)}`;
  if (c.type === 'schedule') return `${c.body.id}: ${c.body.entries?.length ?? 0} entr${c.body.entries?.length === 1 ? 'y' : 'ies'}`;
  return c.body.id ?? '';
}

/** The gateway's answer: its result, or its refusal code and message. */
function outcome(c) {
  if (c.ack?.error) return h('span', { class: 'cmd-reason' }, `${c.ack.error.code}${c.ack.error.message ? `: ${c.ack.error.message}` : ''}`);
  if (c.state === 'expired') return h('span', { class: 'muted' }, 'not delivered before it expired');
  return c.sends.length ? `via ${c.sends.map((s) => s.via).join(', ')}` : '';
}

function commandTable(items) {
  if (!items.length) return h('p', { class: 'muted', id: 'cmd-table' }, 'No commands sent to this site yet.');
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'commands', id: 'cmd-table' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Sent', 'Command', 'State', 'Answer', 'By'].map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      h(
        'tbody',
        {},
        items.map((c) =>
          h(
            'tr',
            { 'data-command': c.id, 'data-state': c.state },
            h('td', { 'data-label': 'Sent' }, whenSeen(c.createdAt)),
            h('th', { scope: 'row', 'data-label': 'Command' }, h('span', { class: 'stack' }, h('span', {}, c.type), h('span', { class: 'muted' }, asked(c)))),
            h('td', { 'data-label': 'State' }, h('span', { class: `cmd-state cmd-${c.state}` }, c.state)),
            h('td', { 'data-label': 'Answer' }, outcome(c)),
            h('td', { 'data-label': 'By', class: 'muted' }, c.by ?? ''),
          ),
        ),
      ),
    ),
  );
}

/** The form; `after` reloads the list once a command is queued. */
function sendForm(gateway, datapoints, me, after) {
  const writer = me.role === 'operator' || me.role === 'admin';
  const type = h('select', { id: 'cmd-type', name: 'type' }, h('option', { value: 'setpoint' }, 'Setpoint'), h('option', { value: 'schedule' }, 'Schedule'));
  const list = h(
    'datalist',
    { id: 'cmd-dps' },
    datapoints.map((d) => h('option', { value: d.id })),
  );
  const dp = h('input', { id: 'cmd-dp', name: 'id', required: true, list: 'cmd-dps', autocomplete: 'off', placeholder: 'datapoint id' });
  const value = h('input', { id: 'cmd-value', name: 'v', required: true, inputmode: 'decimal', autocomplete: 'off', placeholder: 'value' });
  const at = h('input', { id: 'cmd-at', name: 'at', type: 'datetime-local' });
  const atRow = h('label', { class: 'cmd-at', hidden: true }, 'At ', at);
  const expires = h(
    'select',
    { id: 'cmd-expires', name: 'expires' },
    [1, 6, 24, 72].map((hrs) => h('option', { value: String(hrs), ...(hrs === 24 ? { selected: true } : {}) }, `${hrs} h`)),
  );
  const submit = h('button', { type: 'submit', id: 'cmd-send', disabled: !writer }, 'Send');
  const msg = h('p', { class: 'form-msg', id: 'cmd-msg', role: 'status', 'aria-live': 'polite' }, writer ? '' : `A ${me.role} cannot send commands.`);
  type.addEventListener('change', () => {
    atRow.hidden = type.value !== 'schedule';
    at.required = type.value === 'schedule';
  });
  const form = h(
    'form',
    { class: 'cmd-form', id: 'cmd-form' },
    h('label', {}, 'Type ', type),
    h('label', {}, 'Datapoint ', dp),
    list,
    h('label', {}, 'Value ', value),
    atRow,
    h('label', {}, 'Expires after ', expires),
    submit,
    msg,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = typedValue(value.value);
    const body = type.value === 'setpoint' ? { id: dp.value.trim(), v } : { id: dp.value.trim(), entries: [{ at: new Date(at.value).getTime(), v }] };
    submit.disabled = true;
    msg.textContent = 'Sending…';
    try {
      const r = await post('/api/commands', {
        target: { gateway },
        type: type.value,
        body,
        expiresAt: Date.now() + Number(expires.value) * 3600_000,
      });
      msg.textContent = `Queued (${r.items[0].id}): it is sent over the first link of the site that is up.`;
      await after();
    } catch (err) {
      msg.textContent = `Not sent: ${err.message}`;
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/** The "Commands" card of a site's page. */
export function commandsCard(gateway, datapoints, { me, track }) {
  const box = h('div', { id: 'cmd-list' });
  const reload = async () => {
    const r = await get(`/api/commands?gateway=${encodeURIComponent(gateway)}&limit=20`);
    box.replaceChildren(commandTable(r.items));
  };
  every(REFRESH_MS, reload, { track, onError: (err) => box.replaceChildren(h('p', { class: 'error' }, `Commands: ${err.message}`)) });
  return card('Commands', sendForm(gateway, datapoints, me, reload), box);
}
