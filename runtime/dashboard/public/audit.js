// Audit: who did what on this gateway (GET /api/audit, admins only), newest first. Each entry
// names its actor (user alice, token deploybot, mqtt client, schedule, upstream:…, adapter:…),
// the target, the values, the outcome and the client address. "Load older" pages back with
// `before` (the oldest id shown); the action filter asks the gateway again.
import { get } from './api.js';
import { h, formatTime } from './dom.js';

const PAGE = 100;

const ACTION_LABELS = {
  setpoint: 'Setpoint',
  'charger.command': 'Charger command',
  'user.add': 'User added',
  'user.change': 'User changed',
  'user.remove': 'User removed',
  'token.create': 'Token created',
  'token.revoke': 'Token revoked',
  'password.change': 'Own password changed',
  'flows.deploy': 'Flows deployed',
  'flows.change': 'Flows changed',
  'backup.download': 'Backup downloaded',
  'backup.restore': 'Backup restored',
  'datapoint.delete': 'Datapoint deleted',
  'alarm.ack': 'Alarm acknowledged',
  // Outpost Central audits logins (runtime/auth SecurityOptions.auditLogins).
  login: 'Login',
  'system.restart': 'Gateway restarted',
};
const actionLabel = (a) => ACTION_LABELS[a] ?? a;

/** `v: 22.5 · min: 5` — the values in one line, exactly as recorded (no rounding); objects as JSON. */
function detailsText(details) {
  if (!details) return '';
  return Object.entries(details)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`)
    .join(' · ');
}

function row(e) {
  const outcome =
    e.outcome === 'ok'
      ? h('span', { class: 'state state-ok' }, 'ok')
      : h('span', { class: 'state state-error', title: e.error?.message ?? '' }, `refused${e.error ? ` (${e.error.code})` : ''}`);
  // One wrapper per cell: on a phone the cell is a two-column grid (label, content).
  const cell = (label, attrs, ...children) => h('td', { 'data-label': label, ...attrs }, h('div', {}, ...children));
  return h(
    'tr',
    { 'data-id': String(e.id), class: e.outcome === 'ok' ? '' : 'refused' },
    cell('Time', { class: 'time' }, h('time', { datetime: new Date(e.t).toISOString() }, formatTime(e.t))),
    cell('Who', {}, e.by, e.address ? h('span', { class: 'muted addr' }, e.address) : ''),
    cell('Action', {}, actionLabel(e.action)),
    cell('Target', { class: 'mono' }, e.target ?? '—'),
    cell('Details', { class: 'details' }, detailsText(e.details), e.outcome !== 'ok' && e.error ? h('span', { class: 'reason' }, e.error.message) : ''),
    cell('Outcome', {}, outcome),
  );
}

export async function audit(main, _arg, { me }) {
  main.append(h('h1', {}, 'Audit'));
  if (me.role !== 'admin') {
    main.append(h('p', { class: 'error' }, 'Only admins read the audit trail.'));
    return;
  }
  const filter = h('select', { id: 'audit-action' }, h('option', { value: '' }, 'All actions'));
  const refresh = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const body = h('tbody');
  const tableBox = h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'audit', id: 'audit-table' },
      h('caption', {}, 'Newest first'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Time', 'Who', 'Action', 'Target', 'Details', 'Outcome'].map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      body,
    ),
  );
  const older = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load older');
  main.append(h('div', { class: 'toolbar' }, h('label', { for: 'audit-action' }, 'Action'), filter, refresh, status), tableBox, h('p', {}, older));

  let oldest;
  let shown = 0;
  const knownActions = new Set();
  const load = async (append) => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (filter.value) q.set('action', filter.value);
    if (append && oldest !== undefined) q.set('before', String(oldest));
    status.textContent = 'Loading…';
    older.disabled = true;
    try {
      const r = await get(`/api/audit?${q}`);
      for (const a of [...Object.keys(ACTION_LABELS), ...r.actions]) {
        if (knownActions.has(a)) continue;
        knownActions.add(a);
        filter.append(h('option', { value: a }, actionLabel(a)));
      }
      if (!append) {
        body.replaceChildren();
        shown = 0;
        oldest = undefined;
      }
      body.append(...r.items.map(row));
      shown += r.items.length;
      if (r.items.length) oldest = r.items[r.items.length - 1].id;
      older.hidden = !r.more;
      status.textContent = `${shown} ${shown === 1 ? 'entry' : 'entries'}${r.dropped ? ` · ${r.dropped} not written to disk (see the gateway log)` : ''}`;
      if (!shown) body.append(h('tr', {}, h('td', { colspan: '6', class: 'muted' }, 'Nothing recorded yet.')));
    } finally {
      older.disabled = false;
    }
  };
  filter.addEventListener('change', () => load(false).catch((err) => (status.textContent = err.message)));
  refresh.addEventListener('click', () => load(false).catch((err) => (status.textContent = err.message)));
  older.addEventListener('click', () => load(true).catch((err) => (status.textContent = err.message)));
  await load(false);
}
