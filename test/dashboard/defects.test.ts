// Issue 24, item 1: defects seen on the dashboard, each reproduced in headless Chromium.
// 1. JSON values stretched the Datapoints table's Value column off the screen.
// 2. Raw charts and the CSV showed the oldest 10,000 readings of a range, not the newest.
// 3. A single reading drew a time axis years wide on the Overview.
// 4. "Largest consumers" ranked PV production, export and total counters as consumption.
// 5. Phone: Imports file names wrapped one character per line; Users' Remove was clipped.
// Screenshots of each page at 1366×800 and 390×844 go to test/artifacts/dashboard/.
import t from 'tap';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { chromiumSkip, firstPage, launchChromium, logIn } from '../helpers/browser.js';
import { ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';
import { hashToken } from '../../runtime/auth/passwords.js';
import { defaultInsightPoints, insightReportLines } from '../../adapters/bms-files/simulator.js';

const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'dashboard');
const UPLOAD_TOKEN = 'upload-token-defects-0123456789';
const HOUR = 3600e3;
const DAY = 24 * HOUR;
const WIDE = { width: 1366, height: 800 };
const PHONE = { width: 390, height: 844 };

/** A JSON value as a device might report it: thousands of characters on one line. */
const bigJson = (n: number) => ({
  mode: 'auto',
  zones: Array.from({ length: n }, (_, i) => ({ zone: `zone-${i}`, setpoint: 20 + (i % 5), occupied: i % 2 === 0 })),
});

/**
 * Every uPlot the page builds, kept in `window.__uplots`: the vendor module is served with
 * a wrapper around its default export (test instrumentation only), so the test reads the
 * plotted data and the time axis of today's and tomorrow's code alike.
 */
async function traceUPlot(context: BrowserContext): Promise<void> {
  await context.route('**/ui/vendor/uPlot.esm.js', async (route) => {
    const res = await route.fetch();
    const src = await res.text();
    const tail = 'export { uPlot as default };';
    if (!src.trimEnd().endsWith(tail)) throw new Error('uPlot.esm.js no longer ends with its default export: update traceUPlot');
    const body =
      src.trimEnd().slice(0, -tail.length) +
      `
const __plots = (globalThis.__uplots = []);
function TracedUPlot(opts, data, target) { const u = new uPlot(opts, data, target); __plots.push(u); return u; }
Object.setPrototypeOf(TracedUPlot, uPlot);
TracedUPlot.prototype = uPlot.prototype;
export { TracedUPlot as default };
`;
    await route.fulfill({ response: res, body });
  });
}

interface PlotState {
  xs: number[];
  ys: Array<number | null>;
  min: number;
  max: number;
}

/** The newest live uPlot drawn inside `selector`: its x data (s), y data and x scale. */
function plotIn(page: Page, selector: string): Promise<PlotState | null> {
  return page.evaluate(`(() => {
    const plots = (globalThis.__uplots ?? []).filter((u) => u.root.isConnected && u.root.closest(${JSON.stringify(selector)}));
    const u = plots[plots.length - 1];
    return u ? { xs: [...u.data[0]], ys: [...u.data[1]], min: u.scales.x.min, max: u.scales.x.max } : null;
  })()`) as Promise<PlotState | null>;
}

