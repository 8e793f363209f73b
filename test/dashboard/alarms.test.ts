import t from 'tap';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { z } from 'zod';
import { defineAdapter, type AdapterType } from '../../runtime/adapter.js';
import { OutpostError } from '../../core/errors.js';
import { chromiumSkip, firstPage, launchChromium, logIn } from '../helpers/browser.js';
import { ApiClient, ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';

// The alarm banner and the Alarms page as a technician sees them, at 1366×800 and 390×844:
// a reading over its limit shows in the banner on every page (live, also an alarm raised from
// flows while the page is open), an operator acknowledges it on the Alarms page (audited, gone
// from the banner), the event log shows the adapter that failed at start, a viewer sees but
// cannot acknowledge.

const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'dashboard');

const misconfigured = defineAdapter({
  type: 'misconfigured',
  description: 'fails its start with a config error',
  schema: z.strictObject({}),
  create() {
    return {
      async start() {
        throw new OutpostError('CONFIG_INVALID', 'template "meter-x": register 40001 has no type');
      },
      async stop() {},
    };
  },
}) as unknown as AdapterType;

function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // The viewer's refused acknowledgement (asked through the API below, not the page) and ended sessions.
    if (/^Failed to load resource: the server responded with a status of (401|403)/.test(m.text())) return;
    if (/WebSocket connection to .* failed/.test(m.text())) return;
    problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  return problems;
}

/**
 * Waits until `expression` is true in the page. Evaluated over CDP each time: the dashboard's CSP
 * has no 'unsafe-eval', which page.waitForFunction with a string needs once it polls.
 */
