// A site's page: the gateway's status as central knows it (state, last seen, link, storage,
// backlog and links as it reported them, satellite usage, location), its active alarms, its
// datapoints with their newest readings (searchable), and a chart of one from the central
// store (raw readings or rollups, the gateway dashboard's values.js and chart.js), and the
// energy its counters counted per day (site-consumption.js).
import { get } from './api.js';
import { h, formatValue, formatTime, formatDuration } from './dom.js';
import { formatBytes } from './status-view.js';
import { card, kv, splitArg, stateBadge, whenSeen } from './ui.js';
import { alarmTable } from './alarms.js';
import { datapointChart } from './site-chart.js';
import { commandsCard } from './site-commands.js';
import { consumptionCard } from './site-consumption.js';
import { backlogText, creditsText, storageText } from './fleet.js';

/** An id that may wrap after its dots on a narrow screen (a <wbr> after each), as the gateway's tables. */
const breakable = (id) => id.split('.').flatMap((part, i, all) => (i < all.length - 1 ? [`${part}.`, h('wbr')] : [part]));

/** Datapoints listed at once at most; the search narrows the rest. */
const SHOWN = 200;

const reported = (r, fmt = String) => (r ? [fmt(r.v), h('span', { class: 'muted time' }, ` · ${formatTime(r.t)}`)] : '—');

function statusCard(g) {
  const storage = storageText(g);
  return card(
    'Status',
    kv([
      ['state', stateBadge(g.state)],
      ['last seen', whenSeen(g.lastSeen)],
      ['via', g.link ?? '—'],
      ['MQTT status', g.status?.state ? `${g.status.state} (${formatTime(g.status.at)})` : '—'],
      ['storage', storage === 'ok' ? 'ok' : h('span', { class: 'bad-text' }, `${storage}${g.status?.storage?.error ? `: ${g.status.storage.error}` : ''}`)],
      [
        'last batch',
        g.lastReceipt ? `${g.lastReceipt.lane}, ${g.lastReceipt.stored} stored, ${g.lastReceipt.duplicates} duplicates, ${formatTime(g.lastReceipt.at)}` : '—',
      ],
      ['datapoints', String(g.datapoints)],
    ]),
  );
}

function backlogCard(g) {
  const b = g.backlog;
  return card(
    'Backlog (as reported)',
    h('p', { class: 'lead num', id: 'site-backlog' }, backlogText(g)),
    kv([
      ['records', reported(b.records, (v) => v.toLocaleString())],
      ['bytes', reported(b.bytes, formatBytes)],
      ['oldest unsent', reported(b.oldestAgeSeconds, formatDuration)],
      ['catch-up', reported(b.catchUpSeconds, (v) => (v < 0 ? 'not converging' : formatDuration(v)))],
      ['drain rate', reported(b.drainRate, (v) => `${v.toLocaleString()} records/s`)],
    ]),
  );
}

function linksCard(g) {
  const names = Object.keys(g.links);
  return card(
    'Links (as reported)',
    names.length
      ? kv(names.map((n) => [n, [g.links[n].state?.v ?? '—', g.links[n].lastError?.v ? h('span', { class: 'bad-text' }, ` · ${g.links[n].lastError.v}`) : '']]))
      : h('p', { class: 'muted' }, 'The gateway has reported no link states.'),
  );
}

function satelliteCard(g) {
  const s = g.satellite;
  const usage = (u) => `${u.messages} messages, ${formatBytes(u.bytes)}, ${u.credits} credits`;
  const modems = Object.entries(s.reported);
  return card(
    'Satellite',
    h('p', { class: 'lead num', id: 'site-credits' }, creditsText(g) === '—' ? 'No satellite messages' : `${creditsText(g)} credits`),
    h('p', { class: 'muted' }, 'received today / in the last 30 days'),
    kv([
      ['IMEI', s.imei ?? '—'],
      ['today (received)', usage(s.received.today)],
      ['30 days (received)', usage(s.received.last30Days)],
      ...modems.map(([id, c]) => [`${id} (modem count)`, `${c.today?.v ?? '—'} today, ${c.month?.v ?? '—'} this month`]),
    ]),
  );
}

