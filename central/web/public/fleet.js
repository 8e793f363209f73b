// The Fleet page: every gateway (GET /api/gateways) with its state, when it was last heard
// from and how, its backlog and catch-up estimate as it reported them, its storage alarm, its
// active alarms (GET /api/alarms) and satellite credits; sortable, filtered by tag, state or
// text; and the map. Refreshed every 15 s.
import { get } from './api.js';
import { h, formatDuration } from './dom.js';
import { fleetMap } from './map.js';
import { card, every, stateBadge, STATES, whenSeen } from './ui.js';

const REFRESH_MS = 15_000;
const STATE_ORDER = { offline: 0, satellite: 1, online: 2, never: 3 };

/** The backlog as the gateway reported it: records, and the catch-up estimate (−1: not converging). */
export function backlogText(g) {
  const records = g.backlog?.records?.v;
  if (records === undefined || records === null) return '—';
  const eta = g.backlog?.catchUpSeconds?.v;
  const etaText = records === 0 ? '' : eta === undefined || eta === null ? '' : eta < 0 ? ' · not catching up' : ` · ETA ${formatDuration(eta)}`;
  return `${records.toLocaleString()} records${etaText}`;
}

/** Credits of the MO messages central received: today and the last 30 days. */
export function creditsText(g) {
  const today = g.satellite?.received?.today?.credits ?? 0;
  const month = g.satellite?.received?.last30Days?.credits ?? 0;
  return today === 0 && month === 0 && !g.satellite?.imei ? '—' : `${today} / ${month}`;
}

/** The storage alarm the gateway reported (its storage read-only), or ok. */
export function storageText(g) {
  const s = g.status?.storage;
  return s && s.state !== 'ok' ? s.state : 'ok';
}

export function alarmsText(counts) {
  if (!counts || counts.active === 0) return '0';
  return counts.unacknowledged ? `${counts.active} (${counts.unacknowledged} unacknowledged)` : String(counts.active);
}

