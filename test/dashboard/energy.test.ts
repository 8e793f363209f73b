import t, { type Test } from 'tap';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { chromiumSkip, firstPage, launchChromium, logIn } from '../helpers/browser.js';
import { ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';
import type { EnergyReport } from '../../runtime/site/energy.js';
import type { PointRecord } from '../../storage/store.js';

const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'dashboard');
const WIDE = { width: 1366, height: 800 };
const PHONE = { width: 390, height: 844 };
const HOUR = 3_600_000;
/** Tuesday 2025-06-10 in Berlin (UTC+2): the site's local day, not the browser's (New York). */
const DAY = Date.UTC(2025, 5, 9, 22);
const IMPORT = [1, 1, 1, 0.4, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
const EXPORT = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const PRODUCTION = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0];

/** Counter readings at half past each local hour of the day (and one before it); the import meter is replaced in hour 03. */
function readings(id: string, perHour: number[], start: number): PointRecord[] {
  const out: PointRecord[] = [{ id, t: DAY - 30 * 60_000, v: start }];
  let v = start;
  perHour.forEach((kwh, h) => {
    v = id.endsWith('import') && h === 3 ? kwh : Math.round((v + kwh) * 1e6) / 1e6;
    out.push({ id, t: DAY + h * HOUR + 30 * 60_000, v });
  });
  return out;
}

// The page's number formats (energy.js), in the browser's locale (en-US here).
const kwh = (v: number | null) =>
  v === null ? '—' : `${v.toLocaleString('en-US', { maximumFractionDigits: Math.abs(v) < 10 ? 2 : Math.abs(v) < 1000 ? 1 : 0 })} kWh`;
const money = (v: number | null) =>
  v === null ? '—' : v.toLocaleString('en-US', { style: 'currency', currency: 'EUR', minimumFractionDigits: 2, maximumFractionDigits: 2 });
const pct = (v: number | null) => (v === null ? '—' : `${v.toLocaleString('en-US', { maximumFractionDigits: 1 })}\u00a0%`);

