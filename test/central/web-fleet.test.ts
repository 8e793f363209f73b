// Outpost Central's web UI in headless Chromium, at 1366×800 (an admin) and 390×844 (an
// operator), against a central (level store, in this process) fed by a real gateway process
// over its http link and by simulated gateways: signed HTTP batches (one online with alarms and
// a backlog, one gone offline with its storage read-only), a buoy over the RockBLOCK webhook
// (satellite, located by Iridium, a boolean alarm), and one that never reported. What a person
// sees — the fleet table, the map, a site's datapoints and chart, the alarms — is checked
// against the API's answers; acknowledging an alarm on the phone changes the API's answer.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { MoCodec } from '../../adapters/iridium/codec.js';
import { chromiumSkip } from '../helpers/browser.js';
import { eventually } from '../helpers/gateway.js';
import { processYamlHead, spawnOutpost } from '../helpers/process.js';
import { tempDir } from '../helpers/teardown.js';
import { API_TOKEN, postRockblock, transmitTime, type JsonBody } from './helpers.js';
import {
  ADMIN_PASSWORD,
  OPERATOR_PASSWORD,
  SimulatedGateway,
  VIEWPORTS,
  alarmState,
  logInAs,
  openBrowser,
  overflows,
  pageTrue,
  plotted,
  screenshot,
  startWebCentral,
  traceUPlot,
} from './web-helpers.js';

const SECRET = { real: 'gw-real-hmac-secret-0123456789', sim: 'site-sim-hmac-secret-0123456789', down: 'site-down-hmac-secret-0123456789' };
const IMEI = '300234010753371';
const BUOY_TABLE = [
  { id: 'buoy.water.temp', decimals: 1 },
  { id: 'alarm.overflow', type: 'boolean' as const },
];
const MIN = 60_000;