t.test('issue 24 defects in headless Chromium', { skip: chromiumSkip }, async (t) => {
  const site = await startSecureSite(t, {
    gateway: { id: 'defects', name: 'Dashboard defects test site', timezone: 'UTC' },
    datapoints: [
      { id: 'site.grid.power', kind: 'sensor', type: 'number', unit: 'W', description: 'Grid power' },
      { id: 'lab.fast.power', kind: 'sensor', type: 'number', unit: 'W', description: 'A 1 Hz power reading' },
      { id: 'hvac.plan.json', kind: 'sensor', type: 'json', description: 'Zone plan (JSON object)' },
      { id: 'hvac.alarms.json', kind: 'sensor', type: 'json', description: 'Active alarms (JSON array)' },
      { id: 'site.main.energy_import', kind: 'sensor', type: 'number', unit: 'kWh', description: 'Main meter, import register' },
      { id: 'site.main.energy_export', kind: 'sensor', type: 'number', unit: 'kWh', description: 'Main meter, export register' },
      { id: 'site.main.energy_total', kind: 'sensor', type: 'number', unit: 'kWh', description: 'Main meter, import + export' },
      { id: 'pv.inverter.energy', kind: 'sensor', type: 'number', unit: 'Wh', description: 'PV inverter, lifetime production' },
      { id: 'site.heating.energy', kind: 'sensor', type: 'number', unit: 'kWh', description: 'Heating sub-meter' },
      { id: 'site.chp.energy', kind: 'sensor', type: 'number', unit: 'kWh', description: 'CHP generator output', meta: { energy: 'production' } },
      { id: 'site.pv_pump.energy', kind: 'sensor', type: 'number', unit: 'kWh', description: 'PV cooling pump (draws power)', meta: { energy: 'consumption' } },
    ],
    adapters: [
      {
        id: 'insight',
        type: 'bms-files',
        format: 'siemens-insight',
        upload: { tokenHashes: [hashToken(UPLOAD_TOKEN)] },
        points: [{ exact: 'OATEMP', id: 'bms.outdoor.temperature', unit: '°F' }],
      },
    ],
    auth: { loopback: 'none' },
  });
  const ingest = site.gateway.ingest;
  const now = Date.now();

  // 2: 6 h of 1 Hz readings ending now (21,600: more than the chart's 10,000 raw readings).
  const fast = Array.from({ length: 6 * 3600 }, (_, i) => ({ id: 'lab.fast.power', v: 1000 + (i % 600), t: now - 1000 - (6 * 3600 - 1 - i) * 1000 }));
  for (let i = 0; i < fast.length; i += 5000) await ingest.acceptMany('test', fast.slice(i, i + 5000));
  const newestFast = fast[fast.length - 1]!.t;
  // 3: the Overview's power datapoint has one reading.
  await ingest.accept('test', 'site.grid.power', { v: 1234, t: now - 10_000 });
  // 1: two JSON values thousands of characters long.
  await ingest.accept('test', 'hvac.plan.json', { v: bigJson(60), t: now - 5000 });
  await ingest.accept('test', 'hvac.alarms.json', { v: Array.from({ length: 80 }, (_, i) => `AHU-${i}: filter differential pressure high`), t: now - 5000 });
  // 4: counters read every hour of yesterday (UTC), 1 kWh per hour each (in its unit).
  const yesterday = Math.floor(now / DAY) * DAY - DAY;
  const counters: Record<string, number> = {
    'site.main.energy_import': 1,
    'site.main.energy_export': 1,
    'site.main.energy_total': 1,
    'pv.inverter.energy': 1000,
    'site.heating.energy': 1,
    'site.chp.energy': 1,
    'site.pv_pump.energy': 1,
  };
  const counterPoints = Object.entries(counters).flatMap(([id, step]) =>
    Array.from({ length: 25 }, (_, h) => ({
      id,
      v: 100 * step + h * step * (id === 'site.heating.energy' ? 0.5 : id === 'site.pv_pump.energy' ? 0.75 : 1),
      t: yesterday + (h - 1) * HOUR + 30 * 60e3,
    })),
  );
  await ingest.acceptMany('test', counterPoints);
  // 5: an imported file with a long name.
  const longName = 'north-wing-air-handling-unit-3-trend-export.csv';
  const report =
    [...insightReportLines({ points: defaultInsightPoints(3), start: now - 3 * HOUR, rows: 4, intervalMinutes: 15, timeZone: 'UTC' })].join('\r\n') + '\r\n';
  const form = new FormData();
  form.append('file', new Blob([report]), longName);
  t.equal(
    (await fetch(`${site.httpUrl}/upload/siemens`, { method: 'POST', headers: { authorization: `Bearer ${UPLOAD_TOKEN}` }, body: form })).status,
    200,
    'the report is uploaded',
  );

  await mkdir(ARTIFACTS, { recursive: true });
  const context = await launchChromium(t, { viewport: WIDE, timezoneId: 'UTC', locale: 'en-US' });
  await traceUPlot(context);
  const page = await firstPage(context);
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of (401|404)/.test(m.text())) problems.push(m.text());
  });
  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `defects-${name}.png`), fullPage: true });
  const overflow = () => page.evaluate('document.documentElement.scrollWidth - window.innerWidth') as Promise<number>;
  const sizeName = (s: { width: number }) => (s.width === PHONE.width ? 'phone' : String(s.width));

  await page.goto(site.url);
  await logIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();

  await t.test('1: JSON values are cut in the Datapoints table, the full value in its title', async (t) => {
    for (const size of [WIDE, { width: 1920, height: 1080 }, PHONE]) {
      await page.setViewportSize(size);
      await page.goto(`${site.url}/#/datapoints`);
      await page.locator('table.dps tr[data-id="hvac.plan.json"]').waitFor();
      const boxes = (await page.evaluate(`(() => {
        const wrap = document.querySelector('.table-wrap').getBoundingClientRect();
        return [...document.querySelectorAll('table.dps tbody tr')].map((tr) => {
          const cell = tr.querySelector('td.num').getBoundingClientRect();
          return { id: tr.dataset.id, width: cell.width, right: cell.right, wrapRight: wrap.right };
        });
      })()`)) as Array<{ id: string; width: number; right: number; wrapRight: number }>;
      t.ok(boxes.length >= 10, 'the table lists the datapoints');
      t.same(
        boxes.filter((b) => b.width > 400).map((b) => `${b.id}: ${Math.round(b.width)} px`),
        [],
        `${size.width} px: every value cell is bounded (≤ 400 px)`,
      );
      t.same(
        boxes.filter((b) => b.right > Math.min(b.wrapRight, size.width) + 1).map((b) => `${b.id}: right edge ${Math.round(b.right)} px`),
        [],
        `${size.width} px: every value is in view, not scrolled off`,
      );
      t.ok((await overflow()) <= 0, `${size.width} px: no horizontal page scroll`);
      await shot(`01-datapoints-${sizeName(size)}`);
    }
    const title = await page.locator('tr[data-id="hvac.plan.json"] td.num [title]').getAttribute('title');
    t.same(JSON.parse(title ?? 'null'), bigJson(60), 'the whole JSON value is in the tooltip');
    // The datapoint's own page shows the whole value, wrapped inside the screen.
    await page.goto(`${site.url}/#/datapoints/hvac.plan.json`);
    await page.locator('#dp-value').waitFor();
    t.same(JSON.parse((await page.locator('#dp-value').textContent()) ?? 'null'), bigJson(60));
    t.ok((await overflow()) <= 0, 'the datapoint page does not scroll sideways on a phone');
    await shot('01-datapoint-json-phone');
    await page.setViewportSize(WIDE);
  });

  await t.test('2: the 24 h chart of 6 h of 1 Hz readings reaches now; the CSV holds the newest', async (t) => {
    const asked: string[] = [];
    const onRequest = (r: { url(): string }) => {
      if (r.url().includes('/api/datapoints/lab.fast.power/values')) asked.push(r.url());
    };
    page.on('request', onRequest);
    await page.goto(`${site.url}/#/datapoints/lab.fast.power`);
    t.equal(await page.locator('#range').inputValue(), '24h');
    await page.locator('#chart + p[role="status"]', { hasText: /\d/ }).waitFor();
    await page.locator('#chart canvas').first().waitFor();
    const plot = (await plotIn(page, '#chart'))!;
    t.ok(plot, 'the chart is drawn');
    const plotted = plot.xs.filter((_, i) => plot.ys[i] !== null);
    const newest = plotted[plotted.length - 1]! * 1000;
    t.ok(Date.now() - newest < 60e3, `the newest plotted point is within a minute of now (${Math.round((Date.now() - newest) / 1000)} s old)`);
    t.ok(plotted[0]! * 1000 <= now - 6 * HOUR + 60e3, 'the oldest reading of the range is drawn too');
    t.ok(plot.max * 1000 >= Date.now() - 60e3, 'the time axis ends now');
    t.match(await page.locator('#chart + p[role="status"]').textContent(), /more than 10,000 readings/, 'the page says why it draws averages');
    t.ok(
      asked.some((u) => /order=desc/.test(u)),
      'raw readings are asked newest first',
    );

    // The CSV of the range: every reading of it, the newest last.
    const download = page.waitForEvent('download');
    await page.locator('#csv').click();
    const file = await (await download).path();
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    t.equal(lines[0], 'time_iso,epoch_ms,value');
    t.equal(lines.length - 1, fast.length, 'the CSV holds the whole range (below the CSV limit)');
    t.equal(Number(lines[lines.length - 1]!.split(',')[1]), newestFast, 'the last CSV row is the newest reading');
    await page.locator('#chart ~ p[role="status"]', { hasText: 'the whole range' }).waitFor();
    page.off('request', onRequest);
    await shot('02-chart-24h-1366');
    await page.setViewportSize(PHONE);
    await page.reload();
    await page.locator('#chart canvas').first().waitFor();
    await shot('02-chart-24h-phone');
    await page.setViewportSize(WIDE);
  });

  await t.test('3: one reading draws today on the Overview, not years', async (t) => {
    for (const size of [WIDE, PHONE]) {
      await page.setViewportSize(size);
      await page.goto(`${site.url}/#/overview`);
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      await page.locator('.chart canvas').first().waitFor();
      const plot = (await plotIn(page, '.chart'))!;
      t.ok(plot, 'the chart is drawn');
      const midnight = Math.floor(Date.now() / DAY) * DAY;
      t.ok(plot.min * 1000 >= midnight - 60e3, `the axis starts at local midnight (${new Date(plot.min * 1000).toISOString()})`);
      t.ok(plot.max * 1000 <= Date.now() + 60e3 && plot.max * 1000 >= Date.now() - 5 * 60e3, `the axis ends now (${new Date(plot.max * 1000).toISOString()})`);
      await shot(`03-overview-${sizeName(size)}`);
    }
    // The datapoint chart of that single reading: the selected 24 h.
    await page.goto(`${site.url}/#/datapoints/site.grid.power`);
    await page.locator('#chart canvas').first().waitFor();
    const plot = (await plotIn(page, '#chart'))!;
    t.ok(Math.abs((plot.max - plot.min) * 1000 - DAY) < 5 * 60e3, 'the datapoint chart spans the selected 24 h');
    await page.setViewportSize(WIDE);
  });

  await t.test('4: production, export and total counters are not ranked as consumers', async (t) => {
    for (const size of [WIDE, PHONE]) {
      await page.setViewportSize(size);
      await page.goto(`${site.url}/#/consumption`);
      await page.getByRole('heading', { level: 1, name: 'Consumption' }).waitFor();
      await page.getByRole('button', { name: 'Previous period' }).click();
      await page.locator('#cons-rank li[data-id="site.main.energy_import"]').waitFor();
      const ranked = await page.locator('#cons-rank li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-id')));
      t.same(
        ranked,
        ['site.main.energy_import', 'site.pv_pump.energy', 'site.heating.energy'],
        `${size.width} px: import and consumption counters only, by meta.energy or id words`,
      );
      // Production counters are still there to look at, as meters.
      t.ok(
        await page.locator('#cons-meter option[value="pv.inverter.energy"]', { hasText: 'production' }).count(),
        'the meter list names a counter production',
      );
      t.ok((await overflow()) <= 0, `${size.width} px: no horizontal page scroll on Consumption`);
      await shot(`04-consumption-${sizeName(size)}`);
      await page.getByRole('button', { name: 'Now' }).click();
    }
    await page.setViewportSize(WIDE);
  });

  await t.test('5: phone: file names keep their width, Remove stays inside the box', async (t) => {
    // A second user, so a Remove button is enabled.
    await page.goto(`${site.url}/#/users`);
    await page.locator('#nu-name').fill('operator-on-night-shift');
    await page.locator('#nu-pass').fill('night-shift-password-1');
    await page.locator('#nu-role').selectOption('operator');
    await page.getByRole('button', { name: 'Add user' }).click();
    await page.locator('#users th', { hasText: 'operator-on-night-shift' }).waitFor();
    for (const size of [WIDE, PHONE]) {
      await page.setViewportSize(size);
      await page.goto(`${site.url}/#/users`);
      const remove = page.locator('#users tr', { hasText: 'operator-on-night-shift' }).getByRole('button', { name: 'Remove' });
      await remove.waitFor();
      const b = (await remove.boundingBox())!;
      const wrap = (await page.locator('#users').locator('xpath=..').boundingBox())!;
      t.ok(
        b.x >= wrap.x && b.x + b.width <= wrap.x + wrap.width + 0.5,
        `${size.width} px: Remove is inside its box (${Math.round(b.x + b.width)} ≤ ${Math.round(wrap.x + wrap.width)})`,
      );
      t.ok(b.x >= 0 && b.x + b.width <= size.width, `${size.width} px: Remove is inside the viewport`);
      t.ok(b.height >= 44, 'Remove stays a 44 px touch target');
      t.ok((await overflow()) <= 0, `${size.width} px: no horizontal page scroll on Users`);
      await shot(`05-users-${sizeName(size)}`);

      await page.goto(`${site.url}/#/imports`);
      const row = page.locator(`table.imports tr[data-file="${longName}"]`);
      await row.waitFor({ timeout: 30_000 });
      const name = (await row.locator('th').boundingBox())!;
      t.ok(name.width >= 100, `${size.width} px: the file name cell is ${Math.round(name.width)} px wide`);
      const lineHeight = (await page.evaluate(
        `parseFloat(getComputedStyle(document.querySelector('table.imports tr[data-file="${longName}"] th')).lineHeight)`,
      )) as number;
      t.ok(name.height <= lineHeight * 5 + 20, `${size.width} px: the file name wraps by words, not per character (${Math.round(name.height)} px tall)`);
      t.ok((await overflow()) <= 0, `${size.width} px: no horizontal page scroll on Imports`);
      await shot(`05-imports-${sizeName(size)}`);
    }
  });

  t.same(problems, [], 'no script errors or CSP violations in the console');
});