const COLUMNS = [
  { key: 'gateway', label: 'Gateway', sort: (a, b) => a.id.localeCompare(b.id) },
  { key: 'state', label: 'State', sort: (a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || a.id.localeCompare(b.id) },
  { key: 'seen', label: 'Last seen', sort: (a, b) => (b.lastSeen ?? 0) - (a.lastSeen ?? 0) },
  { key: 'link', label: 'Link' },
  { key: 'backlog', label: 'Backlog', sort: (a, b) => (b.backlog?.records?.v ?? -1) - (a.backlog?.records?.v ?? -1) },
  { key: 'storage', label: 'Storage' },
  { key: 'alarms', label: 'Alarms', sort: (a, b, counts) => (counts[b.id]?.active ?? 0) - (counts[a.id]?.active ?? 0) || a.id.localeCompare(b.id) },
  {
    key: 'credits',
    label: 'Credits today / 30 d',
    sort: (a, b) => (b.satellite?.received?.last30Days?.credits ?? 0) - (a.satellite?.received?.last30Days?.credits ?? 0),
  },
];

function cell(key, g, counts) {
  switch (key) {
    case 'gateway':
      // One element: the stacked (phone) layout puts each child of a cell in its own grid cell.
      return h(
        'span',
        { class: 'stack' },
        h('a', { href: `#/site/${encodeURIComponent(g.id)}`, class: 'gw-id' }, g.id),
        g.name ? h('span', { class: 'gw-name muted' }, g.name) : '',
        g.tags.length
          ? h(
              'span',
              { class: 'tags' },
              g.tags.map((t) => h('span', { class: 'tag' }, t)),
            )
          : '',
      );
    case 'state':
      return stateBadge(g.state);
    case 'seen':
      return whenSeen(g.lastSeen);
    case 'link':
      return g.link ?? '—';
    case 'backlog':
      return backlogText(g);
    case 'storage': {
      const s = storageText(g);
      return s === 'ok' ? s : h('span', { class: 'bad-text', title: g.status?.storage?.error ?? '' }, s);
    }
    case 'alarms': {
      const c = counts[g.id];
      return h('a', { href: `#/alarms?gateway=${encodeURIComponent(g.id)}`, class: c?.unacknowledged ? 'bad-text' : undefined }, alarmsText(c));
    }
    case 'credits':
      return creditsText(g);
  }
  return '';
}

export async function fleet(main, _arg, { track }) {
  main.append(h('h1', {}, 'Fleet'));
  const summary = h('p', { class: 'muted', id: 'fleet-summary', role: 'status', 'aria-live': 'polite' }, 'Loading…');
  const tag = h('select', { id: 'filter-tag' }, h('option', { value: '' }, 'all tags'));
  const state = h(
    'select',
    { id: 'filter-state' },
    h('option', { value: '' }, 'all states'),
    Object.keys(STATES).map((s) => h('option', { value: s }, s)),
  );
  const search = h('input', { id: 'filter-text', type: 'search', placeholder: 'id or name', autocomplete: 'off' });
  // The column headers sort too; on a phone the table is a list of cards without them.
  const sortSelect = h(
    'select',
    { id: 'sort' },
    COLUMNS.filter((c) => c.sort).flatMap((c) => [h('option', { value: c.key }, c.label), h('option', { value: `${c.key}:desc` }, `${c.label}, reversed`)]),
  );
  const mapBox = h('div');
  const tableBox = h('div');
  const error = h('p', { class: 'error', role: 'alert' });
  main.append(
    summary,
    error,
    h(
      'div',
      { class: 'toolbar' },
      h('label', { for: 'filter-tag' }, 'Tag'),
      tag,
      h('label', { for: 'filter-state' }, 'State'),
      state,
      h('label', { for: 'filter-text' }, 'Search'),
      search,
      h('label', { for: 'sort' }, 'Sort by'),
      sortSelect,
    ),
    card('Map', mapBox),
    card('Gateways', tableBox),
  );

  let items = [];
  let counts = {};
  let sortKey = 'state';
  let descending = false;
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const shown = items.filter(
      (g) =>
        (!tag.value || g.tags.includes(tag.value)) &&
        (!state.value || g.state === state.value) &&
        (!q || g.id.includes(q) || (g.name ?? '').toLowerCase().includes(q)),
    );
    const column = COLUMNS.find((c) => c.key === sortKey);
    sortSelect.value = descending ? `${sortKey}:desc` : sortKey;
    shown.sort((a, b) => column.sort(a, b, counts) * (descending ? -1 : 1));
    mapBox.replaceChildren(fleetMap(shown));
    const head = COLUMNS.map((c) => {
      if (!c.sort) return h('th', { scope: 'col' }, c.label);
      const sorted = c.key === sortKey;
      const button = h('button', { type: 'button', class: 'sort', 'data-sort': c.key }, c.label, sorted ? (descending ? ' ▼' : ' ▲') : '');
      button.addEventListener('click', () => {
        descending = sorted ? !descending : false;
        sortKey = c.key;
        render();
      });
      return h('th', { scope: 'col', 'aria-sort': sorted ? (descending ? 'descending' : 'ascending') : undefined }, button);
    });
    tableBox.replaceChildren(
      shown.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'fleet', id: 'fleet-table' },
              h('caption', {}, `${shown.length} of ${items.length} gateways`),
              h('thead', {}, h('tr', {}, head)),
              h(
                'tbody',
                {},
                shown.map((g) =>
                  h(
                    'tr',
                    { 'data-gateway': g.id },
                    COLUMNS.map((c, i) =>
                      h(i === 0 ? 'th' : 'td', { class: `c-${c.key}`, 'data-label': c.label, scope: i === 0 ? 'row' : undefined }, cell(c.key, g, counts)),
                    ),
                  ),
                ),
              ),
            ),
          )
        : h(
            'p',
            { class: 'muted', id: 'fleet-table' },
            items.length ? 'No gateway matches the filter.' : 'No gateways yet: list them under gateways: in central.yaml.',
          ),
    );
    const by = {};
    for (const g of items) by[g.state] = (by[g.state] ?? 0) + 1;
    const active = Object.values(counts).reduce((n, c) => n + c.active, 0);
    summary.textContent = `${items.length} gateways · ${Object.keys(STATES)
      .map((s) => `${by[s] ?? 0} ${s}`)
      .join(' · ')} · ${active} active alarms`;
  };
  for (const control of [tag, state]) control.addEventListener('change', render);
  sortSelect.addEventListener('change', () => {
    [sortKey, descending] = [sortSelect.value.replace(/:desc$/, ''), sortSelect.value.endsWith(':desc')];
    render();
  });
  search.addEventListener('input', render);

  await every(
    REFRESH_MS,
    async () => {
      const [gateways, alarms] = await Promise.all([get('/api/gateways'), get('/api/alarms')]);
      items = gateways.items;
      counts = alarms.byGateway;
      const tags = [...new Set(items.flatMap((g) => g.tags))].sort();
      const chosen = tag.value;
      tag.replaceChildren(h('option', { value: '' }, 'all tags'), ...tags.map((t) => h('option', { value: t, selected: t === chosen }, t)));
      error.textContent = '';
      render();
    },
    { track, onError: (err) => (error.textContent = `Could not refresh: ${err.message}`) },
  );
}
