// The site page's Consumption card in headless Chromium (time zone Asia/Kolkata, UTC+05:30: local
// days do not start on a UTC hour, so the page must sum 15 min rollups), against a central (level
// store, in this process) fed through the signed HTTP ingest path: 16 days of a kWh meter read
// every 15 min, with a meter swap (the counter drops to 2.5) and a 6 h gap across a local
// midnight, a PV counter in Wh, and datapoints that are not energy counters. The energy per day
// a person sees equals the aggregates API's answer (agg=delta) summed into local days and the
// value this test computes from the readings it sent; at 1366×800 and 390×844; and a site with
// no energy counter says so.
import t, { type Test } from 'tap';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { chromiumSkip, firstPage, launchChromium, logIn, pageErrors } from '../helpers/browser.js';
import type { Teardown } from '../helpers/teardown.js';
import { centralEnergyCounters } from '../../central/energy-counters.js';
import { API_TOKEN, type JsonBody } from './helpers.js';
import { ADMIN_PASSWORD, SimulatedGateway, VIEWER_PASSWORD, VIEWPORTS, overflows, pageTrue, ARTIFACTS, startWebCentral, traceUPlot } from './web-helpers.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** The browser's zone and its offset (India has kept +05:30 all year since 1945). */
const ZONE = 'Asia/Kolkata';
const OFFSET = 5.5 * HOUR;
const SECRET = { meter: 'site-meter-hmac-secret-0123456789', plain: 'site-plain-hmac-secret-0123456789' };
const METER = 'meter.main.energy_import';
const PV = 'pv.inverter.energy_wh';

type Reading = { id: string; t: number; v: number };

/** The local day (days since the epoch, in ZONE) of a time, and the UTC time a local day starts. */
const localDay = (t: number): number => Math.floor((t + OFFSET) / DAY);
const dayStart = (day: number): number => day * DAY - OFFSET;
/** The Monday (local day) of the week holding `day`: 1970-01-01 was a Thursday. */
const mondayOf = (day: number): number => day - ((day + 3) % 7);

/**
 * Energy per local day of the week from `monday`, from the readings themselves, as the gateway
 * defines it (storage/rollups.ts `counterStep`, runtime/dashboard/README.md "Consumption
 * figures"): each reading adds its step from the reading before it — all of it when the
 * counter dropped (a reset: counted up from 0) — to the day it falls in, so what a gap hid
 * lands on the day of the first reading after it. Null: no reading that day.
 */
function dailyFromReadings(readings: readonly Reading[], monday: number): Array<number | null> {
  const out: Array<number | null> = new Array(7).fill(null);
  const sorted = [...readings].sort((a, b) => a.t - b.t);
  for (let i = 0; i < sorted.length; i++) {
    const k = localDay(sorted[i]!.t) - monday;
    if (k < 0 || k >= 7) continue;
    const prev = sorted[i - 1]?.v;
    const cur = sorted[i]!.v;
    const step = prev === undefined ? 0 : cur >= prev ? cur - prev : cur;
    out[k] = (out[k] ?? 0) + step;
  }
  return out;
}

/** How the page writes energy (consumption.js formatEnergy, en-US). */
function shownEnergy(v: number | null): string {
  if (v === null) return '—';
  const digits = Math.abs(v) < 10 ? 2 : Math.abs(v) < 1000 ? 1 : 0;
  return `${v.toLocaleString('en-US', { maximumFractionDigits: digits })} kWh`;
}

const sum = (xs: ReadonlyArray<number | null>): number => xs.reduce<number>((a, v) => a + (v ?? 0), 0);

async function api(url: string, path: string, token: string | null = API_TOKEN): Promise<{ status: number; body: JsonBody }> {
  const res = await fetch(url + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.status, body: await res.json() };
}

