import t from 'tap';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LevelStore } from '../../storage/level/level-store.js';
import type { AuditEntry } from '../../runtime/audit/entry.js';
import { chromiumSkip, firstPage, launchChromium, logIn, pageErrors } from '../helpers/browser.js';
import { eventually } from '../helpers/gateway.js';
import { ApiClient, ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';
import { drivenAdapter } from '../helpers/driven-adapter.js';

const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'dashboard');
const skip = chromiumSkip;
const JUNK = 'alc.1730602800000';
const POINTS = 1234;
const T0 = Date.UTC(2024, 10, 3);

const junkSource = drivenAdapter('junk-import', 'a datapoint left by a refused import', async (ctx) => {
  await ctx.datapoints.register({ id: JUNK, kind: 'sensor', type: 'number' });
  const points = [];
  for (let i = 0; i < POINTS; i++) points.push({ id: JUNK, t: T0 + i * 300_000, v: i });
  await ctx.bus.publishValues(points);
});

t.test('an admin deletes a junk datapoint from its page after a confirm naming it and its stored readings; a viewer has no button', { skip }, async (t) => {
  const site = await startSecureSite(t, { adapters: [{ id: 'alc', type: 'junk-import' }], auth: { loopback: 'none' } }, { types: [junkSource.type] });
  const store = site.gateway.store as LevelStore;
  await eventually(async () => (await store.storedPoints(JUNK)).points === POINTS);
  const boss = new ApiClient(site.url);
  await boss.login('admin', ADMIN_PASSWORD);
  await boss.request('POST', '/api/users', { username: 'vera', role: 'viewer', password: 'vera-password-1' });
  await mkdir(ARTIFACTS, { recursive: true });

  const context = await launchChromium(t, { locale: 'en-US' });
  const page = await firstPage(context);
  const problems = pageErrors(page);
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of (401|404)/.test(m.text())) problems.push(m.text());
  });

  // A viewer sees the datapoint but no Delete button.
  await page.goto(site.url);
  await logIn(page, 'vera', 'vera-password-1');
  await page.goto(`${site.url}/#/datapoints/${JUNK}`);
  await page.getByRole('heading', { level: 1, name: JUNK }).waitFor();
  await page.locator('#chart').waitFor();
  t.equal(await page.getByRole('button', { name: /Delete/ }).count(), 0, 'no Delete button for a viewer');
  t.equal(await page.getByRole('region', { name: 'Delete datapoint' }).count(), 0, 'no Delete card');
  await page.getByRole('button', { name: 'Log out' }).click();

  // The admin: Delete, then a confirm step that names the datapoint and the readings stored.
  await logIn(page, 'admin', ADMIN_PASSWORD);
  await page.goto(`${site.url}/#/datapoints/${JUNK}`);
  await page.getByRole('heading', { level: 1, name: JUNK }).waitFor();
  await page.getByRole('button', { name: 'Delete datapoint…' }).click();
  const question = page.locator('#del-question');
  await question.waitFor();
  t.match(
    await question.textContent(),
    new RegExp(`Delete ${JUNK.replace(/\./g, '\\.')} and its 1,234 stored readings from `),
    'the confirm names the datapoint and the number of stored readings',
  );
  t.match(
    await page.locator('#del-confirm').textContent(),
    /It may come back: adapter "alc" is running/,
    'and says that its running adapter may bring it back',
  );
  await page.screenshot({ path: join(ARTIFACTS, 'datapoint-delete-01-confirm.png') });

  // Cancel deletes nothing.
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.locator('#del-msg', { hasText: 'Nothing was deleted.' }).waitFor();
  t.equal((await store.storedPoints(JUNK)).points, POINTS, 'cancel: everything still stored');

  await page.getByRole('button', { name: 'Delete datapoint…' }).click();
  await page.getByRole('button', { name: `Delete ${JUNK}` }).click();
  await page.locator('#del-msg', { hasText: `Deleted ${JUNK}: 1,234 readings` }).waitFor();
  t.pass('the page says what was deleted');
  await page.screenshot({ path: join(ARTIFACTS, 'datapoint-delete-02-done.png') });
  t.same(await store.storedPoints(JUNK), { points: 0, rollups: 0 }, 'nothing stored any more');
  t.equal(site.gateway.registry.get(JUNK), undefined, 'not registered any more');

  await page.locator('#del-back').click();
  await page.getByRole('heading', { level: 1, name: 'Datapoints' }).waitFor();
  await page.locator('#dp-search').waitFor();
  t.equal(await page.getByText(JUNK).count(), 0, 'not in the list');

  const audit = (await (await boss.request('GET', '/api/audit?action=datapoint.delete')).json()) as { items: AuditEntry[] };
  t.match(audit.items[0], { actor: { name: 'admin' }, target: JUNK, outcome: 'ok', details: { points: POINTS } }, 'audited');
  t.same(problems, [], 'no script errors');
});
