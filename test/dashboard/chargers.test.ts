// Issue 24 item 4: the Chargers page in headless Chromium, desktop 1366×800 and phone 390×844.
// A real gateway with users, an OCPP 1.6-J charge point (the adapter's simulator), load
// management on a grid meter with PV export, the site tariff at 0.30 EUR/kWh. An operator
// starts a session from the page (remoteStartIdTag), switches the charge mode (the charger's
// limit follows), stops it; the session table shows energy and cost equal to REST; a session
// opens as a chart with its points; a viewer sees the controls disabled.
import t from 'tap';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { chromiumSkip, firstPage, launchChromium, logIn } from '../helpers/browser.js';
import { ADMIN_PASSWORD, ApiClient, startSecureSite } from '../security/harness.js';
import { eventually as eventuallyMaybe } from '../helpers/gateway.js';
import { hashPassword } from '../../runtime/auth/passwords.js';
import { ChargePointSimulator } from '../../adapters/ocpp/simulator.js';
import { drivenAdapter } from '../helpers/driven-adapter.js';

const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'dashboard');
const CP_PASSWORD = 'cp-dash-1-authorization-key';
const WIDE = { width: 1366, height: 800 };
const PHONE = { width: 390, height: 844 };
const VOLT = 230;

const gridMeter = drivenAdapter('test-grid-meter', 'grid meter driven by the test', async (ctx) => {
  await ctx.datapoints.register({ id: 'site.grid.power', type: 'number', unit: 'W', description: 'grid power, export negative' });
});

/** Every uPlot the page builds, kept in `window.__uplots` (test instrumentation of the vendor module, as in defects.test.ts). */
async function traceUPlot(context: BrowserContext): Promise<void> {
  await context.route('**/ui/vendor/uPlot.esm.js', async (route) => {
    const res = await route.fetch();
    const src = await res.text();
    const tail = 'export { uPlot as default };';
    if (!src.trimEnd().endsWith(tail)) throw new Error('uPlot.esm.js no longer ends with its default export: update traceUPlot');
    const body = `${src.trimEnd().slice(0, -tail.length)}
const __plots = (globalThis.__uplots = []);
function TracedUPlot(opts, data, target) { const u = new uPlot(opts, data, target); __plots.push(u); return u; }
Object.setPrototypeOf(TracedUPlot, uPlot);
TracedUPlot.prototype = uPlot.prototype;
export { TracedUPlot as default };
`;
    await route.fulfill({ response: res, body });
  });
}

/** The series of the newest uPlot inside `selector`: non-empty values per series (x excluded). */
function plottedIn(page: Page, selector: string): Promise<number[] | null> {
  return page.evaluate(`(() => {
    const plots = (globalThis.__uplots ?? []).filter((u) => u.root.isConnected && u.root.closest(${JSON.stringify(selector)}));
    const u = plots[plots.length - 1];
    return u ? u.data.slice(1).map((ys) => ys.filter((y) => y !== null && y !== undefined).length) : null;
  })()`) as Promise<number[] | null>;
}

/** Polls until `check` gives a value (the helper's, typed without the undefined it waits out). */
const eventually = async <T>(check: () => T | Promise<T>, timeoutMs?: number, stepMs?: number): Promise<NonNullable<T>> =>
  (await eventuallyMaybe(check, timeoutMs, stepMs)) as NonNullable<T>;

interface SessionRest {
  id: number;
  energyKwh: number;
  cost?: number;
  currency?: string;
  costBasis?: string;
  stop?: number;
}