/** The aggregates API's answer (agg=delta, 15 min: a local day here starts at :30 UTC) summed into the local days of the week from `monday`. */
async function dailyFromApi(url: string, gateway: string, id: string, monday: number): Promise<Array<number | null>> {
  const from = dayStart(monday);
  const to = dayStart(monday + 7) - 1;
  const r = await api(url, `/api/gateways/${gateway}/datapoints/${id}/values?from=${from}&to=${to}&interval=15m&agg=delta`);
  if (r.status !== 200) throw new Error(`values: ${r.status} ${JSON.stringify(r.body)}`);
  const out: Array<number | null> = new Array(7).fill(null);
  for (const p of r.body.values as Array<{ t: number; v: number }>) {
    const k = localDay(p.t) - monday;
    out[k] = (out[k] ?? 0) + p.v;
  }
  return out;
}

/** A Chromium page in ZONE at `viewport`, its uncaught errors and CSP refusals collected (web-helpers openBrowser, with a time zone). */
async function openBrowser(t: Teardown, viewport: { width: number; height: number }): Promise<{ page: Page; errors: string[] }> {
  const context = await launchChromium(t, { viewport, locale: 'en-US', timezoneId: ZONE });
  const page = await firstPage(context);
  const errors = pageErrors(page);
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) errors.push(m.text());
  });
  return { page, errors };
}

/** The data of the newest uPlot drawn in the Consumption card (web-helpers traceUPlot keeps them; the datapoint chart is another). */
async function barsPlotted(page: Page): Promise<{ ys: Array<number | null> } | undefined> {
  return page.evaluate(() => {
    type Plot = { root: unknown; data: [number[], Array<number | null>] };
    const box = (globalThis as unknown as { document: { querySelector(s: string): { contains(n: unknown): boolean } | null } }).document.querySelector(
      '#cons-chart',
    );
    const plots = (globalThis as unknown as { __uplots?: Plot[] }).__uplots ?? [];
    const u = plots.filter((p) => box?.contains(p.root)).at(-1);
    return u ? { ys: [...u.data[1]] } : undefined;
  });
}

/** Elements reaching past the right edge of the screen (what to look at when the page scrolls sideways). */
function widerThanScreen(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    type El = { getBoundingClientRect(): { right: number }; tagName: string; id: string; className: unknown };
    const g = globalThis as unknown as { innerWidth: number; document: { querySelectorAll(s: string): ArrayLike<El> } };
    return Array.from(g.document.querySelectorAll('body *'))
      .filter((e) => e.getBoundingClientRect().right > g.innerWidth + 0.5)
      .slice(0, 8)
      .map((e) => `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}.${String(e.className)} → ${Math.round(e.getBoundingClientRect().right)}`);
  });
}

/** A screenshot of the Consumption card (the rest of the site page is web-fleet.test.ts's), cut from the whole page so the sticky header does not cover it. */
async function cardShot(page: Page, name: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.evaluate('window.scrollTo(0, 0)');
  const box = await page.locator('section[aria-label="Consumption"]').boundingBox();
  if (!box) throw new Error('no Consumption card to photograph');
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true, clip: box });
}

type Row = { start: string; label: string; text: string; kwh: string };
const tableRows = (page: Page): Promise<Row[]> =>
  page
    .locator('#cons-table tbody tr')
    .evaluateAll((rows: Array<{ dataset: Record<string, string>; querySelector(s: string): { textContent: string; dataset: Record<string, string> } }>) =>
      rows.map((r) => ({
        start: r.dataset.start!,
        label: r.querySelector('th').textContent.trim(),
        text: r.querySelector('td').textContent.trim(),
        kwh: r.querySelector('td').dataset.kwh!,
      })),
    );

