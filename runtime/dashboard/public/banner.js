// Alarm banner above every page: the active alarms nobody has acknowledged yet, alarms (red)
// before warnings (amber), newest first. Filled from GET /api/alarms, then kept up to date
// live from the `alarm.<id>` datapoints (live.js onValue: an alarm's state reaches the banner
// as it is stored), read again after the live connection comes back. Operators acknowledge
// here (POST /api/alarms/<id>/ack); viewers see the alarms and the link to the Alarms page.
import { get, post } from './api.js';
import { h, formatTime } from './dom.js';
import { onValue, onConnection } from './live.js';

const PREFIX = 'alarm.';
/** Shown in the banner at most; the rest are counted ("and 3 more") on the link. */
const MAX_SHOWN = 4;

/** Alarms before warnings, newest raise first (as the API orders them). */
export function byUrgency(a, b) {
  return (a.severity === b.severity ? 0 : a.severity === 'alarm' ? -1 : 1) || (b.raisedAt ?? b.since) - (a.raisedAt ?? a.since);
}

/** An alarm datapoint's value as the engine publishes it (runtime/alarms/state.ts); undefined for anything else. */
export function alarmFromValue(id, msg) {
  if (!id.startsWith(PREFIX)) return undefined;
  const v = msg?.v;
  if (v === null || typeof v !== 'object' || typeof v.active !== 'boolean' || typeof v.severity !== 'string') return undefined;
  return { ...v, id: id.slice(PREFIX.length) };
}

export function ackPath(id) {
  return `/api/alarms/${encodeURIComponent(id)}/ack`;
}

export function alarmBanner({ track, me }) {
  const canAck = me.role === 'operator' || me.role === 'admin';
  const list = h('ul', { class: 'alarm-list' });
  const more = h('a', { href: '#/alarms', class: 'alarm-more' }, 'Alarms page');
  const box = h('section', { class: 'alarm-banner', hidden: true, 'aria-label': 'Active alarms', 'aria-live': 'polite' }, list, more);
  const alarms = new Map();
  /** When each alarm last came in live: a REST answer that left before it does not overwrite it. */
  const liveAt = new Map();
  const errors = new Map();

  const item = (a) => {
    const label = a.severity === 'alarm' ? 'Alarm' : 'Warning';
    const button = canAck
      ? h(
          'button',
          {
            type: 'button',
            class: 'ack',
            'aria-label': `Acknowledge: ${a.message}`,
            onclick: async (ev) => {
              ev.currentTarget.disabled = true;
              try {
                const state = await post(ackPath(a.id));
                alarms.set(a.id, { ...a, ...state });
                errors.delete(a.id);
              } catch (err) {
                errors.set(a.id, err.message);
              }
              render();
            },
          },
          'Acknowledge',
        )
      : '';
    return h(
      'li',
      { class: `alarm-item sev-${a.severity === 'alarm' ? 'alarm' : 'warning'}`, 'data-alarm': a.id },
      h('span', { class: 'sev' }, label),
      h('span', { class: 'msg' }, a.message),
      h('time', { class: 'since', datetime: new Date(a.raisedAt ?? a.since).toISOString() }, `since ${formatTime(a.raisedAt ?? a.since)}`),
      button,
      errors.has(a.id) ? h('span', { class: 'ack-error', role: 'alert' }, errors.get(a.id)) : '',
    );
  };

  const render = () => {
    const open = [...alarms.values()].filter((a) => a.active && !a.acknowledged).sort(byUrgency);
    box.hidden = open.length === 0;
    list.replaceChildren(...open.slice(0, MAX_SHOWN).map(item));
    const hidden = open.length - MAX_SHOWN;
    more.textContent = hidden > 0 ? `${hidden} more on the Alarms page` : 'Alarms page';
  };

  const load = async () => {
    const started = Date.now();
    try {
      const r = await get('/api/alarms');
      const fresh = new Map(r.active.map((a) => [a.id, a]));
      for (const id of [...alarms.keys()]) if (!fresh.has(id) && !((liveAt.get(id) ?? 0) > started)) alarms.delete(id);
      for (const [id, a] of fresh) if (!((liveAt.get(id) ?? 0) > started)) alarms.set(id, a);
      render();
    } catch (err) {
      // A 401 sends the app to the login screen; anything else: the live updates still come.
      console.debug('alarm banner: /api/alarms failed', err);
    }
  };

  track(
    onValue((id, msg) => {
      const a = alarmFromValue(id, msg);
      if (!a) return;
      liveAt.set(a.id, Date.now());
      alarms.set(a.id, a);
      render();
    }),
  );
  let wasUp;
  track(
    onConnection((up) => {
      // Back after a drop: what changed meanwhile may not have come live.
      if (up && wasUp === false) void load();
      wasUp = up;
    }),
  );
  void load();
  return box;
}
