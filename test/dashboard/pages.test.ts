import t from 'tap';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { Page } from 'playwright-core';
import { chromiumSkip, firstPage, launchChromium, logIn } from '../helpers/browser.js';
import { ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';
import { eventually } from '../helpers/gateway.js';
import { hashPassword, hashToken } from '../../runtime/auth/passwords.js';
import { ChargePointSimulator } from '../../adapters/ocpp/simulator.js';
import { defaultInsightPoints, insightReportLines } from '../../adapters/bms-files/simulator.js';
import type { Teardown } from '../helpers/teardown.js';

const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'dashboard');
const CP_PASSWORD = 'cp-test-1-authorization-key';
const UPLOAD_TOKEN = 'upload-token-pages-0123456789';

// The browser runs in a fixed zone east of UTC without DST, so local midnight is not UTC
// midnight (the page must cut days in local time) and the expected figures are exact.
const ZONE = 'Etc/GMT-2';
const OFFSET_MS = 2 * 3600e3;
const HOUR = 3600e3;
const DAY = 24 * HOUR;

interface Reading {
  id: string;
  t: number;
  v: number;
}

/**
 * Counter readings for the two days before today (local): the day before yesterday uses
 * 1 kWh every hour (24 kWh); yesterday 2 kWh every hour except hour 05, where the meter
 * was reset to 0 and counted 0.5 kWh, and hour 07, read three times, 3.5 kWh (48 kWh in
 * all, +100 %). Two sub-meters in Wh and MWh for the ranking: 12 kWh and 6 kWh yesterday.
 */
function counterReadings(yesterday: number): { readings: Reading[]; expectedYesterday: number[]; expectedBefore: number[] } {
  const before = yesterday - DAY;
  const readings: Reading[] = [];
  let main = 990;
  readings.push({ id: 'site.main.energy_import', t: before - 30 * 60e3, v: main });
  const expectedBefore: number[] = [];
  for (let h = 0; h < 24; h++) {
    main += 1;
    readings.push({ id: 'site.main.energy_import', t: before + h * HOUR + 30 * 60e3, v: main });
    expectedBefore.push(1);
  }
  const expectedYesterday: number[] = [];
  for (let h = 0; h < 24; h++) {
    const at = yesterday + h * HOUR;
    if (h === 5) {
      main = 0.5; // reset: the meter was replaced and starts again from 0
      readings.push({ id: 'site.main.energy_import', t: at + 30 * 60e3, v: main });
      expectedYesterday.push(0.5);
    } else if (h === 7) {
      readings.push({ id: 'site.main.energy_import', t: at + 10 * 60e3, v: main + 1.5 });
      readings.push({ id: 'site.main.energy_import', t: at + 30 * 60e3, v: main + 2.5 });
      main += 3.5;
      readings.push({ id: 'site.main.energy_import', t: at + 50 * 60e3, v: main });
      expectedYesterday.push(3.5);
    } else {
      main += 2;
      readings.push({ id: 'site.main.energy_import', t: at + 30 * 60e3, v: main });
      expectedYesterday.push(2);
    }
  }
  for (let h = -1; h < 24; h++) {
    readings.push({ id: 'site.hvac.energy', t: yesterday + h * HOUR + 30 * 60e3, v: 10_000 + (h + 1) * 500 });
    readings.push({ id: 'site.lights.energy', t: yesterday + h * HOUR + 30 * 60e3, v: 5 + (h + 1) * 0.00025 });
  }
  return { readings, expectedYesterday, expectedBefore };
}

