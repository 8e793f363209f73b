import t from 'tap';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { chromiumSkip, launchChromium } from '../helpers/browser.js';
import { ApiClient, ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';
import { eventually } from '../helpers/gateway.js';

const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'dashboard');

t.test('dashboard end to end in headless Chromium', { skip: chromiumSkip }, async (t) => {
  const site = await startSecureSite(t, {
    gateway: { id: 'demo', name: 'Outpost demo site' },
    datapoints: [{ id: 'site.mode', kind: 'actuator', type: 'string', allowed: ['auto', 'manual', 'off'], description: 'Operating mode' }],
    adapters: [{ id: 'site', type: 'simulated', interval: 300, prefix: 'site' }],
    auth: { loopback: 'none' },
  });
  const admin = new ApiClient(site.url);
  await admin.login('admin', ADMIN_PASSWORD);
  await admin.request('POST', '/api/users', { username: 'vera', role: 'viewer', password: 'vera-password-1' });
  await mkdir(ARTIFACTS, { recursive: true });
  const context = await launchChromium(t);
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on('console', (m) => {
    // Refused requests the test makes on purpose (401, 403, 400) and absent optional APIs
    // (404) are logged by Chromium as resource errors; anything else is a problem.
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of (400|401|403|404)/.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  const shot = (name: string, p: Page = page) => p.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  // Log in.
  await page.goto(site.url);
  await page.getByLabel('Username').waitFor();
  await shot('01-login');
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('wrong username or password').waitFor();
  await page.getByLabel('Password').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  await page.locator('.live-dot.up').waitFor();
  await page.locator('.chart canvas').first().waitFor();
  await page.waitForTimeout(400);
  await shot('02-overview');
  t.pass("logged in; overview with live connection and today's curve");

  // The demo's live value changes without a reload.
  await page.goto(`${site.url}/#/datapoints`);
  const gridCell = page.locator('tr[data-id="site.grid.power"] td.num');
  await gridCell.waitFor();
  const first = await gridCell.textContent();
  await eventually(async () => (await gridCell.textContent()) !== first, 5000, 50);
  t.pass('the simulated grid power changes live in the table');
  // Latency of one reading from ingest to the page (reported, not asserted: no wall-clock asserts).
  const t0 = Date.now();
  await site.gateway.ingest.accept('virtual', 'site.mode', { v: 'manual' });
  await page.locator('tr[data-id="site.mode"] td.num', { hasText: 'manual' }).waitFor({ timeout: 5000 });
  t.comment(`ingest → browser: ${Date.now() - t0} ms`);
  await shot('03-datapoints');
  await page.getByLabel('Search').fill('hvac');
  await eventually(async () => (await page.locator('table.dps tbody tr').count()) === 2);
  t.pass('search filters the table');

  // A chart with range and aggregation; CSV download.
  await page.getByRole('link', { name: 'site.hvac.setpoint' }).click();
  await page.getByRole('heading', { name: 'site.hvac.setpoint' }).waitFor();
  await page.locator('#chart canvas').waitFor();
  await page.getByLabel('Range').selectOption('1h');
  await page.getByLabel('Aggregation').selectOption('max');
  await page.locator('#chart canvas').waitFor();
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download CSV' }).click();
  t.equal((await download).suggestedFilename(), 'site.hvac.setpoint.csv');

  // A valid and an invalid setpoint, with the gateway's reason shown.
  await page.getByLabel(/New value/).fill('22.5');
  await page.getByRole('button', { name: 'Set' }).click();
  await page.locator('#sp-msg', { hasText: 'Applied' }).waitFor();
  t.equal(site.gateway.store.latest('site.hvac.setpoint')?.v, 22.5, 'the valid setpoint reached the adapter');
  await page.locator('#dp-value', { hasText: '22.5' }).waitFor();
  await page.getByLabel(/New value/).fill('99');
  await page.getByRole('button', { name: 'Set' }).click();
  await page.locator('#sp-msg', { hasText: /Refused: .*outside the allowed range/ }).waitFor();
  t.equal(await page.getByLabel(/New value/).getAttribute('aria-invalid'), 'true', 'the field is marked invalid');
  t.equal(site.gateway.store.latest('site.hvac.setpoint')?.v, 22.5, 'the invalid setpoint changed nothing');
  await shot('04-datapoint-setpoint');

  for (const [hash, name, heading] of [
    ['chargers', '05-chargers', 'Chargers'],
    ['links', '06-links', 'Links'],
    ['imports', '07-imports', 'Imports'],
    ['users', '08-users', 'Users'],
  ] as const) {
    await page.goto(`${site.url}/#/${hash}`);
    await page.getByRole('heading', { level: 1, name: heading, exact: true }).waitFor();
    await page.waitForTimeout(200);
    await shot(name);
  }
  await page.getByLabel('Username').fill('olga');
  await page.getByLabel('Password', { exact: true }).fill('short');
  await page.getByRole('button', { name: 'Add user' }).click();
  await page.getByText(/at least 10 characters/).waitFor();
  await page.getByLabel('Password', { exact: true }).fill('olga-password-1');
  await page.getByRole('button', { name: 'Add user' }).click();
  await page.getByRole('rowheader', { name: 'olga' }).waitFor();
  t.pass('an admin adds a user from the Users page');

  // A viewer cannot write: the form says so, and the API refuses a forced request.
  await page.getByRole('button', { name: 'Log out' }).click();
  // The Users page has Username and Password fields too: fill the login form only once it shows.
  await page.getByRole('button', { name: 'Log in' }).waitFor();
  await page.getByLabel('Username').fill('vera');
  await page.getByLabel('Password').fill('vera-password-1');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  t.equal(await page.getByRole('link', { name: 'Users' }).count(), 0, 'no Users page for a viewer');
  await page.goto(`${site.url}/#/datapoints/site.hvac.setpoint`);
  await page.getByText('Your role (viewer) cannot change setpoints.').waitFor();
  t.ok(await page.getByRole('button', { name: 'Set' }).isDisabled(), 'the Set button is disabled');
  // Browser-side code is passed as text: this file is type-checked without DOM types.
  const forced = (await page.evaluate(`(async () => {
    const me = await (await fetch('/api/auth/me')).json();
    const res = await fetch('/api/datapoints/site.hvac.setpoint/setpoint', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrf }, body: '{"v":17}' });
    return { status: res.status, body: await res.json() };
  })()`)) as { status: number; body: unknown };
  t.match(forced, { status: 403, body: { error: { code: 'FORBIDDEN' } } }, "a forced write from the viewer's page is refused");
  t.equal(site.gateway.store.latest('site.hvac.setpoint')?.v, 22.5);
  await shot('09-viewer-setpoint');

  // Phone layout: the table scrolls inside its box, the page does not scroll sideways.
  await page.setViewportSize({ width: 375, height: 740 });
  await page.goto(`${site.url}/#/datapoints`);
  await page.locator('tr[data-id="site.grid.power"]').waitFor();
  const overflow = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
  t.ok(overflow <= 0, `no horizontal page scroll on a phone (overflow ${overflow}px)`);
  await shot('10-mobile-datapoints');

  // Live updates must not move the layout (CLS): observe layout shifts for a few readings.
  const shift = (await page.evaluate(`new Promise((resolve) => {
    let total = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (!e.hadRecentInput) total += e.value;
    }).observe({ type: 'layout-shift', buffered: false });
    setTimeout(() => resolve(total), 1500);
  })`)) as number;
  t.ok(shift < 0.01, `no layout shift from live updates (CLS ${shift.toFixed(4)})`);

  t.same(problems, [], 'no script errors or CSP violations in the console');
});