function locationCard(g) {
  const l = g.location;
  if (!l) return card('Location', h('p', { class: 'muted' }, 'None: set gateways[].location in central.yaml, or it comes with an Iridium message.'));
  return card(
    'Location',
    kv([
      ['latitude', l.lat.toFixed(4)],
      ['longitude', l.lon.toFixed(4)],
      ['source', l.source === 'iridium' ? `Iridium estimate${l.cepKm ? ` (± ${l.cepKm} km)` : ''}` : 'configured'],
    ]),
  );
}

export async function site(main, arg, { track, me }) {
  const [id, query] = splitArg(arg);
  const base = `/api/gateways/${encodeURIComponent(id)}`;
  const [g, dps, alarms] = await Promise.all([get(base), get(`${base}/datapoints`), get(`/api/alarms?gateway=${encodeURIComponent(id)}`)]);
  main.append(
    h('p', {}, h('a', { href: '#/fleet' }, '← Fleet')),
    h('h1', { id: 'site-title' }, g.name ?? g.id, ' ', stateBadge(g.state)),
    h(
      'p',
      { class: 'muted' },
      g.id,
      g.tags.length ? ' · ' : '',
      g.tags.map((t) => h('span', { class: 'tag' }, t)),
    ),
    h('div', { class: 'grid' }, statusCard(g), backlogCard(g), linksCard(g), satelliteCard(g), locationCard(g)),
  );
  const alarmBox = h('div');
  const reloadAlarms = async () => {
    const r = await get(`/api/alarms?gateway=${encodeURIComponent(id)}`);
    alarmBox.replaceChildren(alarmTable(r.items, { me, showGateway: false, after: reloadAlarms }));
  };
  alarmBox.append(alarmTable(alarms.items, { me, showGateway: false, after: reloadAlarms }));
  main.append(card(`Active alarms (${alarms.active})`, alarmBox));
  main.append(commandsCard(id, dps.items, { me, track }));

  const chart = datapointChart(id, dps.items, new URLSearchParams(query), { track });
  const search = h('input', { id: 'dp-search', type: 'search', placeholder: 'datapoint id', autocomplete: 'off' });
  const count = h('p', { class: 'muted', id: 'dp-count', role: 'status', 'aria-live': 'polite' });
  const box = h('div');
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const matching = dps.items.filter((d) => !q || d.id.includes(q));
    const shown = matching.slice(0, SHOWN);
    count.textContent = `${matching.length} of ${dps.items.length} datapoints${shown.length < matching.length ? ` (the first ${SHOWN} shown: search to narrow)` : ''}`;
    box.replaceChildren(
      shown.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'dps', id: 'site-dps' },
              h(
                'thead',
                {},
                h('tr', {}, h('th', { scope: 'col' }, 'Datapoint'), h('th', { scope: 'col', class: 'num' }, 'Newest value'), h('th', { scope: 'col' }, 'Time')),
              ),
              h(
                'tbody',
                {},
                shown.map((d) => {
                  const link = h('a', { href: chart.hashFor(d.id) }, breakable(d.id));
                  link.addEventListener('click', (e) => {
                    e.preventDefault();
                    chart.show(d.id);
                  });
                  const v = d.latest ? formatValue(d.latest.v) : '—';
                  return h(
                    'tr',
                    { 'data-dp': d.id },
                    h('th', { scope: 'row', class: 'dp-id' }, link),
                    h('td', { class: 'num' }, h('span', { class: 'val', title: v }, v), d.latest?.q ? h('span', { class: 'tag' }, d.latest.q) : ''),
                    h('td', { class: 'time' }, formatTime(d.latest?.t)),
                  );
                }),
              ),
            ),
          )
        : h('p', { class: 'muted', id: 'site-dps' }, dps.items.length ? 'No datapoint matches.' : 'The gateway has sent no readings yet.'),
    );
  };
  search.addEventListener('input', render);
  render();
  const consumption = consumptionCard(id, { track });
  main.append(
    card('Datapoints', h('div', { class: 'toolbar' }, h('label', { for: 'dp-search' }, 'Search'), search, count), box),
    chart.element,
    consumption.element,
  );
  await Promise.all([chart.start(), consumption.start()]);
}
