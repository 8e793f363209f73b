import t from 'tap';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { chromiumSkip, firstPage, launchChromium, logIn } from '../helpers/browser.js';
import { ApiClient, ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';

const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'dashboard');
const skip = chromiumSkip;

/** Console errors other than refused requests (the 401s of an ended session are expected here). */
function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (/^Failed to load resource: the server responded with a status of (400|401|403|404)/.test(m.text())) return;
    if (/WebSocket connection to .* failed/.test(m.text())) return; // a refused reconnect of the ended session
    problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  return problems;
}

t.test('an admin sees the setpoint they just made on the Audit page, on a desktop and a phone', { skip }, async (t) => {
  const site = await startSecureSite(t, {
    datapoints: [{ id: 'site.mode', kind: 'actuator', type: 'string', allowed: ['auto', 'manual', 'off'] }],
    adapters: [{ id: 'site', type: 'simulated', interval: 60_000, prefix: 'site' }],
    auth: { loopback: 'none' },
  });
  // More than one page of older entries, from the schedule, so "Load older" has work to do.
  for (let i = 0; i < 120; i++) await site.gateway.ingest.setpoint('site.mode', { v: i % 2 ? 'auto' : 'off' }, 'schedule');
  await mkdir(ARTIFACTS, { recursive: true });
  const context = await launchChromium(t);
  const page = await firstPage(context);
  const problems = watchProblems(page);

  await page.goto(site.url);
  await logIn(page, 'admin', ADMIN_PASSWORD);
  await page.goto(`${site.url}/#/datapoints/site.hvac.setpoint`);
  await page.getByLabel(/New value/).fill('23.5');
  await page.getByRole('button', { name: 'Set' }).click();
  await page.locator('#sp-msg', { hasText: 'Applied' }).waitFor();

  await page.getByRole('link', { name: 'Audit' }).click();
  await page.getByRole('heading', { level: 1, name: 'Audit' }).waitFor();
  const first = page.locator('#audit-table tbody tr').first();
  await first.waitFor();
  t.match(await first.textContent(), /user admin.*Setpoint.*site\.hvac\.setpoint.*v: 23\.5.*ok/s, 'the newest row is the setpoint just made, by the admin');
  t.equal(await page.locator('#audit-table tbody tr').count(), 100, 'one page of entries');
  await page.getByRole('button', { name: 'Load older' }).click();
  await page
    .getByRole('status')
    .filter({ hasText: /^12\d entries/ })
    .waitFor();
  t.pass('"Load older" appends the older entries');
  await page.screenshot({ path: join(ARTIFACTS, 'audit-01-desktop.png') });

  await page.getByLabel('Action').selectOption('user.add');
  await page.getByText('Nothing recorded yet.').waitFor();
  await page.getByLabel('Action').selectOption('setpoint');
  await first.filter({ hasText: 'site.hvac.setpoint' }).waitFor();
  t.pass('the action filter asks the gateway again');

  // Phone: entries become labelled cards; the page does not scroll sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  await page.locator('#audit-table tbody tr').first().waitFor();
  const overflow = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
  t.ok(overflow <= 0, `no horizontal page scroll at 390 px (overflow ${overflow}px)`);
  t.equal(await page.locator('#audit-table thead').isVisible(), false, 'the column headers give way to labels');
  await page.screenshot({ path: join(ARTIFACTS, 'audit-02-phone.png') });

  // A viewer has no Audit page.
  await admin(site.url).then((a) => a.request('POST', '/api/users', { username: 'vera', role: 'viewer', password: 'vera-password-1' }));
  await page.setViewportSize({ width: 1280, height: 860 });
  await page.getByRole('button', { name: 'Log out' }).click();
  await logIn(page, 'vera', 'vera-password-1');
  t.equal(await page.getByRole('link', { name: 'Audit' }).count(), 0, 'no Audit link for a viewer');
  t.same(problems, [], 'no script errors');
});

async function admin(url: string): Promise<ApiClient> {
  const a = new ApiClient(url);
  await a.login('admin', ADMIN_PASSWORD);
  return a;
}

t.test('a page whose session ends goes to the login screen instead of freezing', { skip }, async (t) => {
  const site = await startSecureSite(t, {
    adapters: [{ id: 'site', type: 'simulated', interval: 60_000, prefix: 'site' }],
    auth: { loopback: 'none' },
  });
  const boss = await admin(site.url);
  await boss.request('POST', '/api/users', { username: 'olga', role: 'operator', password: 'olga-password-1' });
  const context = await launchChromium(t);
  const page = await firstPage(context);
  const problems = watchProblems(page);
  const loginShown = async (what: string) => {
    const t0 = Date.now();
    await page.getByText('Your session ended: log in again.').waitFor({ timeout: 5000 });
    await page.getByRole('button', { name: 'Log in' }).waitFor({ timeout: 1000 });
    t.pass(`${what}: the login screen with the notice after ${Date.now() - t0} ms`);
  };

  // 1. The user is removed while the page shows only live values (no REST call would notice).
  await page.goto(site.url);
  await logIn(page, 'olga', 'olga-password-1');
  await page.goto(`${site.url}/#/datapoints`);
  await page.locator('.live-dot.up').waitFor();
  t.equal((await boss.request('DELETE', '/api/users/olga')).status, 200);
  await loginShown('user removed');

  // 2. Another client logs out with the same session cookie.
  await logIn(page, 'admin', ADMIN_PASSWORD);
  await page.locator('.live-dot.up').waitFor();
  const cookie = (await context.cookies(site.url)).find((c) => c.name === 'outpost_session');
  t.ok(cookie, 'the page has a session cookie');
  const csrf = ((await page.evaluate(`fetch('/api/auth/me').then((r) => r.json())`)) as { csrf: string }).csrf;
  const out = await fetch(`${site.url}/api/auth/logout`, { method: 'POST', headers: { cookie: `outpost_session=${cookie!.value}`, 'x-csrf-token': csrf } });
  t.equal(out.status, 200);
  await loginShown('logged out elsewhere');

  // 3. The page can log in again and works.
  await logIn(page, 'admin', ADMIN_PASSWORD);
  await page.locator('.live-dot.up').waitFor();
  t.pass('logging in again brings the live connection back');
  t.same(problems, [], 'no script errors');
});
