// Issue 24 item 6: custom date ranges and overlaid series on the datapoint chart, in headless
// Chromium at 1366×800 and 390×844, asserting what a person sees against the REST answers:
// a custom range shows exactly that range and reaches its end; two datapoints in different
// units are two series on two y axes with the REST values; the hash restores the overlay;
// the overlay's CSV has one time column and one column per series; rollup views draw the
// min–max band of the REST rollups; a raw CSV beyond 100,000 readings is named
// `<id>-newest-<n>.csv`. Screenshots: test/artifacts/dashboard/charts-desktop.png / -phone.png.
import t from 'tap';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { chromiumSkip, firstPage, launchChromium, logIn } from '../helpers/browser.js';
import { eventually } from '../helpers/gateway.js';
import { ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';

const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'dashboard');
const MINUTE = 60e3;
const HOUR = 3600e3;
const WIDE = { width: 1366, height: 800 };
const PHONE = { width: 390, height: 844 };
// The browser runs in a zone east of UTC without DST: the From / To inputs are local time,
// so a page that read them as UTC would show a range two hours off.
const ZONE = 'Etc/GMT-2';
const OFFSET_MS = 2 * HOUR;
/** A `datetime-local` value for an instant, in the browser's zone. */
const localInput = (ms: number) => new Date(ms + OFFSET_MS).toISOString().slice(0, 16);

/** Every uPlot the page builds, in `window.__uplots` (as defects.test.ts traceUPlot). */
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

interface Plot {
  /** x values, epoch s. */
  xs: number[];
  /** One column per uPlot series after x; null where the series has no point. */
  cols: Array<Array<number | null>>;
  series: Array<{ label: string; scale: string; band: boolean }>;
  axes: Array<{ scale: string; side: number }>;
  bands: Array<{ series: [number, number] }>;
  min: number;
  max: number;
}

/** The newest live uPlot in #chart. */
function chartPlot(page: Page): Promise<Plot | null> {
  return page.evaluate(`(() => {
    const plots = (globalThis.__uplots ?? []).filter((u) => u.root.isConnected && u.root.closest('#chart'));
    const u = plots[plots.length - 1];
    if (!u) return null;
    return {
      xs: [...u.data[0]],
      cols: u.data.slice(1).map((c) => Array.from(c, (v) => (v === undefined ? null : v))),
      series: u.series.slice(1).map((s) => ({ label: String(s.label), scale: s.scale, band: /band-edge/.test(s.class ?? '') })),
      axes: u.axes.map((a) => ({ scale: a.scale, side: a.side })),
      bands: (u.bands ?? []).map((b) => ({ series: b.series })),
      min: u.scales.x.min,
      max: u.scales.x.max,
    };
  })()`) as Promise<Plot | null>;
}

/** The points a column draws, as [epoch ms, value]. */
const pointsOf = (plot: Plot, col: number) =>
  plot.xs.flatMap((x, i) => (plot.cols[col]![i] === null ? [] : [[Math.round(x * 1000), plot.cols[col]![i]] as [number, number]]));