t.test('Chargers: charge modes, start/stop, sessions with energy and cost, session chart', { skip: chromiumSkip }, async (t) => {
  const site = await startSecureSite(
    t,
    {
      gateway: { id: 'chargers-page', name: 'Chargers page test site', timezone: 'UTC' },
      site: { tariff: { currency: 'EUR', import: 0.3 } },
      adapters: [
        { id: 'meter', type: 'test-grid-meter' },
        {
          id: 'chargers',
          type: 'ocpp',
          chargers: [{ id: 'CP-DASH', password: await hashPassword(CP_PASSWORD), mode: 'now' }],
          idTags: { allow: ['TAG-1', 'DASH-START'] },
          remoteStartIdTag: 'DASH-START',
          loadManagement: {
            limitA: 32,
            marginA: 1,
            meter: { datapoint: 'site.grid.power', unit: 'W', staleAfterMs: 30_000 },
            control: { increaseHoldMs: 1000, followMs: 1000, settleTimeoutMs: 3000 },
            pv: { enableDelayS: 5, disableDelayS: 30 },
          },
        },
      ],
      auth: { loopback: 'none' },
    },
    { types: [gridMeter.type] },
  );
  const admin = new ApiClient(site.url);
  t.equal((await admin.login('admin', ADMIN_PASSWORD)).status, 200);
  for (const [username, role] of [
    ['olaf', 'operator'],
    ['vera', 'viewer'],
  ])
    t.equal((await admin.request('POST', '/api/users', { username, role, password: `${username}-password-1` })).status, 201);
  const rest = async <T>(path: string): Promise<T> => (await (await admin.request('GET', path)).json()) as T;

  // The charge point and a grid meter every second: 8 kW of PV, 0.5 kW of house, plus the car.
  const cp = new ChargePointSimulator({ endpoint: site.httpUrl.replace(/^http/, 'ws') + '/ocpp', identity: 'CP-DASH', password: CP_PASSWORD, connectors: 2 });
  t.teardown(() => cp.close());
  await cp.connect();
  const meter = setInterval(() => {
    const drawW = (cp.connector(1).transactionId ? cp.connector(1).drawA : 0) * 3 * VOLT;
    void gridMeter.ctx?.bus.publishValue('site.grid.power', Math.round((0.5 - 8) * 1000 + drawW));
  }, 1000);
  t.teardown(() => clearInterval(meter));

  // A finished session: readings every 1.5 s (each worth 10 minutes of charging, so the
  // figures are not tiny) while load management raises the car from 6 A, then stopped.
  const first = await cp.startSession(1, 'TAG-1');
  t.equal(first.status, 'Accepted');
  for (let i = 0; i < 8; i++) {
    await new Promise((r) => setTimeout(r, 1500));
    await cp.tick(10 * 60_000);
  }
  await cp.stopSession(1, 'EVDisconnected');
  const closed = await eventually(async () => {
    const r = await rest<{ sessions: SessionRest[] }>('/api/charging/sessions');
    return r.sessions.find((s) => s.id === first.transactionId && s.stop !== undefined);
  });
  t.ok(closed.energyKwh > 0 && closed.cost! > 0, `REST: ${closed.energyKwh} kWh, ${closed.cost} ${closed.currency} (${closed.costBasis})`);

  await mkdir(ARTIFACTS, { recursive: true });
  const context = await launchChromium(t, { viewport: WIDE, timezoneId: 'UTC', locale: 'en-US' });
  await traceUPlot(context);
  const page = await firstPage(context);
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of (401|404)/.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(`${site.url}/#/chargers`);
  await logIn(page, 'olaf', 'olaf-password-1');
  await page.goto(`${site.url}/#/chargers`);
  const charger = page.locator('section[data-charger="CP-DASH"]');
  await charger.waitFor();
  const control = charger.locator('.connector-control[data-connector="1"]');
  const modeButton = (name: string) => control.getByRole('button', { name, exact: true });

  await t.test('session table: energy and cost equal to REST', async (t) => {
    const row = page.locator(`#sessions tbody tr[data-session="${closed.id}"]`);
    await row.waitFor();
    const energy = `${closed.energyKwh.toLocaleString('en-US', { maximumFractionDigits: closed.energyKwh >= 100 ? 1 : 2 })} kWh`;
    t.equal(await row.locator('td.energy').textContent(), energy);
    t.equal(await row.locator('td.cost').textContent(), `${closed.cost!.toFixed(2)} EUR`);
  });

  await t.test('start from the page, switch modes (the charger follows), stop', async (t) => {
    t.equal(await modeButton('Now').getAttribute('aria-pressed'), 'true', 'the configured mode is shown');
    await control.getByRole('button', { name: 'Start', exact: true }).click();
    await control.locator('.form-msg', { hasText: 'Start: Accepted' }).waitFor();
    await eventually(() => (cp.connector(1).transactionId ?? 0) > 0, 5000);
    t.equal(cp.connector(1).idTag, 'DASH-START', 'the charger started with remoteStartIdTag');
    await eventually(() => cp.connector(1).limitA > 6, 15_000, 50);
    await cp.tick(5000);

    await modeButton('Off').click();
    await control.locator('.form-msg', { hasText: 'Mode: Off' }).waitFor();
    await eventually(() => cp.connector(1).limitA === 0, 10_000, 50);
    t.pass('off: the charger got 0 A');
    t.equal(await modeButton('Off').getAttribute('aria-pressed'), 'true');
    await control.locator('.lm-reason', { hasText: 'charge mode off' }).waitFor();
    const plan = await rest<{ plan: { allocations: Array<{ key: string; reason: string; mode: string }> } }>('/api/charging/plan');
    t.match(
      plan.plan.allocations.find((a) => a.key === 'CP-DASH/1'),
      { mode: 'off', reason: 'paused: charge mode off' },
    );

    await modeButton('PV').click();
    await control.locator('.form-msg', { hasText: 'Mode: PV' }).waitFor();
    // 7.5 kW of surplus on three phases: 10 A.
    await eventually(() => cp.connector(1).limitA === 10, 20_000, 50);
    t.pass('pv: the charger follows the surplus (10 A)');
    await control.locator('.lm-reason', { hasText: /PV: surplus 7\.5 kW/ }).waitFor();
    t.match(await page.locator('#pv-surplus').textContent(), /kW for min\+PV \/ PV/);
    await cp.tick(5000);

    await control.getByRole('button', { name: 'Stop', exact: true }).click();
    await control.locator('.form-msg', { hasText: 'Stop: Accepted' }).waitFor();
    await eventually(() => cp.connector(1).transactionId === undefined, 5000);
    const second = await eventually(async () =>
      (await rest<{ sessions: SessionRest[] }>('/api/charging/sessions')).sessions.find((s) => s.id > closed.id && s.stop),
    );
    const row = page.locator(`#sessions tbody tr[data-session="${second.id}"]`);
    await row.waitFor({ timeout: 10_000 });
    t.equal(
      await row.locator('td.cost').textContent(),
      typeof second.cost === 'number' ? `${second.cost.toFixed(2)} EUR` : '—',
      'the new session is listed with its cost',
    );
  });

  await t.test('a session opens as a chart of its power and energy', async (t) => {
    const detail = await rest<{ series: { power: unknown[]; energyKwh: unknown[] } }>(`/api/charging/sessions/${closed.id}`);
    await page.getByRole('button', { name: `Show session ${closed.id}` }).click();
    await page.locator('#session-detail canvas').first().waitFor();
    const counts = await eventually(() => plottedIn(page, '#session-detail'), 5000);
    t.equal(counts[0], detail.series.power.length, `power: ${counts[0]} points, as REST`);
    t.ok(counts[0]! >= 3, 'the chart has points');
    if (counts.length > 1) t.equal(counts[1], detail.series.energyKwh.length, 'energy: as REST');
    t.match(await page.locator('#session-detail dl').textContent(), /priced per meter-value interval/);
    const overflow = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
    t.ok(overflow <= 0, `desktop: no horizontal page scroll (overflow ${overflow}px)`);
    await page.screenshot({ path: join(ARTIFACTS, 'chargers-desktop.png'), fullPage: true });
  });

  await t.test('phone: controls usable, nothing scrolls sideways', async (t) => {
    await page.setViewportSize(PHONE);
    await page.reload();
    await charger.locator('.chart canvas').first().waitFor();
    await page.locator('#sessions tbody tr').first().waitFor();
    const overflow = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
    t.ok(overflow <= 0, `phone: no horizontal page scroll (overflow ${overflow}px)`);
    for (const name of ['Off', 'Now', 'Min+PV', 'PV', 'Start', 'Stop']) {
      const box = await control.getByRole('button', { name, exact: true }).boundingBox();
      t.ok(box && box.x >= 0 && box.x + box.width <= PHONE.width && box.height >= 40, `${name}: inside the screen, ${box?.height.toFixed(0)} px tall`);
    }
    await page.getByRole('button', { name: `Show session ${closed.id}` }).click();
    await page.locator('#session-detail canvas').first().waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'chargers-phone.png'), fullPage: true });
  });

  await t.test('a viewer sees the controls, disabled', async (t) => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await logIn(page, 'vera', 'vera-password-1');
    await page.goto(`${site.url}/#/chargers`);
    await control.waitFor();
    for (const name of ['Off', 'Now', 'PV', 'Start', 'Stop'])
      t.ok(await control.getByRole('button', { name, exact: true }).isDisabled(), `${name} is disabled`);
    await control.getByText('Your role (viewer) cannot control chargers.').waitFor();
  });

  t.same(problems, [], 'no script errors or CSP violations in the console');
});