/** How the UI writes a number or text value (dom.js formatValue, en-US), for the values this test sends. */
function shownValue(v: JsonBody): string {
  if (typeof v === 'number') return v.toLocaleString('en-US', { maximumFractionDigits: Math.abs(v) >= 1000 ? 0 : Math.abs(v) >= 100 ? 1 : 2 });
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** What the Alarms column says for a gateway's counts (GET /api/alarms byGateway). */
function alarmsCell(c: { active: number; unacknowledged: number } | undefined): string {
  if (!c || c.active === 0) return '0';
  return c.unacknowledged ? `${c.active} (${c.unacknowledged} unacknowledged)` : String(c.active);
}

async function api(url: string, path: string): Promise<JsonBody> {
  const res = await fetch(url + path, { headers: { authorization: `Bearer ${API_TOKEN}` } });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** The text of an element, trimmed. */
const text = async (l: Locator): Promise<string> => ((await l.textContent()) ?? '').trim();

/** An element as the tests read it in the page (the tests compile without the DOM's types). */
type Attributed = { getAttribute(name: string): string | null };
const rowIds = (page: Page, table: string) =>
  page.locator(`${table} tbody tr`).evaluateAll((rows: Attributed[]) => rows.map((r) => r.getAttribute('data-gateway')));

t.test('the fleet, a site and the alarms, as a person sees them, equal the API', { skip: chromiumSkip }, async (t) => {
  const central = await startWebCentral(t, {
    fleet: { offlineAfterSeconds: 3600 },
    ingest: { rockblock: { verify: 'none' } },
    gateways: [
      { id: 'gw-real', name: 'Real gateway', tags: ['north'], location: { lat: 47.37, lon: 8.54 }, auth: { type: 'hmac', secret: SECRET.real } },
      { id: 'site-sim', name: 'Pump station 7', tags: ['north', 'pumps'], location: { lat: 59.91, lon: 10.75 }, auth: { type: 'hmac', secret: SECRET.sim } },
      { id: 'buoy', name: 'Weather buoy', tags: ['sea'], iridium: { imei: IMEI, datapoints: BUOY_TABLE } },
      { id: 'site-down', location: { lat: 40.42, lon: -3.7 }, auth: { type: 'hmac', secret: SECRET.down } },
      { id: 'site-new', name: 'Not yet installed' },
    ],
  });
  const url = central.url;

  // ---- a real gateway process: its http link, its sync status datapoints, a stale alarm of its own ----
  const dir = await tempDir(t, 'outpost-gw-real-');
  const yaml = join(dir, 'outpost.yaml');
  await writeFile(
    yaml,
    `${processYamlHead({ id: 'gw-real', dataDir: join(dir, 'data') })}datapoints:
  - { id: plant.meter.power, kind: sensor, type: number }
alarms:
  rules:
    - { id: quiet-meter, type: stale, datapoint: plant.meter.power, afterS: 1, severity: warning, message: Meter silent }
sync:
  enabled: true
  pollMs: 100
  datapointsIntervalMs: 1000
  backoff: { initialMs: 100, maxMs: 1000 }
  links:
    - { name: central, type: http, url: "${url}/api/ingest/batch", auth: { type: hmac, secret: ${SECRET.real} } }
`,
  );
  const gateway = spawnOutpost(['start', '-c', yaml]);
  t.teardown(async () => {
    if (gateway.child.exitCode === null && gateway.child.signalCode === null) {
      gateway.child.kill('SIGTERM');
      await gateway.exited;
    }
  });
  await gateway.ready;

  // ---- simulated gateways ----
  const now = Date.now();
  const sim = new SimulatedGateway(url, 'site-sim', SECRET.sim);
  const readings = [];
  // Every 5 min over the last day, clear of the 24 h window's edges.
  for (let k = 2; k < 287; k++) {
    const t0 = now - 24 * 60 * MIN + k * 5 * MIN;
    readings.push({ id: 'plant.meter.power', t: t0, v: Math.round(400 + 300 * Math.sin(k / 20)) / 10 });
    readings.push({ id: 'plant.tank.level', t: t0, v: 40 + (k % 10) / 2 });
  }
  await sim.send(readings);
  await sim.send(
    [
      { id: 'gateway.sync.backlog', t: now - 2000, v: 1234 },
      { id: 'gateway.sync.catchup', t: now - 2000, v: 600 },
      { id: 'gateway.sync.link.central.state', t: now - 2000, v: 'up' },
      { id: 'alarm.tank-high', t: now - 10 * MIN, v: alarmState({ active: true, message: 'Tank above 95 %', raisedAt: now - 10 * MIN }) },
      {
        id: 'alarm.door-open',
        t: now - 20 * MIN,
        v: alarmState({ active: true, severity: 'warning', message: 'Door open', raisedAt: now - 20 * MIN, acknowledged: true, ackedBy: 'user otto' }),
      },
      {
        id: 'alarm.pump-fault',
        t: now - 30 * MIN,
        v: alarmState({ active: false, message: 'Pump 2 fault', raisedAt: now - 90 * MIN, acknowledged: true, ackedBy: 'user otto' }),
      },
    ],
    'priority',
  );
  const down = new SimulatedGateway(url, 'site-down', SECRET.down);
  await down.send([{ id: 'plant.boiler.temp', t: now - 5 * MIN, v: 71.5 }]);
  await down.status({ state: 'offline', storage: { state: 'read-only', error: 'disk full' } });
  const codec = new MoCodec({ timeResolutionMs: 1000, datapoints: BUOY_TABLE.map((d) => ({ id: d.id, decimals: d.decimals ?? 0, type: d.type ?? 'number' })) });
  const mo = codec.encode(
    [
      { id: 'buoy.water.temp', t: Math.floor(now / 1000) * 1000 - MIN, v: 12.3, seq: 1 },
      { id: 'alarm.overflow', t: Math.floor(now / 1000) * 1000 - MIN, v: true, seq: 2 },
    ],
    1,
    undefined,
    { outboxSeqs: true },
  );
  const delivered = await postRockblock(url, {
    imei: IMEI,
    serial: '20001',
    momsn: '7',
    transmit_time: transmitTime(now),
    iridium_latitude: '-33.9',
    iridium_longitude: '18.4',
    iridium_cep: '40',
    data: mo.toString('hex'),
  });
  t.equal(delivered.status, 200, 'the buoy’s MO message is taken');

  // The real gateway is online and its stale alarm has come over its link.
  await eventually(
    async () => {
      const g = await api(url, '/api/gateways/gw-real');
      const a = await api(url, '/api/alarms?gateway=gw-real');
      return g.state === 'online' && g.backlog.records !== null && a.items.some((x: JsonBody) => x.id === 'quiet-meter');
    },
    60_000,
    250,
  );
  const fleetApi = await api(url, '/api/gateways');
  const states = Object.fromEntries(fleetApi.items.map((g: JsonBody) => [g.id, g.state]));
  t.same(states, { buoy: 'satellite', 'gw-real': 'online', 'site-down': 'offline', 'site-new': 'never', 'site-sim': 'online' }, 'every state is there');

  for (const [view, who, password] of [
    ['desktop', 'admin', ADMIN_PASSWORD],
    ['phone', 'otto', OPERATOR_PASSWORD],
  ] as const) {
    await t.test(`${view} (${VIEWPORTS[view].width}×${VIEWPORTS[view].height}), ${who}`, async (t) => {
      const { page, errors } = await openBrowser(t, VIEWPORTS[view]);
      await traceUPlot(page);
      const requests: string[] = [];
      page.on('request', (r) => {
        if (r.url().includes('/datapoints/') && r.url().includes('/values?')) requests.push(r.url());
      });
      await logInAs(page, url, who, password, '#/fleet');

      // ---- Fleet: the table ----
      await page.locator('#fleet-table tbody tr').first().waitFor();
      const gateways = (await api(url, '/api/gateways')).items as JsonBody[];
      const alarms = await api(url, '/api/alarms');
      t.equal(await page.locator('#fleet-table tbody tr').count(), gateways.length, `${gateways.length} rows, one per gateway of the API`);
      for (const g of gateways) {
        const row = page.locator(`#fleet-table tr[data-gateway="${g.id}"]`);
        t.equal(await text(row.locator('.c-state')), g.state, `${g.id}: state ${g.state}`);
        t.equal(await text(row.locator('.c-alarms')), alarmsCell(alarms.byGateway[g.id]), `${g.id}: alarms as the API counts them`);
        t.equal(await text(row.locator('.c-link')), g.link ?? '—', `${g.id}: link ${g.link}`);
        if (g.lastSeen === null) t.equal(await text(row.locator('.c-seen')), 'never', `${g.id}: never seen`);
        else t.match(await text(row.locator('.c-seen')), /ago|just now/, `${g.id}: last seen, relative`);
      }
      const simRow = page.locator('#fleet-table tr[data-gateway="site-sim"]');
      const sim = gateways.find((g) => g.id === 'site-sim');
      t.match(
        await text(simRow.locator('.c-backlog')),
        new RegExp(`${sim.backlog.records.v.toLocaleString('en-US')} records · ETA 10 min`),
        'site-sim: the backlog and catch-up it reported',
      );
      t.equal(await text(page.locator('#fleet-table tr[data-gateway="site-down"] .c-storage')), 'read-only', 'site-down: its storage alarm');
      const buoy = gateways.find((g) => g.id === 'buoy');
      t.ok(buoy.satellite.received.today.credits >= 1);
      t.equal(
        await text(page.locator('#fleet-table tr[data-gateway="buoy"] .c-credits')),
        `${buoy.satellite.received.today.credits} / ${buoy.satellite.received.last30Days.credits}`,
        'buoy: satellite credits today / 30 days',
      );
      t.match(
        await text(page.locator('#fleet-summary')),
        new RegExp(`^${gateways.length} gateways · 2 online · 1 satellite · 1 offline · 1 never · ${alarms.active} active alarms`),
        'the summary line',
      );

      // ---- Fleet: the map ----
      const located = gateways.filter((g) => g.location);
      t.equal(await page.locator('svg.fleet-map a.dot').count(), located.length, `${located.length} dots: the gateways with a location`);
      for (const g of located)
        t.match(await page.locator(`svg.fleet-map a.dot[data-gateway="${g.id}"]`).getAttribute('class'), `st-${g.state}`, `${g.id}: its dot says ${g.state}`);
      t.equal(buoy.location.source, 'iridium', 'the buoy is placed by Iridium’s estimate');
      t.equal(await page.locator('svg.fleet-map a.dot[data-gateway="buoy"] circle.cep').count(), 1, 'with its error circle');
      t.match(await text(page.locator('#map-missing')), /1 of 5 gateways have no location/);
      t.notOk(await overflows(page), 'fleet page: no sideways scrolling');
      await screenshot(page, `fleet-${view}`);

      // ---- Fleet: filters and sorting ----
      await page.locator('#filter-tag').selectOption('north');
      const north = (await api(url, '/api/gateways?tag=north')).items.map((g: JsonBody) => g.id).sort();
      t.same((await rowIds(page, '#fleet-table')).sort(), north, 'tag north: the gateways the API lists for ?tag=north');
      await page.locator('#filter-tag').selectOption({ label: 'all tags' });
      await page.locator('#filter-state').selectOption('online');
      t.same(
        (await rowIds(page, '#fleet-table')).sort(),
        gateways.filter((g) => g.state === 'online').map((g) => g.id),
        'state online: the online gateways',
      );
      await page.locator('#filter-state').selectOption({ label: 'all states' });
      // Desktop: the column headers sort; the phone's cards have none, a select does it.
      const sortBy = async (key: string, reversed: boolean) => {
        if (view === 'phone') await page.locator('#sort').selectOption(reversed ? `${key}:desc` : key);
        else
          for (let clicks = 0; clicks < 2; clicks++) {
            const th = page.locator('#fleet-table th').filter({ has: page.locator(`button.sort[data-sort="${key}"]`) });
            if ((await th.getAttribute('aria-sort')) === (reversed ? 'descending' : 'ascending')) break;
            await page.locator(`button.sort[data-sort="${key}"]`).click();
          }
      };
      await sortBy('gateway', false);
      t.same(await rowIds(page, '#fleet-table'), gateways.map((g) => g.id).sort(), 'sorted by id');
      await sortBy('gateway', true);
      t.same(
        await rowIds(page, '#fleet-table'),
        gateways
          .map((g) => g.id)
          .sort()
          .reverse(),
        'and the other way',
      );
      await sortBy('seen', false);
      t.same(
        await rowIds(page, '#fleet-table'),
        [...gateways].sort((a, b) => (b.lastSeen ?? 0) - (a.lastSeen ?? 0)).map((g) => g.id),
        'by last seen, newest first',
      );

      // ---- a site: from its dot on the map ----
      await page.locator('svg.fleet-map a.dot[data-gateway="site-sim"]').click();
      await page.locator('#site-title').waitFor();
      t.match(await text(page.locator('#site-title')), /Pump station 7\s*online/, 'the site page of the dot clicked, with its state');
      const dps = (await api(url, '/api/gateways/site-sim/datapoints')).items as JsonBody[];
      await page.locator('#site-dps tbody tr').first().waitFor();
      t.equal(await page.locator('#site-dps tbody tr').count(), dps.length, `${dps.length} datapoints, as the API lists them`);
      for (const d of dps) {
        const cell = await text(page.locator(`#site-dps tr[data-dp="${d.id}"] td.num .val`));
        t.equal(cell, shownValue(d.latest.v), `${d.id}: the newest value`);
      }
      t.match(await text(page.locator('#site-backlog')), /1,234 records · ETA 10 min/, 'the backlog card');
      const siteAlarms = await api(url, '/api/alarms?gateway=site-sim');
      t.equal(await page.locator('#alarm-table tbody tr').count(), siteAlarms.items.length, 'its active alarms');

      // The chart plots what the API answers for the request it made.
      const chartMatchesApi = async (what: string, id: string) => {
        const asked = [...requests].reverse().find((u) => u.includes(`/datapoints/${id}/values?`));
        t.ok(asked, `${what}: the chart asked the values API`);
        const asking = new URL(asked!);
        const answer = await api(url, asking.pathname + asking.search);
        // Raw readings are asked newest first (a long range keeps its newest) and drawn oldest first.
        const values = asking.searchParams.get('order') === 'desc' ? [...answer.values].reverse() : answer.values;
        const drawn = await plotted(page);
        t.same(
          drawn?.xs,
          values.map((p: JsonBody) => p.t / 1000),
          `${what}: the times plotted are the API's (${values.length} points)`,
        );
        t.same(
          drawn?.ys,
          values.map((p: JsonBody) => p.v),
          `${what}: and the values`,
        );
        return answer;
      };
      // Opened from the fleet, the chart shows the first number of the site (not its bookkeeping).
      await pageTrue(
        page,
        `document.querySelector('#chart')?.dataset.points !== undefined && /readings/.test(document.querySelector('#chart-status')?.textContent ?? '')`,
      );
      t.equal(await page.locator('#chart-dp').inputValue(), 'plant.meter.power');
      const raw = await chartMatchesApi('raw', 'plant.meter.power');
      t.equal(raw.values.length, 285, 'every reading of the last 24 h');
      await page.locator('#agg').selectOption('avg');
      await pageTrue(page, `/× avg of 15m/.test(document.querySelector('#chart-status')?.textContent ?? '')`);
      const avg = await chartMatchesApi('15 min averages', 'plant.meter.power');
      t.ok(avg.values.length > 80 && avg.values.length < 100, `${avg.values.length} 15-minute buckets`);
      t.match(page.url(), /agg=avg/, 'the choice is kept in the address');
      await page.locator('#agg').selectOption('raw');
      await page.locator('#site-dps').getByRole('link', { name: 'plant.tank.level' }).click();
      await pageTrue(
        page,
        `document.querySelector('#chart')?.getAttribute('aria-label') === 'Chart of plant.tank.level' && /readings/.test(document.querySelector('#chart-status')?.textContent ?? '')`,
      );
      await chartMatchesApi('another datapoint, picked in the table', 'plant.tank.level');
      t.notOk(await overflows(page), 'site page: no sideways scrolling');
      await screenshot(page, `site-${view}`);

      // ---- Alarms across the fleet ----
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alarms' }).click();
      await page.locator('#alarm-table tbody tr').first().waitFor();
      const list = (await api(url, '/api/alarms')).items as JsonBody[];
      t.same(
        await page
          .locator('#alarm-table tbody tr')
          .evaluateAll((rows: Attributed[]) => rows.map((r) => `${r.getAttribute('data-gateway')}/${r.getAttribute('data-alarm')}`)),
        list.map((a) => `${a.gateway}/${a.id}`),
        `the ${list.length} active alarms of the API, in its order`,
      );
      t.same(
        list.map((a) => `${a.gateway}/${a.id}`).sort(),
        ['buoy/overflow', 'gw-real/quiet-meter', 'site-sim/door-open', 'site-sim/tank-high'],
        'the JSON alarm states of both gateways and the buoy’s boolean alarm; not the cleared one',
      );
      t.match(await text(page.locator('#alarm-summary')), new RegExp(`^${list.length} active, ${list.filter((a) => !a.acknowledged).length} unacknowledged`));
      t.match(await text(page.locator('#alarm-table tr[data-alarm="door-open"] .c-ack')), /user otto at the site/, 'acknowledged at the site: says so');
      if (view === 'phone') {
        // The operator acknowledges the tank alarm here.
        await page.getByRole('button', { name: 'Acknowledge tank-high of site-sim' }).click();
        await page.locator('#alarm-table tr[data-alarm="tank-high"] .c-ack').filter({ hasText: 'user otto at central' }).waitFor();
        const after = (await api(url, '/api/alarms?gateway=site-sim')).items.find((a: JsonBody) => a.id === 'tank-high');
        t.same([after.acknowledged, after.ack.by, after.ack.where], [true, 'user otto', 'central'], 'the API: acknowledged by user otto at central');
        t.equal(alarmsCell((await api(url, '/api/alarms')).byGateway['site-sim']), '2', 'site-sim: no unacknowledged alarm left');
      }
      t.notOk(await overflows(page), 'alarms page: no sideways scrolling');
      await screenshot(page, `alarms-${view}`);
      t.same(errors, [], 'no script errors, no CSP violations');
    });
  }
});
