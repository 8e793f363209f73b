import t from 'tap';
import { chromiumSkip, firstPage, launchChromium, logIn, pageErrors } from '../helpers/browser.js';
import { ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';
import { eventually } from '../helpers/gateway.js';
import { IridiumSimulator } from '../../adapters/iridium/simulator.js';
import { serialPortIo } from '../../adapters/iridium/at-transport.js';
import { FAST_TIMING, openSerial, ptyPair } from '../adapters/iridium/harness.js';

// Issue 22: a flood of ring alerts (MT queued at the Iridium gateway by whoever knows the
// IMEI) is counted and shown on the Links page's Iridium card, live.
t.test('Links page, Iridium card: ring alerts, those deferred for the MT share, MT credits', { skip: chromiumSkip }, async (t) => {
  const { a, b } = await ptyPair(t);
  const sim = new IridiumSimulator(serialPortIo(await openSerial(t, b)), { echo: true, signal: 4 });
  t.teardown(() => sim.close());
  const site = await startSecureSite(t, {
    gateway: { id: 'ridge-2', timezone: 'UTC' },
    // The default MT share (6 credits): three fetches of a small MT message.
    adapters: [{ id: 'sat', type: 'iridium', port: a, datapoints: [{ id: 'tank.level', decimals: 2 }], budget: { dailyCredits: 20 }, timing: FAST_TIMING }],
  });
  const latest = (id: string): unknown => site.gateway.store.latest(id)?.v;
  await eventually(() => latest('sat.link_state') === 'idle');
  for (let i = 0; i < 5; i++) sim.queueMt(Buffer.from(`not ours ${i}`));
  await eventually(() => latest('sat.mt_credits_today') === 6);
  sim.ring(); // the gateway rings again: beyond the share
  await eventually(() => latest('sat.rings_deferred') === 1);
  const rings = latest('sat.ring_alerts') as number;

  const context = await launchChromium(t, { timezoneId: 'UTC', locale: 'en-US' });
  const page = await firstPage(context);
  const problems = pageErrors(page);
  await page.goto(site.url);
  await logIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  await page.getByRole('link', { name: 'Links', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Links' }).waitFor();

  const card = page.locator('section.card[aria-label="sat"]');
  const value = (q: string) => card.locator(`[data-q="${q}"]`);
  await value('ring_alerts').waitFor();
  t.equal(await value('ring_alerts').textContent(), String(rings), 'ring alerts since start');
  t.equal(await value('rings_deferred').textContent(), '1', 'deferred for the MT share');
  t.match(await value('rings_deferred').getAttribute('class'), /\bwarn\b/, 'marked for attention');
  t.match(await value('mt_credits_today').textContent(), /^6\b/, 'the MT share, spent');
  t.equal(await card.locator('dt', { hasText: 'rings deferred (MT share spent)' }).count(), 1);

  // Another ring while the page is open: updated in place, live.
  sim.ring();
  await value('ring_alerts')
    .filter({ hasText: new RegExp(`^${rings + 1}$`) })
    .waitFor({ timeout: 5000 });
  await value('rings_deferred').filter({ hasText: /^2$/ }).waitFor({ timeout: 5000 });
  t.pass('updated live');
  t.same(problems, [], 'no page errors');
});
