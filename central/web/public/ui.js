// Small building blocks of the web UI: cards, key/value lists, times relative to now, gateway
// states. (The gateway dashboard's widgets.js has the same cards but pulls in its live MQTT
// client; central has no live connection.)
import { h, formatTime } from './dom.js';

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

/** `just now`, `42 s ago`, `7 min ago`, `3 h ago`, `12 d ago`; `in …` for a time ahead of our clock. */
export function relativeTime(t, now = Date.now()) {
  if (!t) return 'never';
  const s = Math.round((now - t) / 1000);
  const abs = Math.abs(s);
  const text =
    abs < 5
      ? ''
      : abs < 90
        ? `${abs} s`
        : abs < 5400
          ? `${Math.round(abs / 60)} min`
          : abs < 129600
            ? `${Math.round(abs / 3600)} h`
            : `${Math.round(abs / 86400)} d`;
  if (!text) return 'just now';
  return s >= 0 ? `${text} ago` : `in ${text}`;
}

/** A time as a person reads it twice: how long ago, and when (local time). */
export function whenSeen(t) {
  if (!t) return h('span', { class: 'muted' }, 'never');
  return h('span', { class: 'seen' }, h('span', { class: 'rel' }, relativeTime(t)), ' ', h('span', { class: 'abs muted time' }, formatTime(t)));
}

/** What each gateway state means, for the badge's title and the legend. */
export const STATES = {
  online: 'heard from recently over MQTT or HTTP',
  satellite: 'last heard from over its Iridium modem',
  offline: 'silent too long, or its MQTT will said so',
  never: 'configured, nothing received yet',
};

export function stateBadge(state) {
  return h('span', { class: `state-badge st-${state}`, title: STATES[state] ?? '' }, state);
}

/** Runs `fn` now and every `ms` while the page is shown: the gateway dashboard's. */
export { every } from './widgets.js';

/** The hash of a page with a query (`#/site/a?dp=x`), and its parts. */
export function splitArg(arg) {
  const i = arg.indexOf('?');
  return i < 0 ? [arg, ''] : [arg.slice(0, i), arg.slice(i + 1)];
}