t.test('which datapoints central takes for energy counters, from their ids and types', async (t) => {
  const dp = (id: string, type: 'number' | 'string' = 'number') => ({ gateway: 'g', id, type });
  const found = centralEnergyCounters([
    dp('meter.main.energy_import'),
    dp('ev.cp1.1.energy'),
    dp('meter.grid.energy_export'),
    dp('site.main.import_mwh'),
    dp('pv2.yield_wh'),
    dp('meter.main.energy_total'),
    dp('meter.main.energy_reactive_import'),
    dp('meter.main.reactive_energy_export'),
    dp('ev.cp1.1.session_energy'),
    dp('gateway.sync.energy'),
    dp('plant.energy.mode', 'string'),
    dp('plant.pump.power'),
  ]).map((c) => [c.id, c.role, c.unit, c.unitFrom]);
  t.same(found, [
    ['ev.cp1.1.energy', 'consumption', 'kWh', 'assumed'],
    ['meter.grid.energy_export', 'export', 'kWh', 'assumed'],
    ['meter.main.energy_import', 'import', 'kWh', 'assumed'],
    ['meter.main.energy_total', 'total', 'kWh', 'assumed'],
    ['pv2.yield_wh', 'production', 'Wh', 'id'],
    ['site.main.import_mwh', 'import', 'MWh', 'id'],
  ]);
});

