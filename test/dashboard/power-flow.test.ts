// Issue 24, item 2: the Overview as a live power-flow picture, in headless Chromium at
// 1366×800 and 390×844. A site with a grid meter (found by id), PV in kW (configured, with a
// label), a battery with SoC (found by id), a named load and two real OCPP chargers (the
// adapter's simulator; found as OCPP connectors). Meter readings arrive over MQTT as a device
// sends them. What a person sees is checked against GET /api/site/flow: every figure, the
// direction words and arrows, a new reading reaching the screen (latency reported, not
// asserted), no sideways scroll. Screenshots: test/artifacts/dashboard/overview-*.png.
import t, { type Test } from 'tap';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import mqtt from 'mqtt';
import type { Page } from 'playwright-core';
import { chromiumSkip, firstPage, launchChromium, logIn } from '../helpers/browser.js';
import { ApiClient, ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';
import { eventually } from '../helpers/gateway.js';
import { hashPassword } from '../../runtime/auth/passwords.js';
import { ChargePointSimulator } from '../../adapters/ocpp/simulator.js';
import type { SiteFlow } from '../../runtime/site/flow.js';

const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'dashboard');
const DESKTOP = { width: 1366, height: 800 };
const PHONE = { width: 390, height: 844 };
const CP_PASSWORD = 'charger-secret-1234';

/** The dashboard's own figure format (unit-tested in test/runtime/site/flow.test.ts). */
const { formatPower } = (await import(pathToFileURL(join(process.cwd(), 'runtime/dashboard/public/flow.js')).href)) as {
  formatPower(w: number | null): { num: string; unit: string };
};

interface Drawn {
  role: string;
  id: string | null;
  w: string | null;
  num: string;
  unit: string;
  direction: string | null;
  label: string;
}

/** Every node on the picture as drawn: data-w (exact W), the figure, its unit, the direction word, the label. */
function drawn(page: Page): Promise<Drawn[]> {
  return page.locator('svg.flow-svg g.flow-node').evaluateAll((gs) =>
    gs.map((g) => {
      return {
        role: g.getAttribute('data-role') ?? '',
        id: g.getAttribute('data-id'),
        w: g.getAttribute('data-w'),
        num: g.querySelector('.flow-num')?.textContent ?? '',
        unit: g.querySelector('.flow-unit')?.textContent ?? '',
        direction: g.getAttribute('data-direction'),
        label: g.querySelector('.flow-label')?.textContent ?? '',
      };
    }),
  );
}