async function pageTrue(page: Page, expression: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > end) throw new Error(`not true within ${timeoutMs} ms: ${expression}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function overflow(page: Page): Promise<number> {
  return (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
}

t.test('alarm banner and Alarms page: desktop and phone, operator and viewer', { skip: chromiumSkip }, async (t) => {
  const site = await startSecureSite(
    t,
    {
      datapoints: [{ id: 'plant.boiler.temp', type: 'number', unit: '°C' }],
      adapters: [{ id: 'meter', type: 'misconfigured' }],
      alarms: {
        rules: [
          { id: 'boiler-hot', type: 'threshold', datapoint: 'plant.boiler.temp', above: 90, hysteresis: 5, message: 'Boiler above 90 °C' },
          { id: 'meter-down', type: 'adapter', adapter: 'meter', forS: 0, severity: 'warning' },
          { id: 'boiler-quiet', type: 'stale', datapoint: 'plant.boiler.temp', afterS: 3600, severity: 'warning' },
        ],
      },
    },
    { types: [misconfigured] },
  );
  const g = site.gateway;
  const admin = new ApiClient(site.url);
  await admin.login('admin', ADMIN_PASSWORD);
  for (const [username, role] of [
    ['otto', 'operator'],
    ['vera', 'viewer'],
  ])
    t.equal((await admin.request('POST', '/api/users', { username, role, password: `${username}-password-1` })).status, 201, `${role} added`);
  await g.ingest.accept('virtual', 'plant.boiler.temp', { v: 96.5 });
  const rest = async (): Promise<{ active: Array<{ id: string; message: string; acknowledged: boolean }> }> =>
    (await admin.request('GET', '/api/alarms')).json() as never;
  await t.resolveMatch(
    (async () => {
      for (;;) {
        const r = await rest();
        if (r.active.length === 2) return r.active.map((a) => a.id);
        await new Promise((res) => setTimeout(res, 50));
      }
    })(),
    ['boiler-hot', 'meter-down'],
  );

  await mkdir(ARTIFACTS, { recursive: true });
  const context = await launchChromium(t, { viewport: { width: 1366, height: 800 } });
  const page = await firstPage(context);
  const problems = watchProblems(page);
  await page.goto(site.url);
  await logIn(page, 'otto', 'otto-password-1');
  await page.getByRole('heading', { name: 'Overview' }).waitFor();

  // The banner on the Overview: alarm (red) before warning, message, since, Acknowledge.
  const banner = page.getByRole('region', { name: 'Active alarms' });
  const items = banner.locator('li.alarm-item');
  await items.nth(1).waitFor();
  t.same(
    await items.evaluateAll((els) => els.map((e) => e.getAttribute('data-alarm'))),
    ['boiler-hot', 'meter-down'],
    'the alarms of GET /api/alarms, alarm first',
  );
  t.match(await items.nth(0).textContent(), /^Alarm\s*Boiler above 90 °C\s*since .+Acknowledge$/, 'severity, message, since, Acknowledge');
  t.match(await items.nth(1).textContent(), /^Warning\s*adapter meter in error or failed/);
  const [border, bad] = (await page.evaluate(
    `[getComputedStyle(document.querySelector('li.alarm-item')).borderLeftColor, getComputedStyle(document.documentElement).getPropertyValue('--bad').trim()]`,
  )) as [string, string];
  t.equal(border, hexToRgb(bad), 'the alarm is marked red');

  // Live: an alarm raised from flows while the page is open appears without a reload.
  await g.alarms!.engine.raise({ id: 'pump-fault', severity: 'alarm', message: 'Pump P1 fault', by: 'flow:test' });
  await banner.locator('li[data-alarm="pump-fault"]').waitFor({ timeout: 5000 });
  t.pass('a flows alarm reaches the banner live');
  t.ok((await overflow(page)) <= 0, 'no horizontal scroll at 1366 px');
  await page.screenshot({ path: join(ARTIFACTS, 'banner-desktop.png') });

  // The Alarms page, from the banner's link.
  await banner.getByRole('link', { name: 'Alarms page' }).click();
  await page.getByRole('heading', { level: 1, name: 'Alarms' }).waitFor();
  const activeRows = page.locator('#alarms-active tbody tr');
  await activeRows.nth(2).waitFor();
  const shownIds = await activeRows.evaluateAll((rows) => rows.map((r) => r.getAttribute('data-alarm')));
  t.same(
    shownIds,
    (await rest()).active.map((a) => a.id),
    'the active table equals GET /api/alarms',
  );
  t.match(
    await page.locator('#alarm-rules tbody').textContent(),
    /boiler-hot.*Threshold.*plant\.boiler\.temp above 90 \(hysteresis 5\).*active.*boiler-quiet.*Stale.*no reading for 3600 s.*normal/s,
  );
  const eventRows = page.locator('#events-table tbody tr');
  await eventRows.first().waitFor();
  t.match(
    await page.locator('#events-table tbody').textContent(),
    /adapter meter failed, not retried: template "meter-x": register 40001 has no type/,
    'the event log shows the adapter failure',
  );

  // Acknowledge on the page: audited, and gone from the banner.
  await page.locator('#alarms-active tr[data-alarm="boiler-hot"]').getByRole('button', { name: 'Acknowledge boiler-hot' }).click();
  await page.locator('#alarms-active tr[data-alarm="boiler-hot"]', { hasText: 'user otto' }).waitFor();
  await banner.locator('li[data-alarm="boiler-hot"]').waitFor({ state: 'detached' });
  t.pass('acknowledged: the row says by whom, the banner drops it');
  const audit = (await (await admin.request('GET', '/api/audit?action=alarm.ack')).json()) as { items: Array<Record<string, unknown>> };
  t.match(audit.items[0], { action: 'alarm.ack', target: 'boiler-hot', by: 'user otto', outcome: 'ok' }, 'audited like a setpoint');
  await page.locator('#events-table tbody tr', { hasText: 'acknowledged by user otto' }).waitFor();
  t.pass('the acknowledgement is in the event log');

  // Filters.
  await page.getByLabel('Severity').selectOption('alarm');
  await page.locator('#events-table tbody tr').first().waitFor();
  await pageTrue(page, `[...document.querySelectorAll('#events-table tbody tr')].every((r) => r.classList.contains('ev-alarm'))`);
  t.pass('severity filter: alarms only');
  await page.getByLabel('Severity').selectOption('');
  await page.getByLabel('Source').selectOption('meter');
  await pageTrue(page, `[...document.querySelectorAll('#events-table td[data-label="Source"]')].every((td) => td.textContent === 'meter')`);
  t.pass('source filter');
  t.ok((await overflow(page)) <= 0, 'no horizontal scroll on the Alarms page at 1366 px');
  await page.screenshot({ path: join(ARTIFACTS, 'alarms-desktop.png'), fullPage: true });

  // Phone.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${site.url}/#/overview`);
  await banner.locator('li[data-alarm="pump-fault"]').waitFor();
  t.ok((await overflow(page)) <= 0, 'no horizontal scroll with the banner at 390 px');
  const ackBox = await banner
    .getByRole('button', { name: /Acknowledge/ })
    .first()
    .boundingBox();
  t.ok(ackBox && ackBox.height >= 44 && ackBox.x + ackBox.width <= 390, 'Acknowledge is a full touch target inside the screen');
  await page.screenshot({ path: join(ARTIFACTS, 'banner-phone.png') });
  await page.goto(`${site.url}/#/alarms`);
  await page.locator('#events-table tbody tr').first().waitFor();
  await activeRows.first().waitFor();
  t.ok((await overflow(page)) <= 0, 'no horizontal scroll on the Alarms page at 390 px');
  t.equal(await page.locator('#alarms-active thead').isVisible(), false, 'rows become labelled cards');
  await page.screenshot({ path: join(ARTIFACTS, 'alarms-phone.png'), fullPage: true });

  // A viewer sees the alarms, not the buttons, and the API refuses.
  await page.setViewportSize({ width: 1366, height: 800 });
  await page.getByRole('button', { name: 'Log out' }).click();
  await logIn(page, 'vera', 'vera-password-1');
  await banner.locator('li[data-alarm="pump-fault"]').waitFor();
  t.equal(await banner.getByRole('button', { name: /Acknowledge/ }).count(), 0, 'no Acknowledge in the banner for a viewer');
  await page.goto(`${site.url}/#/alarms`);
  await activeRows.first().waitFor();
  t.equal(
    await page
      .locator('#alarms-active')
      .getByRole('button', { name: /Acknowledge/ })
      .count(),
    0,
    'nor on the page',
  );
  const viewer = new ApiClient(site.url);
  await viewer.login('vera', 'vera-password-1');
  const refused = await viewer.request('POST', '/api/alarms/pump-fault/ack', {});
  t.equal(refused.status, 403, 'a viewer cannot acknowledge');
  t.equal((await rest()).active.find((a) => a.id === 'pump-fault')?.acknowledged, false, 'and nothing changed');
  t.same(problems, [], 'no script errors');
});

function hexToRgb(hex: string): string {
  const n = Number.parseInt(hex.replace('#', ''), 16);
  return `rgb(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255})`;
}
