// Issue 24 item 6: adapter cards read as words, not JSON. A site with every built-in adapter
// on its real peer (a Modbus TCP simulator with an SDM630, a SunSpec inverter and a unit that
// does not answer; an OCPP charger under load management; a Siemens Insight drop folder; an
// Iridium modem; simulated and MQTT), seen in headless Chromium at 1366×800 and 390×844.
// Screenshots: test/artifacts/dashboard/adapters-desktop.png, adapters-phone.png.
import t from 'tap';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromiumSkip, firstPage, launchChromium, logIn } from '../helpers/browser.js';
import { ADMIN_PASSWORD, ApiClient, startSecureSite } from '../security/harness.js';
import { eventually } from '../helpers/gateway.js';
import { adapterSite } from '../helpers/adapter-site.js';

const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'dashboard');
const WIDE = { width: 1366, height: 800 };
const PHONE = { width: 390, height: 844 };

interface Status {
  id: string;
  type: string;
  state: string;
  info?: Record<string, unknown>;
}

t.test('adapter cards: labelled values, words and small tables; SunSpec states as words', { skip: chromiumSkip }, async (t) => {
  const rig = await adapterSite(t);
  const site = await startSecureSite(t, { gateway: { id: 'cards', name: 'Adapter cards test site', timezone: 'UTC' }, ...rig.config });
  await rig.connectCharger(site.httpUrl);
  // Evt1 with bits 0 and 7 set: a ground fault and over temperature (the register image is big-endian, high word first).
  const events = (await eventually(() => site.gateway.registry.get('pv.inverter.events'), 10_000))!;
  const eventsAddress = (events.meta as { register: { address: number } }).register.address;
  const inverter = rig.modbus.devices.get(rig.inverterUnit)!;
  inverter.tables.holding.set(eventsAddress, 0);
  inverter.tables.holding.set(eventsAddress + 1, (1 << 0) | (1 << 7));

  const api = new ApiClient(site.url);
  t.equal((await api.login('admin', ADMIN_PASSWORD)).status, 200);
  const statuses = async (): Promise<Record<string, Status>> => {
    const body = (await (await api.request('GET', '/api/adapters')).json()) as { items: Status[] };
    return Object.fromEntries(body.items.map((s) => [s.id, s]));
  };
  const rest = await eventually(
    async () => {
      const s = await statuses();
      const devices = s.modbus?.info?.devices as Record<string, { state: string }> | undefined;
      const ready =
        devices?.pv?.state === 'ok' &&
        devices.spare?.state === 'failing' &&
        s.insight?.info?.lastImport &&
        s.insight.info.lastFailure &&
        s.chargers?.info?.plan &&
        s.sat?.info?.signal !== undefined &&
        site.gateway.store.latest('pv.inverter.events')?.v === 129;
      return ready ? s : undefined;
    },
    30_000,
    200,
  ).then((s) => s!);

  await mkdir(ARTIFACTS, { recursive: true });
  const context = await launchChromium(t, { viewport: WIDE, timezoneId: 'UTC', locale: 'en-US' });
  const page = await firstPage(context);
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of (401|404)/.test(m.text())) problems.push(m.text());
  });
  await page.goto(site.url);
  await logIn(page, 'admin', ADMIN_PASSWORD);

  const card = (id: string) => page.locator(`section.card.adapter[data-adapter="${id}"]`);
  for (const [size, name] of [
    [WIDE, 'desktop'],
    [PHONE, 'phone'],
  ] as const) {
    await t.test(`${name}: every card reads as labelled words`, async (t) => {
      await page.setViewportSize(size);
      await page.goto(`${site.url}/#/overview`);
      await card('modbus').locator('.sv-table').first().waitFor();
      await card('chargers').locator('.sv-table').first().waitFor();
      await card('insight').getByText('Last import').waitFor();

      const texts = await page.locator('section.card.adapter').evaluateAll((cards) => cards.map((c) => [c.getAttribute('data-adapter'), c.textContent ?? '']));
      t.same(texts.map(([id]) => id).sort(), ['chargers', 'insight', 'modbus', 'plugs', 'sat', 'site'], 'one card per adapter');
      for (const [id, text] of texts) t.notMatch(text, /\{"|\[\{|":/, `${id}: no JSON in the card`);

      // Modbus: devices and buses as tables, states as words, the failing unit's error on its detail line.
      const modbus = card('modbus');
      t.ok(await modbus.locator('caption', { hasText: 'Devices' }).count(), 'Modbus: a Devices table');
      for (const heading of ['Device', 'State', 'Model', 'Last answer', 'Requests', 'Errors'])
        t.ok(await modbus.locator('th', { hasText: heading }).count(), `Modbus: column ${heading}`);
      t.match(await modbus.locator('tr[data-key="pv"]').textContent(), /answering.*sunspec/, 'the inverter answers');
      t.match(await modbus.locator('tr[data-key="spare"]').textContent(), /failing/, 'unit 9 is failing');
      t.match(
        await modbus.locator('tr[data-key="spare"] + tr.sv-detail').textContent(),
        /Last error: .*(timeout|no answer|timed out)/i,
        'its last error, labelled',
      );
      t.match(
        await modbus.locator('tr[data-key="pv"] + tr.sv-detail').textContent(),
        /Identity: .*manufacturer: Outpost/,
        'the SunSpec identity as key: value',
      );
      t.match(await modbus.locator('caption', { hasText: 'Buses' }).locator('xpath=..').textContent(), /tcp:127\.0\.0\.1:\d+/, 'Buses: the link');

      // OCPP: a charger row with its connectors as words, the plan with per-phase amps, counters labelled.
      const ocpp = card('chargers');
      t.match(
        await ocpp.locator('caption', { hasText: 'Chargers' }).locator('xpath=..').textContent(),
        /CP1.*online.*1: (charging|preparing|suspended by car|suspended by charger)/,
        'the charger, online, its connector as a word',
      );
      t.match(
        await ocpp.locator('.sv-block', { hasText: 'Load management' }).textContent(),
        /Available\s*L1 [\d.]+ A · L2 [\d.]+ A · L3 [\d.]+ A/,
        'available current per phase, in A',
      );
      t.match(await ocpp.locator('.sv-block', { hasText: 'Counters' }).textContent(), /Connections\s*1/, 'counters labelled');
      t.match(
        await ocpp.locator('caption', { hasText: 'Allocations' }).locator('xpath=..').textContent(),
        /CP1.*[\d.]+ A/,
        'allocations: session and its limit in A',
      );

      // bms-files: counters equal to REST, the last import and refusal as labelled lines.
      const insight = card('insight');
      const info = rest.insight!.info as { files: number; lastImport: { rows: number; file: string }; lastFailure: { file: string } };
      t.match(
        await insight
          .locator('dt', { hasText: /^Files imported$/ })
          .locator('xpath=following-sibling::dd[1]')
          .textContent(),
        String(info.files),
        'files imported = REST',
      );
      const last = insight.locator('.sv-block', { hasText: 'Last import' });
      t.match(await last.textContent(), new RegExp(`File\\s*${info.lastImport.file}.*Rows\\s*${info.lastImport.rows}`), 'last import: file and rows = REST');
      t.match(
        await insight.locator('.sv-block', { hasText: 'Last refusal' }).textContent(),
        new RegExp(`File\\s*${info.lastFailure.file}.*Reason`),
        'last refusal, with its reason',
      );
      t.match(await insight.textContent(), /Format\s*Siemens Insight trend report/, 'the format as words');
      t.match(await insight.textContent(), /Unmapped points\s*EV\./, 'unmapped points listed');

      // Iridium: units after numbers, the link state as words.
      const sat = card('sat');
      t.match(await sat.textContent(), /Signal\s*3 of 5 bars/, 'signal with its unit');
      t.match(await sat.textContent(), /Credits today\s*\d+ credits/, 'credits with their unit');
      t.match(await sat.textContent(), /Link\s*(idle \(ready\)|in a session|starting)/, 'link state as words');

      t.ok(((await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number) <= 0, `${size.width} px: no horizontal page scroll`);
      await page.screenshot({ path: join(ARTIFACTS, `adapters-${name}.png`), fullPage: true });
    });
  }

  await t.test('SunSpec operating state and events show as words in the Datapoints table, live', async (t) => {
    for (const size of [WIDE, PHONE]) {
      await page.setViewportSize(size);
      await page.goto(`${site.url}/#/datapoints`);
      const state = page.locator('tr[data-id="pv.inverter.state"] td.num .val');
      await state.waitFor();
      t.equal(await state.textContent(), 'MPPT', `${size.width} px: St 4 reads MPPT`);
      t.equal(
        await page.locator('tr[data-id="pv.inverter.events"] td.num .val').textContent(),
        'Ground fault, Over temperature',
        'Evt1 129: the two flags set',
      );
    }
    // The datapoint's own page says the word too.
    await page.goto(`${site.url}/#/datapoints/pv.inverter.events`);
    await page.locator('#dp-value', { hasText: 'Ground fault, Over temperature' }).waitFor();
    t.pass('the datapoint page of Evt1 names the flags');
    await page.goto(`${site.url}/#/datapoints`);
    await page.locator('tr[data-id="pv.inverter.state"] td.num .val').waitFor();
    // The inverter faults: St 7. The live table follows with the word.
    const stAddress = (site.gateway.registry.get('pv.inverter.state')!.meta as { register: { address: number } }).register.address;
    inverter.tables.holding.set(stAddress, 7);
    await page.locator('tr[data-id="pv.inverter.state"] td.num .val', { hasText: 'Fault' }).waitFor({ timeout: 10_000 });
    t.pass('St 7 reads Fault, live');
    inverter.tables.holding.set(stAddress, 4);
  });

  t.same(problems, [], 'no script errors or CSP violations in the console');
});