t.test('Overview power flow in headless Chromium', { skip: chromiumSkip }, async (t) => {
  const hash = await hashPassword(CP_PASSWORD);
  const site = await startSecureSite(t, {
    gateway: { id: 'flow', name: 'Power flow test site', timezone: 'UTC' },
    datapoints: [
      { id: 'site.grid.power', kind: 'sensor', type: 'number', unit: 'W', description: 'Grid meter' },
      { id: 'roof.solar.power', kind: 'sensor', type: 'number', unit: 'kW', description: 'Roof inverter' },
      { id: 'home.battery.power', kind: 'sensor', type: 'number', unit: 'W', description: 'Battery inverter' },
      { id: 'home.battery.soc', kind: 'sensor', type: 'number', unit: '%', description: 'Battery state of charge' },
      { id: 'plant.heatpump.power', kind: 'sensor', type: 'number', unit: 'W', description: 'Heat pump' },
    ],
    adapters: [
      {
        id: 'ev',
        type: 'ocpp',
        chargers: [
          { id: 'CP-A', password: hash },
          { id: 'CP-B', password: hash },
        ],
        idTags: { allow: ['TAG-A', 'TAG-B'] },
      },
    ],
    site: {
      power: { pv: [{ datapoint: 'roof.solar.power', label: 'Roof PV' }], loads: [{ datapoint: 'plant.heatpump.power', label: 'Heat pump plant room' }] },
    },
    auth: { loopback: 'none' },
  });
  const admin = new ApiClient(site.url);
  t.equal((await admin.login('admin', ADMIN_PASSWORD)).status, 200);
  const restFlow = async (): Promise<SiteFlow> => (await (await admin.request('GET', '/api/site/flow')).json()) as SiteFlow;

  // Two real OCPP 1.6-J charge points, one three-phase and one single-phase, each charging a car.
  const wsUrl = site.httpUrl.replace(/^http/, 'ws') + '/ocpp';
  for (const [identity, phases] of [
    ['CP-A', 3],
    ['CP-B', 1],
  ] as const) {
    const cp = new ChargePointSimulator({ endpoint: wsUrl, identity, password: CP_PASSWORD, connectors: 1, phases });
    t.teardown(() => cp.close());
    await cp.connect();
    t.equal((await cp.startSession(1, `TAG-${identity.slice(-1)}`, { carMaxA: 16 })).status, 'Accepted', `${identity} charges`);
    await cp.tick(10_000);
  }
  const charging = (await eventually(async () => {
    const f = await restFlow();
    const chargers = f.nodes.filter((n) => n.role === 'charger');
    return chargers.length === 2 && chargers.every((n) => (n.w ?? 0) > 0) ? f : undefined;
  }, 10_000))!;
  const chargersW = charging.balance.chargersW;
  t.same(
    charging.nodes.filter((n) => n.role === 'charger').map((n) => [n.id, n.label]),
    [
      ['ev.cp-a.1.power', 'CP-A #1'],
      ['ev.cp-b.1.power', 'CP-B #1'],
    ],
    'both chargers are found as OCPP connectors',
  );

  // Meter readings as devices send them: MQTT QoS 1, acknowledged once stored.
  const meter = await mqtt.connectAsync(site.mqttUrl, { reconnectPeriod: 0 });
  t.teardown(() => meter.endAsync());
  const publish = (id: string, v: number) => meter.publishAsync(`outpost/dp/${id}/value`, JSON.stringify({ v, t: Date.now() }), { qos: 1 });
  // PV 21 kW, battery charging at 2 kW, heat pump 1.2 kW, 0.8 kW of other loads: the grid exports the rest.
  const exportW = chargersW + 1200 + 800 - 21_000 + 2000;
  t.ok(exportW < 0, `the site exports (${exportW} W)`);
  await publish('roof.solar.power', 21);
  await publish('home.battery.power', -2000);
  await publish('home.battery.soc', 64);
  await publish('plant.heatpump.power', 1200);
  await publish('site.grid.power', exportW);

  await mkdir(ARTIFACTS, { recursive: true });
  const context = await launchChromium(t, { viewport: DESKTOP, timezoneId: 'UTC', locale: 'en-US' });
  const page = await firstPage(context);
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 401/.test(m.text())) problems.push(m.text());
  });
  await page.goto(site.url);
  await logIn(page, 'admin', ADMIN_PASSWORD);
  problems.length = 0;

  /** The picture shows exactly what the REST answer says, node by node, and the balance beside it. */
  async function agrees(t: Test, size: string): Promise<SiteFlow> {
    const rest = await restFlow();
    const nodes = await drawn(page);
    for (const n of rest.nodes) {
      const d = nodes.find((x) => x.id === n.id);
      t.ok(d, `${size}: ${n.id} is drawn`);
      const shown = formatPower(n.role === 'grid' || n.role === 'battery' ? Math.abs(n.w!) : n.w);
      t.same([d?.w, d?.num, d?.unit], [String(n.w), shown.num, shown.unit], `${size}: ${n.label} shows ${shown.num} ${shown.unit} (${n.w} W)`);
    }
    const house = nodes.find((x) => x.role === 'house');
    const other = nodes.find((x) => x.role === 'other');
    t.equal(house?.w, String(rest.balance.consumptionW), `${size}: house consumption ${rest.balance.consumptionW} W as REST computes it`);
    t.equal(other?.w, String(rest.balance.otherW), `${size}: other loads ${rest.balance.otherW} W as REST computes it`);
    const c = formatPower(rest.balance.consumptionW);
    t.equal(await page.locator('dd[data-figure="consumption"]').textContent(), `${c.num} ${c.unit}`, `${size}: the figures list says the same`);
    return rest;
  }

  await t.test('desktop: every figure equals /api/site/flow; export shown as export', async (t) => {
    // First paint on a Pi-class CPU (issue 24's budget: < 1.5 s at 4× CPU throttling): reported, not asserted.
    // The moment the picture enters the page, seen by an observer injected before the page's scripts.
    await page.addInitScript(
      "new MutationObserver((_, o) => { if (document.querySelector('g.flow-node[data-w]')) { window.__flowDrawnAt = performance.now(); o.disconnect(); } }).observe(document, { subtree: true, childList: true })",
    );
    const cdp = await context.newCDPSession(page);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
    await page.goto(`${site.url}/#/overview`);
    await page.reload();
    await page.locator('g.flow-node[data-role="grid"][data-w]').waitFor();
    const paint = (await page.evaluate(
      "({ fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime, drawn: window.__flowDrawnAt, requests: performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname) })",
    )) as { fcp?: number; drawn?: number; requests: string[] };
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 1 });
    t.comment(`4× CPU throttling: first contentful paint ${paint.fcp?.toFixed(0)} ms, power flow in the page ${paint.drawn?.toFixed(0)} ms after navigation`);
    t.equal(paint.requests.filter((p) => p === '/api/site/flow').length, 1, 'one /api/site/flow request');
    t.notOk(paint.requests.includes('/api/datapoints'), 'no longer the whole datapoint list (the old "Site power now" card read it)');
    const rest = await agrees(t, 'desktop');
    t.match(rest.balance, { gridW: exportW, pvW: 21_000, batteryW: -2000, loadsW: 1200, chargersW, otherW: 800, otherNegative: false });
    const grid = page.locator('g.flow-node[data-role="grid"]');
    t.equal(await grid.getAttribute('data-direction'), 'export', 'the grid node says export');
    t.equal(await grid.locator('.flow-dir').textContent(), 'export');
    t.ok(await page.locator('g.flow-link.r-grid.on.rev').count(), 'the grid line runs out of the house (reversed)');
    t.equal(await page.locator('g.flow-node[data-role="battery"]').getAttribute('data-direction'), 'charging');
    t.match(await page.locator('g.flow-node[data-role="battery"] .flow-label').textContent(), /Battery 64 %/, 'the battery shows its SoC');
    t.equal(await page.locator('g.flow-node[data-id="roof.solar.power"] .flow-label').textContent(), 'Roof PV', 'the configured label');
    t.equal(await page.locator('g.flow-node[data-id="plant.heatpump.power"] .flow-label').textContent(), 'Heat pump p…', 'a long label is cut on the picture');
    t.equal(await page.locator('dt', { hasText: 'Heat pump plant room' }).count(), 1, 'and whole in the figures beside it');
    t.same(
      await page.locator('g.flow-link.r-grid .flow-line').evaluate((el) => {
        const style = el.ownerDocument.defaultView!.getComputedStyle(el);
        return [style.animationName, style.animationDirection];
      }),
      ['flow-dash', 'reverse'],
      'the dashes move toward the grid',
    );
    t.ok(((await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number) <= 0, 'no horizontal scroll');
    // The rest of the Overview is still there, below the picture.
    for (const name of ['Gateway health', 'Sync backlog']) await page.getByRole('region', { name }).waitFor();
    await page.locator('.chart canvas').first().waitFor();
    await page.getByRole('heading', { name: 'Adapters' }).waitFor();
    t.ok(
      await page.evaluate("document.querySelector('.flow').getBoundingClientRect().bottom <= document.querySelector('.chart').getBoundingClientRect().top"),
      "the picture comes first, today's chart below it",
    );
    await page.screenshot({ path: join(ARTIFACTS, 'overview-desktop.png'), fullPage: true });
  });

  await t.test('desktop: a new reading reaches the screen; the balance is recomputed as REST does', async (t) => {
    // A cloud: PV stays, the grid turns to import. The picture recomputes the balance itself.
    const importW = 1500;
    const t0 = Date.now();
    await publish('site.grid.power', importW);
    // Playwright's own polling (no eval: the dashboard's CSP forbids it).
    await page.locator(`g.flow-node[data-role="grid"][data-w="${importW}"]`).waitFor({ timeout: 10_000 });
    t.comment(`MQTT publish → figure on screen: ${Date.now() - t0} ms`);
    t.equal(await page.locator('g.flow-node[data-role="grid"]').getAttribute('data-direction'), 'import');
    t.equal(await page.locator('g.flow-link.r-grid.on.rev').count(), 0, 'the grid line runs into the house');
    const rest = await agrees(t, 'live');
    t.match(rest.balance, { gridW: importW, otherW: importW - exportW + 800 }, 'the browser and REST agree after the live reading');
    // And back to export, live.
    await publish('site.grid.power', -1000);
    await page.locator('g.flow-node[data-role="grid"][data-direction="export"]').waitFor();
    t.ok(await page.locator('g.flow-link.r-grid.on.rev').count(), 'export again: the line reverses live');
    await agrees(t, 'live export');
    // A named load reading more than the house uses: other loads stay 0, and the page says so.
    await publish('plant.heatpump.power', 60_000);
    await page.locator('g.flow-node[data-role="other"][data-direction="meters disagree"]').waitFor();
    const flagged = await agrees(t, 'consumers above consumption');
    t.match(flagged.balance, { otherW: 0, otherNegative: true }, 'REST flags it too');
    const excess = formatPower(flagged.balance.excessW);
    t.match(
      await page.locator('p.flow-note').textContent(),
      `add up to ${excess.num} ${excess.unit} more than the house consumption`,
      'the note names the excess',
    );
    await publish('plant.heatpump.power', 1200);
    await page.locator('p.flow-note').waitFor({ state: 'hidden' });
  });

  await t.test('phone: figures equal REST, readable, nothing scrolls sideways', async (t) => {
    await page.setViewportSize(PHONE);
    await page.reload();
    await page.locator('g.flow-node[data-role="grid"][data-w]').waitFor();
    await agrees(t, 'phone');
    // The figure's font size in viewBox units times the picture's scale on screen.
    const px = (await page.evaluate(`(() => {
      const svg = document.querySelector('svg.flow-svg');
      const num = document.querySelector('.flow-num');
      return (svg.getBoundingClientRect().width / svg.viewBox.baseVal.width) * parseFloat(getComputedStyle(num).fontSize);
    })()`)) as number;
    t.comment(`figures drawn ${px.toFixed(1)} px high on a 390 px phone`);
    t.ok(px >= 16, 'the figures are at least 16 px on the phone');
    const overflow = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
    t.ok(overflow <= 0, `no horizontal scroll at 390 px (overflow ${overflow}px)`);
    await page.screenshot({ path: join(ARTIFACTS, 'overview-phone.png'), fullPage: true });
    await page.emulateMedia({ reducedMotion: 'reduce' });
    t.equal(
      await page
        .locator('g.flow-link.on .flow-line')
        .first()
        .evaluate((el) => el.ownerDocument.defaultView!.getComputedStyle(el).animationName),
      'none',
      'prefers-reduced-motion: the dashes stand still (the arrows still show the direction)',
    );
    t.ok(await page.locator('g.flow-link.on .flow-arrow').first().isVisible());
  });

  t.same(problems, [], 'no script errors or CSP violations in the console');
});