t.test('custom ranges and overlays in headless Chromium', { skip: chromiumSkip }, async (t) => {
  const site = await startSecureSite(t, {
    gateway: { id: 'charts', name: 'Chart overlays test site', timezone: 'UTC' },
    datapoints: [
      { id: 'lab.fast.power', kind: 'sensor', type: 'number', unit: 'W', description: 'A 1 Hz power reading' },
      { id: 'lab.room.temp', kind: 'sensor', type: 'number', unit: '°C', description: 'Room temperature every 10 s' },
      { id: 'lab.flow.rate', kind: 'sensor', type: 'number', unit: 'm³/h', description: 'Flow (a third unit)' },
      { id: 'lab.pump.on', kind: 'sensor', type: 'boolean', description: 'Pump running' },
      { id: 'lab.plan.json', kind: 'sensor', type: 'json', description: 'A JSON plan (not overlaid)' },
      { id: 'lab.dense.power', kind: 'sensor', type: 'number', unit: 'W', description: 'A 10 Hz power reading' },
    ],
    auth: { loopback: 'none' },
  });
  const ingest = site.gateway.ingest;
  const now = Math.floor(Date.now() / 1000) * 1000;
  // 3 h of 1 Hz readings ending now (10,800: more than a chart's 10,000 raw readings), and a
  // temperature every 10 s on the same seconds, so the two share timestamps every 10th second.
  const fast = Array.from({ length: 3 * 3600 }, (_, i) => ({ id: 'lab.fast.power', v: 1000 + (i % 600), t: now - 1000 - (3 * 3600 - 1 - i) * 1000 }));
  const temp = fast.filter((_, i) => i % 10 === 0).map((p, i) => ({ id: 'lab.room.temp', v: 20 + (i % 50) / 10, t: p.t }));
  const started = Date.now();
  for (let i = 0; i < fast.length; i += 5000) await ingest.acceptMany('test', fast.slice(i, i + 5000));
  await ingest.acceptMany('test', temp);
  await ingest.acceptMany('test', [
    { id: 'lab.flow.rate', v: 3.5, t: now - 30 * MINUTE },
    { id: 'lab.pump.on', v: true, t: now - 30 * MINUTE },
    { id: 'lab.plan.json', v: { mode: 'auto' }, t: now - 30 * MINUTE },
  ]);
  // Beyond the CSV's 100,000 readings: 10 Hz for 10,005 s ending now.
  const dense = Array.from({ length: 100_050 }, (_, i) => ({ id: 'lab.dense.power', v: i % 1000, t: now - 100 - (100_050 - 1 - i) * 100 }));
  for (let i = 0; i < dense.length; i += 10_000) await ingest.acceptMany('test', dense.slice(i, i + 10_000));
  t.comment(`stored ${fast.length + temp.length + dense.length} readings in ${Date.now() - started} ms`);
  const newestFast = fast[fast.length - 1]!.t;

  await mkdir(ARTIFACTS, { recursive: true });
  const context = await launchChromium(t, { viewport: WIDE, timezoneId: ZONE, locale: 'en-US' });
  await traceUPlot(context);
  const page = await firstPage(context);
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of (401|404)/.test(m.text())) problems.push(m.text());
  });
  const overflow = () => page.evaluate('document.documentElement.scrollWidth - window.innerWidth') as Promise<number>;
  const rest = (id: string, query: Record<string, string | number>) =>
    page.evaluate(
      async ([u]) => (await (await fetch(u!)).json()) as { values: Array<{ t: number; v: number }> },
      [`/api/datapoints/${id}/values?${new URLSearchParams(Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)])))}`],
    );
  /** Waits until the chart drawn satisfies `ok` and answers it. */
  const plotWhere = async (ok: (p: Plot) => boolean): Promise<Plot> => {
    let found: Plot | undefined;
    await eventually(
      async () => {
        const p = await chartPlot(page);
        if (p && ok(p)) found = p;
        return found !== undefined;
      },
      20_000,
      50,
    );
    return found!;
  };
  /** Waits until the chart is drawn with `columns` uPlot series after x. */
  const plotWith = (columns: number) => plotWhere((p) => p.cols.length === columns);

  await page.goto(site.url);
  await logIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();

  for (const size of [WIDE, PHONE]) {
    const name = size === WIDE ? 'desktop' : 'phone';
    await page.setViewportSize(size);

    await t.test(`${name}: a custom range shows exactly that range`, async (t) => {
      await page.goto(`${site.url}/#/datapoints/lab.fast.power`);
      await page.locator('#chart canvas').first().waitFor();
      t.equal(await page.locator('#range').inputValue(), '24h', 'an old link without a query still opens the 24 h view');
      const from = Math.floor((now - 150 * MINUTE) / MINUTE) * MINUTE;
      const to = Math.floor((now - 120 * MINUTE) / MINUTE) * MINUTE;
      await page.getByLabel('From', { exact: true }).fill(localInput(from));
      await page.getByLabel('To', { exact: true }).fill(localInput(to));
      await page.getByRole('button', { name: 'Show', exact: true }).click();
      const plot = await plotWhere((p) => Math.abs(p.min * 1000 - from) < 1);
      t.ok(Math.abs(plot.min * 1000 - from) < 1 && Math.abs(plot.max * 1000 - to) < 1, 'the time axis is the range typed, in local time');
      const drawn = pointsOf(plot, 0);
      t.ok(
        drawn.every(([ts]) => ts >= from && ts <= to),
        'every point drawn is inside the range',
      );
      t.ok(to - drawn[drawn.length - 1]![0] <= 2000, `the newest point is at the range's end (${(to - drawn[drawn.length - 1]![0]) / 1000} s before it)`);
      t.ok(drawn[0]![0] - from <= 2000, 'and the oldest at its start');
      const expected = fast.filter((p) => p.t >= from && p.t <= to).map((p) => [p.t, p.v]);
      t.same(drawn, expected, 'the readings of the range, as stored');
      t.equal(await page.locator('#range').inputValue(), 'custom');
      const hash = new URLSearchParams(String(await page.evaluate('location.hash')).split('?')[1]);
      t.equal(Date.parse(hash.get('from')!), from, 'the hash holds the start');
      t.equal(Date.parse(hash.get('to')!), to, 'and the end');
      await page.reload();
      const again = await plotWhere((p) => Math.abs(p.min * 1000 - from) < 1);
      t.ok(Math.abs(again.max * 1000 - to) < 1, 'a reload shows the same range');
      t.equal(await page.getByLabel('From', { exact: true }).inputValue(), localInput(from), 'From shows the start in local time');
      t.ok((await overflow()) <= 0, `${size.width} px: no horizontal page scroll`);

      // Refused ranges say why, and draw nothing new.
      await page.getByLabel('To', { exact: true }).fill(localInput(from - HOUR));
      await page.getByRole('button', { name: 'Show', exact: true }).click();
      await page.locator('#range-msg', { hasText: '"To" must be after "From".' }).waitFor();
      t.equal(await page.getByLabel('To', { exact: true }).getAttribute('aria-invalid'), 'true', 'To is marked invalid');
      await page.getByLabel('From', { exact: true }).fill(localInput(from - 400 * 24 * HOUR));
      await page.getByLabel('To', { exact: true }).fill(localInput(to));
      await page.getByRole('button', { name: 'Show', exact: true }).click();
      await page.locator('#range-msg', { hasText: /at most 366 days; this one spans 40\d/ }).waitFor();
      t.ok(Math.abs(((await chartPlot(page))!.min * 1000 - from) / 1000) < 1, 'the chart still shows the last good range');
    });

    await t.test(`${name}: two units overlaid on two axes, equal to REST, restored from the hash`, async (t) => {
      await page.goto(`${site.url}/#/datapoints/lab.fast.power?range=1h`);
      await plotWith(1);
      t.equal(await page.locator('#range').inputValue(), '1h', 'the preset from the hash');
      await page.getByRole('button', { name: 'Add series' }).click();
      // The list is filled once /api/datapoints answers (the first open of the picker on this page).
      await page.locator('#series-options button[data-id]').first().waitFor();
      const listed = await page.locator('#series-options button[data-id]').evaluateAll((bs) => bs.map((b) => b.getAttribute('data-id')));
      t.same(
        listed.sort(),
        ['lab.dense.power', 'lab.flow.rate', 'lab.pump.on', 'lab.room.temp'],
        'the list offers the other number and on/off datapoints, not JSON',
      );
      await page.getByLabel('Find a datapoint').fill('room');
      t.equal(await page.locator('#series-options button[data-id]').count(), 1, 'the search narrows the list');
      await page.locator('#series-options button[data-id="lab.room.temp"]').click();
      const plot = await plotWith(2);
      t.same(
        plot.series.map((s) => [s.label, s.scale]),
        [
          ['lab.fast.power (W)', 'y'],
          ['lab.room.temp (°C)', 'y2'],
        ],
        'two series, each on the scale of its unit',
      );
      t.same(
        plot.axes.slice(1).map((a) => [a.scale, a.side]),
        [
          ['y', 3],
          ['y2', 1],
        ],
        'two y axes: W on the left, °C on the right',
      );
      const window = { from: Math.round(plot.min * 1000), to: Math.round(plot.max * 1000) };
      t.ok(Math.abs(window.to - Date.now()) < 5 * MINUTE && Math.abs(window.to - window.from - HOUR) < 1000, 'the last hour');
      for (const [col, id] of [
        [0, 'lab.fast.power'],
        [1, 'lab.room.temp'],
      ] as const) {
        const r = await rest(id, { ...window, limit: 10_000 });
        t.same(
          pointsOf(plot, col),
          r.values.map((p) => [p.t, p.v]),
          `${id}: the points drawn are the REST readings (${r.values.length})`,
        );
      }
      t.equal(await page.locator('#series-list li').count(), 2, 'a legend line per series');
      t.match(await page.locator('#series-list li[data-id="lab.room.temp"] .series-status').textContent(), /^\d[\d,]* readings$/, 'with its status line');
      t.match(String(await page.evaluate('location.hash')), /[?&]with=lab\.room\.temp(&|$)/, 'the hash names the overlaid series');

      // A third unit is refused with the reason; the chart keeps its two series.
      await page.getByLabel('Find a datapoint').fill('flow');
      await page.locator('#series-options button[data-id="lab.flow.rate"]').click();
      await page.locator('#series-msg', { hasText: 'lab.flow.rate is in m³/h: this chart has axes for W (left) and °C (right) only' }).waitFor();
      t.equal((await chartPlot(page))!.cols.length, 2, 'a third unit is not drawn');

      if (size === WIDE) {
        // The overlay's CSV: a time column and one per series, one row per distinct time.
        const download = page.waitForEvent('download');
        await page.locator('#csv').click();
        const file = await download;
        t.equal(file.suggestedFilename(), 'lab.fast.power-overlay.csv');
        const lines = (await readFile((await file.path())!, 'utf8')).trim().split('\n');
        t.equal(lines[0], 'time_iso,epoch_ms,lab.fast.power,lab.room.temp', 'the columns');
        const fastRest = (await rest('lab.fast.power', { ...window, limit: 100_000 })).values;
        const tempRest = new Map((await rest('lab.room.temp', { ...window, limit: 100_000 })).values.map((p) => [p.t, p.v]));
        t.equal(lines.length - 1, fastRest.length, 'one row per distinct time (the temperature shares the power’s seconds)');
        const rows = lines.slice(1).map((l) => l.split(','));
        t.same(
          rows.map((r) => [Number(r[1]), Number(r[2]), r[3] === '' ? null : Number(r[3])]),
          fastRest.map((p) => [p.t, p.v, tempRest.get(p.t) ?? null]),
          'each series in its column at its times, empty where it has no reading',
        );
        await page.locator('#chart + p[role="status"]', { hasText: /CSV: 2 series, [\d,]+ rows/ }).waitFor();

        // A live reading goes into its own series; a drag-zoom stays as it was.
        const zoom = { min: plot.min + 600, max: plot.min + 1200 };
        await page.evaluate(`(() => {
          const u = globalThis.__uplots.filter((p) => p.root.isConnected && p.root.closest('#chart')).pop();
          u.setScale('x', ${JSON.stringify(zoom)});
        })()`);
        const live = { t: Date.now(), v: 42.5 };
        await ingest.accept('test', 'lab.room.temp', live);
        await eventually(
          async () => {
            const p = (await chartPlot(page))!;
            const i = p.xs.indexOf(live.t / 1000);
            return i >= 0 && p.cols[1]![i] === 42.5 && p.cols[0]![i] === null;
          },
          10_000,
          50,
        );
        t.pass('a live temperature reading is drawn in the temperature series only');
        const zoomed = (await chartPlot(page))!;
        t.same([zoomed.min, zoomed.max], [zoom.min, zoom.max], 'the zoom is kept');
      }

      await page.reload();
      const restored = await plotWith(2);
      t.same(
        restored.series.map((s) => s.label),
        ['lab.fast.power (W)', 'lab.room.temp (°C)'],
        'a reload restores the overlay from the hash',
      );
      await page.locator('#series-list li').nth(1).waitFor();
      t.ok((await overflow()) <= 0, `${size.width} px: no horizontal page scroll with the overlay`);

      // Remove takes the series off and out of the hash.
      await page.getByRole('button', { name: 'Remove lab.room.temp from the chart' }).click();
      await plotWith(1);
      t.notMatch(String(await page.evaluate('location.hash')), /with=/, 'the hash no longer names it');
    });

    await t.test(`${name}: rollup views draw the min–max band of the REST rollups`, async (t) => {
      // 6 h holds the 10,800 readings: drawn from 1 min averages, the band behind them.
      await page.goto(`${site.url}/#/datapoints/lab.fast.power?range=6h&with=lab.room.temp`);
      const plot = await plotWith(4);
      t.same(
        plot.series.map((s) => [s.label, s.band]),
        [
          ['lab.fast.power (W)', false],
          ['lab.room.temp (°C)', false],
          ['lab.fast.power max', true],
          ['lab.fast.power min', true],
        ],
        'the average line, the overlay, then the band’s edges',
      );
      t.same(plot.bands, [{ series: [3, 4] }], 'one band between max and min');
      await page.locator('#series-list li[data-id="lab.fast.power"] .series-status', { hasText: 'drawn as averages, min–max of each as a band' }).waitFor();
      const window = { from: Math.round(plot.min * 1000), to: Math.round(plot.max * 1000) };
      const [max, min] = await Promise.all([
        rest('lab.fast.power', { ...window, interval: '1m', agg: 'max' }),
        rest('lab.fast.power', { ...window, interval: '1m', agg: 'min' }),
      ]);
      t.same(
        pointsOf(plot, 2),
        max.values.map((p) => [p.t, p.v]),
        `the band's top is the REST max of each minute (${max.values.length})`,
      );
      t.same(
        pointsOf(plot, 3),
        min.values.map((p) => [p.t, p.v]),
        'its bottom the REST min',
      );
      t.match(
        await page.locator('#series-list li[data-id="lab.fast.power"] .series-status').textContent(),
        new RegExp(`^${max.values.length - 1} × avg of 1m and \\d+ readings \\(the range holds more than 10,000 readings`),
        'the status line counts the buckets and the last bucket’s readings apart',
      );
      const avg = new Map(pointsOf(plot, 0));
      t.ok(
        min.values.every((p, i) => !avg.has(p.t) || (p.v <= avg.get(p.t)! && avg.get(p.t)! <= max.values[i]!.v)),
        'each average lies inside its band',
      );
      const line = pointsOf(plot, 0);
      t.equal(line[line.length - 1]![0], newestFast, 'the line still ends at the newest reading');
      t.ok((await overflow()) <= 0, `${size.width} px: no horizontal page scroll`);
      await page.screenshot({ path: join(ARTIFACTS, `charts-${name}.png`), fullPage: true });
    });
  }

  await t.test('a raw CSV beyond 100,000 readings is the newest, named <id>-newest-<n>.csv', async (t) => {
    await page.setViewportSize(WIDE);
    await page.goto(`${site.url}/#/datapoints/lab.dense.power?range=6h`);
    await plotWith(3);
    const download = page.waitForEvent('download');
    await page.locator('#csv').click();
    const file = await download;
    t.equal(file.suggestedFilename(), 'lab.dense.power-newest-100000.csv');
    const lines = (await readFile((await file.path())!, 'utf8')).trim().split('\n');
    t.equal(lines.length - 1, 100_000, 'the API cap of readings');
    t.equal(Number(lines[lines.length - 1]!.split(',')[1]), dense[dense.length - 1]!.t, 'ending at the newest reading');
    t.equal(Number(lines[1]!.split(',')[1]), dense[dense.length - 100_000]!.t, 'starting 100,000 readings before it');
    await page.locator('#chart + p[role="status"]', { hasText: /^CSV cut: the newest 100,000 readings of the range, from / }).waitFor();
  });

  t.same(problems, [], 'no script errors or CSP violations in the console');
});