t.test('Energy page in headless Chromium: figures equal the REST answer, periods, desktop and phone', { skip: chromiumSkip }, async (t) => {
  const site = await startSecureSite(t, {
    gateway: { id: 'energy-page', name: 'Energy page test site', timezone: 'Europe/Berlin' },
    datapoints: [
      { id: 'site.grid.energy_import', kind: 'sensor', type: 'number', unit: 'kWh', description: 'Grid import register' },
      { id: 'site.grid.energy_export', kind: 'sensor', type: 'number', unit: 'kWh', description: 'Grid export register' },
      { id: 'site.pv.energy', kind: 'sensor', type: 'number', unit: 'kWh', description: 'PV production' },
      { id: 'site.hvac.energy', kind: 'sensor', type: 'number', unit: 'kWh', description: 'HVAC sub-meter' },
    ],
    site: {
      tariff: {
        currency: 'EUR',
        import: {
          default: 0.3,
          periods: [
            { days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '17:00', to: '21:00', price: 0.5, name: 'peak' },
            { from: '22:00', to: '06:00', price: 0.2, name: 'night' },
          ],
        },
        export: 0.08,
      },
    },
    auth: { loopback: 'none' },
  });
  await site.gateway.store.write([
    ...readings('site.grid.energy_import', IMPORT, 10_000),
    ...readings('site.grid.energy_export', EXPORT, 3_000),
    ...readings('site.pv.energy', PRODUCTION, 2_000),
  ]);

  await mkdir(ARTIFACTS, { recursive: true });
  const context = await launchChromium(t, { viewport: WIDE, timezoneId: 'America/New_York', locale: 'en-US' });
  const page = await firstPage(context);
  const problems: string[] = [];
  page.on('console', (m) => {
    // The refused date (400) at the end is on purpose.
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 400/.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  const overflow = () => page.evaluate('document.documentElement.scrollWidth - window.innerWidth') as Promise<number>;
  const rest = (q: string) => page.evaluate(`fetch('/api/site/energy?${q}').then((r) => r.json())`) as Promise<EnergyReport>;
  const text = async (sel: string) => ((await page.locator(sel).textContent()) ?? '').trim();
  const shot = (name: string, p: Page = page) => p.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  await page.goto(site.url);
  await logIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  problems.length = 0; // the session probe before login is answered 401 on purpose

  /** Every card, the table and the chart of the page equal the REST answer for the same period. */
  async function matchesRest(t: Test, q: string): Promise<EnergyReport> {
    const r = await rest(q);
    await page.locator('#energy-title', { hasText: r.title }).waitFor();
    const cards: Array<[string, string]> = [
      ['#energy-import', kwh(r.totals.import)],
      ['#energy-export', kwh(r.totals.export)],
      ['#energy-production', kwh(r.totals.production)],
      ['#energy-consumption', kwh(r.totals.consumption)],
      ['#energy-self-consumption', pct(r.totals.selfConsumption)],
      ['#energy-self-sufficiency', pct(r.totals.selfSufficiency)],
      ['#energy-cost', money(r.totals.cost)],
      ['#energy-earnings', money(r.totals.earnings)],
      ['#energy-net-cost', money(r.totals.netCost)],
    ];
    const shown = await Promise.all(cards.map(([sel]) => text(sel)));
    t.strictSame(
      shown,
      cards.map(([, v]) => v),
      `${q}: every card shows the REST figure`,
    );
    const rows = (await page.locator('#energy-table tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)))) as string[][];
    t.strictSame(
      rows,
      r.buckets.map((b) => [
        b.name,
        kwh(b.import),
        kwh(b.export),
        kwh(b.production),
        kwh(b.selfConsumed),
        kwh(b.consumption),
        money(b.cost),
        money(b.earnings),
      ]),
      `${q}: one table row per bucket, equal to the REST buckets`,
    );
    t.equal(await page.locator('#energy-chart svg g.bucket').count(), r.buckets.length, `${q}: one bar group per bucket`);
    return r;
  }

  await t.test('desktop: a bookmarked local day with a time-of-use tariff', async (t) => {
    await page.goto(`${site.url}/#/energy/day/2025-06-10`);
    await page.getByRole('heading', { level: 1, name: 'Energy' }).waitFor();
    const r = await matchesRest(t, 'period=day&at=2025-06-10');
    t.equal(r.title, 'Tue 10 Jun 2025', "the site's local day, although the browser is in New York");
    // The figures a technician checks by hand (test/runtime/site/energy.test.ts derives them).
    t.strictSame(await Promise.all(['#energy-import', '#energy-export', '#energy-production', '#energy-consumption'].map(text)), [
      '17.4 kWh',
      '4 kWh',
      '26 kWh',
      '39.4 kWh',
    ]);
    t.strictSame(await Promise.all(['#energy-self-consumption', '#energy-self-sufficiency'].map(text)), ['84.6\u00a0%', '55.8\u00a0%']);
    t.strictSame(await Promise.all(['#energy-cost', '#energy-earnings', '#energy-net-cost'].map(text)), ['€5.28', '€0.32', '€4.96']);
    t.equal(await text('#energy-table tfoot tr td:first-of-type'), '17.4 kWh', 'the total row');
    t.equal(await page.locator('#energy-chart svg rect.exp').count(), 4, 'export drawn below the axis in the four hours it happened');
    t.equal(await page.locator('#energy-chart svg rect.pv').count(), 14, 'self-consumed PV in the fourteen sunny hours');
    t.match(
      await text('#energy-tariff'),
      /^Importpeak €0\.50\/kWh 17:00–21:00 mon, tue, wed, thu, fri; night €0\.20\/kWh 22:00–06:00; €0\.30\/kWh otherwiseExport€0\.08\/kWh/,
    );
    t.match(await text('#energy-counters li[data-id="site.hvac.energy"]'), /not added up: a sub-meter/);
    t.match(await text('#energy-counters li[data-id="site.grid.energy_import"]'), /added up · 24 readings/);
    t.ok((await overflow()) <= 0, 'no horizontal page scroll at 1366 px');
    await shot('energy-desktop');

    // Previous / Next move by one period and put it in the address.
    await page.getByRole('button', { name: 'Next period' }).click();
    await matchesRest(t, 'period=day&at=2025-06-11');
    t.match(page.url(), /#\/energy\/day\/2025-06-11$/);
    t.equal(await text('#energy-import'), '0 kWh', 'the next day: no readings, nothing imported');
    await page.getByRole('button', { name: 'Previous period' }).click();
    await page.locator('#energy-title', { hasText: 'Tue 10 Jun 2025' }).waitFor();
    // Period tabs keep the day in view: its week, month and year.
    for (const [period, rows] of [
      ['week', 7],
      ['month', 30],
      ['year', 12],
    ] as const) {
      await page
        .getByRole('group', { name: 'Period' })
        .getByRole('button', { name: period[0]!.toUpperCase() + period.slice(1) })
        .click();
      const r = await matchesRest(t, `period=${period}&at=2025-06-10`);
      t.equal(r.buckets.length, rows);
      t.match(page.url(), new RegExp(`#/energy/${period}/2025-06-10$`));
      t.equal(await text('#energy-import'), '17.4 kWh', `${period}: the day's import`);
      t.equal(await text('#energy-cost'), '€5.28', `${period}: the day's cost, priced per hour`);
    }
    // Now: this year, running; Next is off.
    await page.getByRole('button', { name: 'Now' }).click();
    const now = await matchesRest(t, 'period=year');
    t.match(page.url(), /#\/energy\/year$/);
    t.match(await text('#energy-title'), new RegExp(`${now.title} \\(so far\\)`));
    t.ok(await page.getByRole('button', { name: 'Next period' }).isDisabled(), 'no future periods');
    // Back goes through the router to the bookmarked period before.
    await page.goBack();
    await page.locator('#energy-title', { hasText: '2025' }).waitFor();
    t.match(page.url(), /#\/energy\/year\/2025-06-10$/);
  });

  await t.test('phone: cards two across, the table scrolls inside its box', async (t) => {
    await page.setViewportSize(PHONE);
    await page.goto(`${site.url}/#/energy/day/2025-06-10`);
    await page.reload();
    await matchesRest(t, 'period=day&at=2025-06-10');
    t.ok((await overflow()) <= 0, 'no horizontal page scroll at 390 px');
    const wrap = await page.locator('.energy-table-wrap').evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth }));
    t.ok(wrap.scroll > wrap.client, `the table is wider than the phone and scrolls inside its box (${wrap.scroll} > ${wrap.client} px)`);
    const box = await page.locator('#energy-chart svg').boundingBox();
    t.ok(box && box.x >= 0 && box.x + box.width <= PHONE.width, 'the chart fits the screen');
    const card = await page.locator('#energy-self-sufficiency').boundingBox();
    t.ok(card && card.width < PHONE.width / 2, 'figure cards are two across');
    await shot('energy-phone');
    await page.setViewportSize(WIDE);
  });

  await t.test('a bad address shows the period it can, a refused one says why', async (t) => {
    await page.goto(`${site.url}/#/energy/decade`);
    const r = await matchesRest(t, 'period=day');
    t.ok(r.now >= r.start && r.now < r.end, 'an unknown period falls back to today');
    await page.goto(`${site.url}/#/energy/day/2025-02-30`);
    await page.getByRole('alert').filter({ hasText: 'Cannot load the figures' }).waitFor();
    t.match(
      await page.getByRole('alert').filter({ hasText: 'Cannot load' }).textContent(),
      /"at" is not a calendar date: "2025-02-30"/,
      "the gateway's reason",
    );
    t.strictSame(problems, [], 'no errors in the console');
  });
});