t.test('energy per day from the central store, as a person sees it, equals the aggregates API and the readings', async (t) => {
  const central = await startWebCentral(t, {
    gateways: [
      { id: 'site-meter', name: 'Dairy farm', auth: { type: 'hmac', secret: SECRET.meter } },
      { id: 'site-plain', name: 'Water tank', auth: { type: 'hmac', secret: SECRET.plain } },
    ],
  });
  const url = central.url;
  const now = Date.now();
  const thisMonday = mondayOf(localDay(now));
  const lastMonday = thisMonday - 7;
  // Last week: the meter swapped on Wednesday 10:00 (it starts again at 2.5), nothing read from Thursday 21:00 to Friday 03:00.
  const swapAt = dayStart(lastMonday + 2) + 10 * HOUR;
  const gap = { from: dayStart(lastMonday + 3) + 21 * HOUR, to: dayStart(lastMonday + 4) + 3 * HOUR };

  // Every 15 min from 16 days ago (before last Monday, whatever today is) to a few minutes ago.
  // Steps are multiples of 1/8: exact in binary, so every sum here is exact too.
  const meter: Reading[] = [];
  const pv: Reading[] = [];
  const other: Array<{ id: string; t: number; v: number }> = [];
  let kwh = 1000;
  let wh = 500_000;
  const first = Math.ceil((now - 16 * DAY) / (15 * MIN)) * 15 * MIN;
  for (let k = 0, at = first; at < now - 2 * MIN; k++, at += 15 * MIN) {
    kwh = at >= swapAt && at - 15 * MIN < swapAt ? 2.5 : kwh + (((k * 37) % 8) + 1) * 0.125;
    wh += 100 * ((k % 8) + 1);
    // The meters count on through the gap; nothing is read (or sent) then.
    if (at >= gap.from && at < gap.to) continue;
    meter.push({ id: METER, t: at, v: kwh });
    pv.push({ id: PV, t: at, v: wh });
    if (k % 4 === 0) {
      other.push({ id: 'meter.main.energy_reactive_import', t: at, v: k }, { id: 'ev.cp1.1.session_energy', t: at, v: k % 50 });
      other.push({ id: 'plant.tank.level', t: at, v: 40 + (k % 10) }, { id: 'gateway.sync.backlog', t: at, v: 0 });
    }
  }
  const sim = new SimulatedGateway(url, 'site-meter', SECRET.meter);
  const all = [...meter, ...pv, ...other];
  for (let i = 0; i < all.length; i += 2000) await sim.send(all.slice(i, i + 2000));
  const plain = new SimulatedGateway(url, 'site-plain', SECRET.plain);
  await plain.send([
    { id: 'plant.tank.level', t: now - 5 * MIN, v: 71.5 },
    { id: 'plant.pump.power', t: now - 5 * MIN, v: 1200 },
  ]);

  // ---- the API: which datapoints are energy counters ----
  await t.test('GET /api/gateways/:gateway/energy/counters', async (t) => {
    const r = await api(url, '/api/gateways/site-meter/energy/counters');
    t.equal(r.status, 200);
    t.same(
      r.body.counters,
      [
        {
          id: METER,
          unit: 'kWh',
          kwhPerUnit: 1,
          unitFrom: 'assumed',
          role: 'import',
          why: 'id word "import"',
          latest: { v: meter.at(-1)!.v, t: meter.at(-1)!.t },
        },
        { id: PV, unit: 'Wh', kwhPerUnit: 0.001, unitFrom: 'id', role: 'production', why: 'id word "pv"', latest: { v: pv.at(-1)!.v, t: pv.at(-1)!.t } },
      ],
      'the kWh meter and the Wh PV counter; not reactive energy, a session counter, a level or the gateway’s bookkeeping',
    );
    t.equal(r.body.count, 2);
    t.same((await api(url, '/api/gateways/site-plain/energy/counters')).body, { gateway: 'site-plain', counters: [], count: 0 }, 'none on a site without one');
    const unknown = await api(url, '/api/gateways/nowhere/energy/counters');
    t.equal(unknown.status, 404, 'an unknown gateway: 404');
    t.match(unknown.body.error.message, /no gateway "nowhere"/);
    t.equal((await api(url, '/api/gateways/site-meter/energy/counters', null)).status, 401, 'no token: 401');
  });

  // ---- what the page must show: the readings' own figures, and the aggregates API's ----
  const expected = {
    last: dailyFromReadings(meter, lastMonday),
    this: dailyFromReadings(meter, thisMonday),
    pvLast: sum(dailyFromReadings(pv, lastMonday)) * 0.001,
  };
  t.same(await dailyFromApi(url, 'site-meter', METER, lastMonday), expected.last, 'last week: the aggregates API summed into local days = the readings’ steps');
  t.same(await dailyFromApi(url, 'site-meter', METER, thisMonday), expected.this, 'this week too');
  t.ok(
    expected.last.every((v) => v !== null && v > 0),
    'every day of last week has energy',
  );
  const swapDay = meter.filter((r) => localDay(r.t) === lastMonday + 2);
  t.ok(
    swapDay.some((r, i) => i > 0 && r.v < swapDay[i - 1]!.v),
    'the counter does drop on Wednesday (the reset is in the data)',
  );

  const beforeGap = meter.filter((r) => r.t < gap.from).at(-1)!;
  const afterGap = meter.find((r) => r.t >= gap.to)!;
  t.ok(afterGap.t - beforeGap.t >= 6 * HOUR && afterGap.v - beforeGap.v > 1, 'the gap hides 6 h of counting (more than one reading’s step)');
  t.equal(localDay(afterGap.t), lastMonday + 4, 'and lands on Friday');

  const dayLabel = (start: number) => new Date(start).toLocaleDateString('en-US', { timeZone: ZONE, weekday: 'short', day: 'numeric', month: 'short' });
  const checkWeek = async (t: Test, page: Page, monday: number, values: Array<number | null>, what: string) => {
    const rows = await tableRows(page);
    t.same(
      rows.map((r) => r.start),
      Array.from({ length: 7 }, (_, i) => String(dayStart(monday + i))),
      `${what}: seven rows, one per local day from Monday 00:00 in ${ZONE}`,
    );
    t.same(
      rows.map((r) => r.label),
      rows.map((r) => dayLabel(Number(r.start))),
      `${what}: each row names its day`,
    );
    t.same(
      rows.map((r) => r.text),
      values.map(shownEnergy),
      `${what}: the energy per day a person reads = the readings’ = the aggregates API’s`,
    );
    t.same(
      rows.map((r) => (r.kwh === '' ? null : Number(r.kwh))),
      values,
      `${what}: exactly`,
    );
    t.equal(((await page.locator('#cons-total').textContent()) ?? '').trim(), shownEnergy(sum(values)), `${what}: the total`);
    const bars = await barsPlotted(page);
    t.same(bars?.ys, values, `${what}: the bars are the same figures`);
  };
  for (const [view, who, password] of [
    ['desktop', 'admin', ADMIN_PASSWORD],
    ['phone', 'vera', VIEWER_PASSWORD],
  ] as const) {
    await t.test(`${view} (${VIEWPORTS[view].width}×${VIEWPORTS[view].height}), ${who}`, { skip: chromiumSkip }, async (t) => {
      const { page, errors } = await openBrowser(t, VIEWPORTS[view]);
      await traceUPlot(page);
      const asked: string[] = [];
      page.on('request', (r) => {
        if (r.url().includes('agg=delta')) asked.push(decodeURIComponent(r.url()));
      });
      await page.goto(`${url}/#/site/site-meter`);
      await logIn(page, who, password);
      await page.locator('#cons-table tbody tr').first().waitFor();
      await page.locator('#cons-counters tbody[data-start]').waitFor();
      t.equal(await page.locator('#cons-meter').inputValue(), METER, 'the import meter is shown first');
      t.same(
        await page.locator('#cons-meter option').allTextContents(),
        [`${METER} (import)`, `${PV} (production)`],
        'the counters offered, with what each counts',
      );
      t.equal(await page.locator('#cons-period').inputValue(), 'week', 'a week of days by default');
      await checkWeek(t, page, thisMonday, expected.this, 'this week');
      t.ok(
        asked.some((u) => u.includes(`/api/gateways/site-meter/datapoints/${METER}/values?`) && u.includes('interval=15m')),
        'asked the central store’s aggregates, 15 min (the zone is not whole hours off UTC)',
      );

      await page.locator('#cons-prev').click();
      await pageTrue(page, `document.querySelector('#cons-table tbody tr')?.dataset.start === '${dayStart(lastMonday)}'`);
      await pageTrue(page, `document.querySelector('#cons-counters tbody')?.dataset.start === '${dayStart(lastMonday)}'`);
      await checkWeek(t, page, lastMonday, expected.last, 'last week (a meter swap, a 6 h gap across midnight)');
      t.match(
        await page.locator('#cons-title').textContent(),
        /^Week of .* · energy per day of meter\.main\.energy_import$/,
        'the title names the week and the counter',
      );
      // Both counters' totals of the week; the PV counter's Wh as kWh.
      const listed = await page
        .locator('#cons-counters tbody tr')
        .evaluateAll((rows: Array<{ dataset: Record<string, string>; querySelector(s: string): { textContent: string; dataset: Record<string, string> } }>) =>
          rows.map((r) => {
            const energy = r.querySelector('td.num');
            return {
              id: r.dataset.id,
              role: r.querySelector('.cons-role').textContent.trim(),
              text: energy.textContent.trim(),
              kwh: Number(energy.dataset.kwh),
            };
          }),
        );
      t.same(
        listed.map((r) => [r.id, r.role, r.text]),
        [
          [METER, 'import', shownEnergy(sum(expected.last))],
          [PV, 'production', shownEnergy(expected.pvLast)],
        ],
        'every counter’s energy of the week, in kWh',
      );
      t.ok(Math.abs(listed[1]!.kwh - expected.pvLast) < 1e-9, `PV: ${listed[1]!.kwh} kWh = ${expected.pvLast} (Wh / 1000)`);
      t.match(await page.locator('#cons-units').textContent(), /taken as kWh/, 'the page says which unit it assumed');

      t.notOk(await overflows(page), 'no horizontal scroll', { wider: await widerThanScreen(page) });
      t.ok(
        await page.evaluate(`[...document.querySelectorAll('#cons .table-wrap')].every((w) => w.scrollWidth <= w.clientWidth)`),
        'the tables fit the card (no scrolling inside them either)',
      );
      const box = await page.locator('#cons-chart').boundingBox();
      t.ok(box && box.x >= 0 && box.x + box.width <= VIEWPORTS[view].width, 'the bars fit the screen');
      await cardShot(page, `site-consumption-${view}`);

      // ---- a site without an energy counter ----
      await page.goto(`${url}/#/site/site-plain`);
      await page.locator('#cons-empty').waitFor();
      t.match(await page.locator('#cons-empty').textContent(), /^No energy counters reported\./, 'a site without energy counters says so');
      t.equal(await page.locator('#cons-chart').count(), 0, 'and draws no chart');
      t.notOk(await overflows(page), 'no horizontal scroll');
      if (view === 'phone') await cardShot(page, 'site-consumption-empty-phone');
      t.same(errors, [], 'no page errors or CSP refusals');
    });
  }
});
