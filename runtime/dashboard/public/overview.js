// Overview page: site power now and today, gateway health, sync backlog in brief, adapters.
import { get } from './api.js';
import { h, formatValue, formatDuration, flash } from './dom.js';
import { onValue } from './live.js';
import { lineChart } from './chart.js';
import { card, kv, adapterCards } from './widgets.js';
import { loadValues } from './values.js';

export async function overview(main, _arg, { track }) {
  main.append(h('h1', {}, 'Overview'));
  // /healthz answers 503 with the reason when storage is read-only (a full disk): that is what to show.
  const healthOf = (e) => (e.status === 503 && e.body?.storage ? e.body : Promise.reject(e));
  const [health, adapters, dps] = await Promise.all([get('/healthz').catch(healthOf), get('/api/adapters'), get('/api/datapoints')]);
  if (health.storage.state !== 'ok') {
    const s = health.storage;
    main.append(
      h(
        'p',
        { class: 'banner-bad', role: 'alert' },
        `Storage is ${s.state}: readings are refused until writes succeed again (${s.error ?? 'unknown error'}). ${s.recovery ?? s.repair ?? ''}`,
      ),
    );
  }
  const power = dps.items.find((d) => /grid\.power$/.test(d.id)) ?? dps.items.find((d) => d.unit === 'W' || d.unit === 'kW');
  const now = h('p', { class: 'big num', 'aria-live': 'off' }, power ? formatValue(power.latest?.v, power.unit) : '—');
  const chartBox = h('div', { class: 'chart', role: 'img', 'aria-label': 'Site power today' });
  const backlog = h('div', {}, h('p', { class: 'muted' }, 'Reading /metrics…'));
  main.append(
    h(
      'div',
      { class: 'grid' },
      card('Site power now', h('p', { class: 'muted' }, power ? power.id : 'no power datapoint'), now),
      card(
        'Gateway health',
        kv([
          ['status', h('span', { class: `state state-${health.status}` }, health.status)],
          ['gateway', health.gateway],
          ['version', health.version],
          ['uptime', formatDuration(health.uptimeSeconds)],
          ['storage', health.storage.state],
        ]),
      ),
      card('Sync backlog', backlog),
    ),
    card("Today's power", chartBox),
    h('h2', {}, 'Adapters'),
    adapterCards(adapters.items, { track }),
  );
  if (power) {
    const midnight = new Date();
    midnight.setHours(0, 0, 0, 0);
    const today = { from: midnight.getTime(), to: Date.now() };
    const r = await loadValues(power.id, today.from, today.to, 'avg');
    const chart = lineChart(chartBox, { label: power.id, unit: power.unit, points: r.values, range: today });
    track(() => chart.destroy());
    track(
      onValue((id, msg) => {
        if (id !== power.id) return;
        now.textContent = formatValue(msg.v, power.unit);
        flash(now);
        if (r.interval === undefined) chart.push(msg.t, msg.v);
      }),
    );
  } else chartBox.append(h('p', { class: 'muted' }, 'No power datapoint on this site.'));
  loadBacklog(backlog);
}

/** Upstream backlog in brief (GET /api/sync, the sync service's snapshot); details on Links. */
async function loadBacklog(box) {
  try {
    const s = await get('/api/sync');
    box.replaceChildren(
      s.enabled
        ? kv([
            ['mode', h('span', { class: `state state-${s.mode}` }, s.mode)],
            ['backlog', `${s.backlogRecords.toLocaleString()} records`],
            ['oldest unsent', s.backlogRecords ? formatDuration(s.oldestUnsentAgeSeconds) : '—'],
          ])
        : h('p', { class: 'muted' }, 'Upstream sync is off on this gateway.'),
      h('p', {}, h('a', { href: '#/links' }, 'Links and backlog →')),
    );
  } catch (err) {
    box.replaceChildren(h('p', { class: 'error' }, `sync state unavailable: ${err.message}`));
  }
}