/** An upstream HTTP ingest that refuses (500) until told to accept. */
async function upstream(t: Teardown): Promise<{ url: string; accept(): void; received(): number }> {
  let accepting = false;
  let received = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (!accepting) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('upstream in maintenance');
        return;
      }
      received++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/ingest`, accept: () => (accepting = true), received: () => received };
}

function upload(url: string, name: string, content: string): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([content]), name);
  return fetch(`${url}/upload/siemens`, { method: 'POST', headers: { authorization: `Bearer ${UPLOAD_TOKEN}` }, body: form });
}

t.test('Consumption, Chargers, Links and Imports pages in headless Chromium', { skip: chromiumSkip }, async (t) => {
  const ingest = await upstream(t);
  const site = await startSecureSite(t, {
    gateway: { id: 'pages', name: 'Dashboard pages test site', timezone: 'UTC' },
    datapoints: [
      { id: 'site.main.energy_import', kind: 'sensor', type: 'number', unit: 'kWh', description: 'Main meter, import register' },
      { id: 'site.hvac.energy', kind: 'sensor', type: 'number', unit: 'Wh', description: 'HVAC sub-meter' },
      { id: 'site.lights.energy', kind: 'sensor', type: 'number', unit: 'MWh', description: 'Lighting sub-meter' },
    ],
    adapters: [
      { id: 'chargers', type: 'ocpp', chargers: [{ id: 'CP-TEST-1', password: await hashPassword(CP_PASSWORD) }], idTags: { allow: ['TAG-OK'] } },
      {
        id: 'insight',
        type: 'bms-files',
        format: 'siemens-insight',
        upload: { tokenHashes: [hashToken(UPLOAD_TOKEN)] },
        points: [{ exact: 'OATEMP', id: 'bms.outdoor.temperature', unit: '°F' }],
      },
    ],
    sync: { enabled: true, links: [{ name: 'central', type: 'http', url: ingest.url }], backoff: { initialMs: 100, maxMs: 400 }, pollMs: 50 },
    auth: { loopback: 'none' },
  });
  const httpUrl = site.httpUrl;

  // Meter readings arrive as a device would send them: MQTT QoS 1 (acknowledged once durable).
  const localMidnight = Math.floor((Date.now() + OFFSET_MS) / DAY) * DAY - OFFSET_MS;
  if (localMidnight + DAY - Date.now() < 3 * 60e3) await new Promise((r) => setTimeout(r, localMidnight + DAY - Date.now() + 1000)); // never straddle midnight
  const yesterday = Math.floor((Date.now() + OFFSET_MS) / DAY) * DAY - OFFSET_MS - DAY;
  const { readings, expectedYesterday, expectedBefore } = counterReadings(yesterday);
  const meter = await mqtt.connectAsync(site.mqttUrl, { reconnectPeriod: 0 });
  t.teardown(() => meter.endAsync());
  for (const r of readings) await meter.publishAsync(`outpost/dp/${r.id}/value`, JSON.stringify({ v: r.v, t: r.t }), { qos: 1 });

  // A real OCPP 1.6-J charge point (the adapter's simulator) with a running session.
  const wsUrl = httpUrl.replace(/^http/, 'ws') + '/ocpp';
  const cp = new ChargePointSimulator({ endpoint: wsUrl, identity: 'CP-TEST-1', password: CP_PASSWORD, connectors: 2 });
  t.teardown(() => cp.close());
  await cp.connect();
  t.equal(cp.bootStatus, 'Accepted');
  const started = await cp.startSession(1, 'TAG-OK');
  t.equal(started.status, 'Accepted');
  await cp.tick(60_000);

  // Two uploads: a good Insight report and a truncated one (no End of Report).
  const reportStart = Date.now() - 3 * HOUR;
  const good =
    [...insightReportLines({ points: defaultInsightPoints(4), start: reportStart, rows: 8, intervalMinutes: 15, timeZone: 'UTC' })].join('\r\n') + '\r\n';
  const cut =
    [...insightReportLines({ points: defaultInsightPoints(4), start: reportStart, rows: 8, intervalMinutes: 15, timeZone: 'UTC', truncate: true })].join(
      '\r\n',
    ) + '\r\n';
  t.equal((await upload(httpUrl, 'plant-room-good.csv', good)).status, 200);
  t.equal((await upload(httpUrl, 'plant-room-truncated.csv', cut)).status, 200);

  await mkdir(ARTIFACTS, { recursive: true });
  const context = await launchChromium(t, { viewport: { width: 1280, height: 900 }, timezoneId: ZONE, locale: 'en-US' });
  const page = await firstPage(context);
  const problems: string[] = [];
  page.on('console', (m) => {
    // The refused limit (400) is on purpose; an absent optional API (404) is not an error.
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of (400|404)/.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  const shot = (name: string, p: Page = page) => p.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  await page.goto(site.url);
  await logIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  // Before login the page's session probe is answered 401 on purpose; from here on, nothing may fail.
  problems.length = 0;

  await t.test('consumption: kWh per hour from counter deltas, previous day beside it, ranking', async (t) => {
    await page.getByRole('link', { name: 'Consumption' }).click();
    await page.getByRole('heading', { level: 1, name: 'Consumption' }).waitFor();
    t.equal(await page.getByLabel('Meter').inputValue(), 'site.main.energy_import', 'the main meter is picked by default');
    t.equal(await page.getByLabel('Period', { exact: true }).inputValue(), 'day');
    // Keyboard: the Previous button is reachable and works with Enter.
    await page.getByRole('button', { name: 'Previous period' }).focus();
    await page.keyboard.press('Enter');
    const title = new Date(yesterday + OFFSET_MS).toLocaleDateString('en-US', {
      timeZone: 'UTC',
      weekday: 'short',
      day: 'numeric',
      month: 'short',
      year: 'numeric',
    });
    await page.locator('#cons-title', { hasText: title }).waitFor();
    await page.locator('#cons-total', { hasText: '48 kWh' }).waitFor();
    t.equal(await page.locator('#cons-prev-total').textContent(), '24 kWh', 'the day before: 24 × 1 kWh');
    t.equal(await page.locator('#cons-change').textContent(), '▲ +100\u00a0%', 'change against the previous day');
    await page.locator('#cons-chart canvas').first().waitFor();

    // The table alternative to the bar chart: hour, this day, the day before.
    await page.getByText('Figures as a table').click();
    const rows = (await page.locator('#cons-table tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)))) as string[][];
    t.equal(rows.length, 24, 'one row per local hour');
    t.same(
      rows.map((r) => r[0]),
      Array.from({ length: 24 }, (_, h) => String(h).padStart(2, '0')),
      'hours 00…23 in local time',
    );
    t.same(
      rows.map((r) => r[1]),
      expectedYesterday.map((v) => `${v} kWh`),
      'kWh per hour, with the reset hour counted from 0 and the thrice-read hour summed',
    );
    t.same(
      rows.map((r) => r[2]),
      expectedBefore.map((v) => `${v} kWh`),
      'the previous day beside it',
    );

    // Largest consumers: kWh, Wh and MWh counters ranked together in kWh.
    await page.locator('#cons-rank li[data-id="site.lights.energy"]').waitFor();
    const ranked = (await page
      .locator('#cons-rank li')
      .evaluateAll((lis) => lis.map((li) => [li.getAttribute('data-id'), li.querySelector('.rank-value')?.textContent]))) as string[][];
    t.same(
      ranked.filter(([id]) => id?.startsWith('site.')),
      [
        ['site.main.energy_import', '48 kWh'],
        ['site.hvac.energy', '12 kWh'],
        ['site.lights.energy', '6 kWh'],
      ],
    );
    await shot('pages-01-consumption-day');

    // Picking a consumer from the ranking shows its own figures.
    await page.getByRole('button', { name: 'Show site.hvac.energy' }).click();
    await page.locator('#cons-total', { hasText: '12 kWh' }).waitFor();
    t.equal(await page.getByLabel('Meter').inputValue(), 'site.hvac.energy');
    t.match(page.url(), /#\/consumption\/site\.hvac\.energy$/, 'the meter is in the address (bookmarkable)');
    t.equal(await page.locator('#cons-table tbody tr').first().locator('td').first().textContent(), '0.5 kWh', 'Wh shown as kWh');

    // Month view: energy per local day, this month beside the previous one (yesterday may
    // fall in either, when today is the 1st).
    await page.getByLabel('Meter').selectOption('site.main.energy_import');
    await page.getByLabel('Period', { exact: true }).selectOption('month');
    await page.locator('#cons-title', { hasText: 'energy per day of site.main.energy_import' }).waitFor();
    await page.locator('#cons-rank li').first().waitFor();
    const days = (await page.locator('#cons-table tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)))) as string[][];
    const local = (ms: number) => new Date(ms + OFFSET_MS); // its UTC fields are the local date
    const thisMonth = local(Date.now()).getUTCMonth();
    for (const [at, kwh] of [
      [yesterday, '48 kWh'],
      [yesterday - DAY, '24 kWh'],
    ] as const) {
      const d = local(at);
      t.equal(days[d.getUTCDate() - 1]![d.getUTCMonth() === thisMonth ? 1 : 2], kwh, `day ${d.getUTCDate()} summed from its local hours`);
    }

    // Year view: energy per local month, summed from hourly deltas so month edges are local.
    await page.getByLabel('Period', { exact: true }).selectOption('year');
    await page.locator('#cons-title', { hasText: 'energy per month of site.main.energy_import' }).waitFor();
    await page.locator('#cons-rank li').first().waitFor();
    const months = (await page.locator('#cons-table tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)))) as string[][];
    t.equal(months.length, 12, 'one row per month');
    const thisYear = local(Date.now()).getUTCFullYear();
    const expected = new Map<string, number>();
    for (const [at, kwh] of [
      [yesterday, 48],
      [yesterday - DAY, 24],
    ] as const) {
      const d = local(at);
      const key = `${d.getUTCFullYear() === thisYear ? 1 : 2}:${d.getUTCMonth()}`;
      expected.set(key, (expected.get(key) ?? 0) + kwh);
    }
    for (const [key, kwh] of expected) {
      const [column, month] = key.split(':').map(Number) as [number, number];
      t.equal(months[month]![column], `${kwh} kWh`, `month ${month + 1} (${column === 1 ? 'this' : 'previous'} year) summed from its local days`);
    }
  });

  await t.test('chargers: the simulator charge point, live power, session, current limit', async (t) => {
    await page.getByRole('link', { name: 'Chargers' }).click();
    const charger = page.locator('section[data-charger="CP-TEST-1"]');
    await charger.waitFor();
    await charger.getByText('online', { exact: true }).waitFor();
    const row = charger.locator('tr[data-connector="1"]');
    t.equal(await row.locator('.cstatus').textContent(), 'Charging');
    t.equal(await row.locator('td').nth(1).textContent(), '22.08 kW', '32 A × 3 × 230 V');
    t.equal(await charger.locator('tr[data-connector="2"] .cstatus').textContent(), 'Available');
    await page.locator('#sessions tbody tr', { hasText: 'TAG-OK' }).waitFor();
    await charger.locator('.chart canvas').first().waitFor();

    // An operator caps connector 1 at 16 A: the charge point gets a charging profile,
    // and its next meter values show up live.
    await page.getByLabel('Current limit, connector 1 (A)').fill('16');
    await charger.getByRole('button', { name: 'Set' }).first().click();
    await charger.locator('.form-msg', { hasText: 'Applied: 16 A' }).waitFor();
    await eventually(() => cp.connector(1).limitA === 16, 5000, 20);
    t.pass('the charge point received the 16 A limit');
    const shift = page.evaluate(`new Promise((resolve) => {
      let total = 0;
      new PerformanceObserver((list) => { for (const e of list.getEntries()) if (!e.hadRecentInput) total += e.value; }).observe({ type: 'layout-shift', buffered: false });
      setTimeout(() => resolve(total), 1500);
    })`) as Promise<number>;
    await cp.tick(60_000);
    await row.locator('td', { hasText: '11.04 kW' }).waitFor({ timeout: 5000 });
    t.pass('power follows the limit live (16 A × 3 × 230 V)');
    t.ok((await shift) < 0.01, 'live updates do not shift the layout');
    await page.getByLabel('Current limit, connector 1 (A)').fill('500');
    await charger.getByRole('button', { name: 'Set' }).first().click();
    await charger.locator('.form-msg', { hasText: /^Refused: / }).waitFor();
    t.equal(await page.getByLabel('Current limit, connector 1 (A)').getAttribute('aria-invalid'), 'true', 'an out-of-range limit is refused with the reason');
    await shot('pages-02-chargers');
  });

  await t.test('links: backlog, oldest unsent, last error; drained once upstream accepts', async (t) => {
    await page.getByRole('link', { name: 'Links' }).click();
    await page.getByRole('heading', { level: 1, name: 'Links' }).waitFor();
    const backlog = Number((await page.locator('#sync-backlog').textContent())!.replace(/\D/g, ''));
    t.ok(backlog >= readings.length, `the backlog holds the unsent readings (${backlog})`);
    const link = page.locator('tr[data-link="central"]');
    await link.locator('.last-error', { hasText: 'upstream in maintenance' }).waitFor({ timeout: 10_000 });
    t.equal(await link.locator('td').nth(1).textContent(), 'down');
    t.match(await page.locator('#sync-oldest').textContent(), /^\d+ d \d+ h$/, 'the oldest unsent reading is from the day before yesterday');
    t.equal(await page.locator('#sync-mode').textContent(), 'primary, retrying', 'a down primary is not shown as healthy');
    t.match(await page.getByText('No Iridium modem on this gateway.').count(), 1);
    await shot('pages-03-links-backlog');
    ingest.accept();
    await page.locator('#sync-backlog', { hasText: /^0 records$/ }).waitFor({ timeout: 20_000 });
    t.ok(ingest.received() > 0, 'upstream received batches');
    t.equal(await link.locator('td').nth(1).textContent(), 'up');
    await shot('pages-04-links-drained');
  });

  await t.test('imports: the imported file and the refused one with its reason', async (t) => {
    await page.getByRole('link', { name: 'Imports' }).click();
    const source = page.locator('section[data-source="insight"]');
    await source.waitFor();
    const history = source.locator('table.imports');
    await history.locator('tr.ok[data-file="plant-room-good.csv"]').waitFor({ timeout: 30_000 });
    await history.locator('tr.failed[data-file="plant-room-truncated.csv"]').waitFor({ timeout: 30_000 });
    t.match(await history.locator('tr.ok td.counts').textContent(), /^8 rows, 32 points/);
    t.match(await history.locator('tr.failed td.reason').textContent(), /^line \d+: .*End of Report/i, 'the reason says where and what is wrong');
    t.match(await source.locator('.last-failure').textContent(), /plant-room-truncated\.csv/);
    await shot('pages-05-imports');

    // After a reload (the tab's memory gone) the rows come from GET /api/imports/insight:
    // the failed row carries what only the durable history has (datapoints, size).
    const fromRoute = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/imports/insight' && r.status() === 200);
    await page.reload();
    const routed = (await (await fromRoute).json()) as { items: Array<{ status: string; file: string; size: number; datapoints: number }> };
    const failedEntry = routed.items.find((e) => e.status === 'failed' && e.file === 'plant-room-truncated.csv');
    t.ok(failedEntry, 'the route lists the refused upload under its sent name');
    const failedRow = page.locator('section[data-source="insight"] table.imports tr.failed[data-file="plant-room-truncated.csv"]');
    await failedRow.waitFor();
    t.match(
      await failedRow.locator('td.counts').textContent(),
      new RegExp(`^\\d+ rows, \\d+ points.*\\(${failedEntry!.datapoints} datapoints · [\\d.,]+ k?B · [\\d,]+ ms\\)`),
      'the failed row is drawn from the route',
    );
  });

  await t.test('phone width: no page scrolls sideways', async (t) => {
    await page.setViewportSize({ width: 360, height: 740 });
    for (const [hash, heading] of [
      ['overview', 'Overview'],
      ['consumption', 'Consumption'],
      ['chargers', 'Chargers'],
      ['links', 'Links'],
      ['imports', 'Imports'],
    ] as const) {
      await page.goto(`${site.url}/#/${hash}`);
      await page.getByRole('heading', { level: 1, name: heading, exact: true }).waitFor();
      if (hash === 'consumption') await page.locator('#cons-rank li').first().waitFor();
      if (hash === 'chargers') await page.locator('section[data-charger] .chart canvas').first().waitFor();
      const overflow = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
      t.ok(overflow <= 0, `${hash}: no horizontal page scroll at 360 px (overflow ${overflow}px)`);
      await shot(`pages-06-phone-${hash}`);
    }
  });

  t.same(problems, [], 'no script errors or CSP violations in the console');
});
