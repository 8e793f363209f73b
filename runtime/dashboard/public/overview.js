// Overview page: the site's power flow now (live), gateway health, sync backlog in brief,
// today's grid power, adapters.
import { get } from './api.js';
import { h, formatDuration } from './dom.js';
import { onValue } from './live.js';
import { card, kv, adapterCards } from './widgets.js';
import { loadValues } from './values.js';
import { powerFlow } from './flow.js';

/** How often the picture re-judges which readings have gone stale, without new readings. */
const STALE_CHECK_MS = 5000;

export async function overview(main, _arg, { track }) {
  main.append(h('h1', {}, 'Overview'));
  // /healthz answers 503 with the reason when storage is read-only (a full disk): that is what to show.
  const healthOf = (e) => (e.status === 503 && e.body?.storage ? e.body : Promise.reject(e));
  // The flow is one request (roles and readings together): the Overview's first paint waits for nothing else.
  const [health, adapters, flow] = await Promise.all([
    get('/healthz').catch(healthOf),
    get('/api/adapters'),
    get('/api/site/flow').catch((err) => ({ error: err })),
  ]);
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
  const picture = flowCard(flow, track);
  // Today's curve: the grid meter, else the first power datapoint the site has.
  const nodes = flow.nodes ?? [];
  const power = nodes.find((n) => n.role === 'grid' && !n.problem) ?? nodes.find((n) => !n.problem);
  const chartBox = h('div', { class: 'chart', role: 'img', 'aria-label': power ? `${power.label} today` : 'Site power today' });
  const backlog = h('div', {}, h('p', { class: 'muted' }, 'Reading /metrics…'));
  main.append(
    picture.element,
    h(
      'div',
      { class: 'grid' },
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
    card(power ? `Today's power: ${power.label}` : "Today's power", chartBox),
    h('h2', {}, 'Adapters'),
    adapterCards(adapters.items, { track, types: adapters.types }),
  );
  let chart;
  let liveChart = false;
  // Subscribed before the chart's readings are asked for, so no reading falls between the two.
  track(
    onValue((id, msg) => {
      picture.update?.(id, msg);
      if (chart && liveChart && id === power?.id) chart.push(msg.t, msg.v);
    }),
  );
  loadBacklog(backlog);
  if (power) {
    const midnight = new Date();
    midnight.setHours(0, 0, 0, 0);
    const today = { from: midnight.getTime(), to: Date.now() };
    // uPlot is loaded after the picture is drawn: it is not needed for the first paint.
    const [r, { lineChart }] = await Promise.all([loadValues(power.id, today.from, today.to, 'avg'), import('./chart.js')]);
    chart = lineChart(chartBox, { label: power.id, unit: power.unit ?? 'W', points: r.values, range: today });
    liveChart = r.interval === undefined;
    track(() => chart.destroy());
  } else chartBox.append(h('p', { class: 'muted' }, 'No power datapoint on this site.'));
}

/** The power-flow card, live; a short reason instead when the flow cannot be read or the site has no roles. */
function flowCard(flow, track) {
  if (flow.error) return { element: card('Power flow', h('p', { class: 'error' }, `power flow unavailable: ${flow.error.message}`)) };
  if (flow.nodes.length === 0) {
    return {
      element: card(
        'Power flow',
        h('p', { class: 'muted' }, 'No grid, PV, battery or charger datapoints found: name them under site.power in the config (outpost.example.yaml).'),
      ),
    };
  }
  const pf = powerFlow(flow);
  const timer = setInterval(pf.refresh, STALE_CHECK_MS);
  track(() => {
    clearInterval(timer);
    pf.destroy();
  });
  return { element: card('Power flow', pf.element), update: pf.update };
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
