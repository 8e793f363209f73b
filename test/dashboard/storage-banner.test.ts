/**
 * Issue 19, part 1: the dashboard shows read-only storage. `/healthz` answers 503 then; the
 * Overview used to fail on that answer instead of showing it.
 */
import t from 'tap';
import { ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';
import { chromiumSkip, firstPage, launchChromium, logIn, pageErrors } from '../helpers/browser.js';
import { eventually } from '../helpers/gateway.js';
import { failCommits } from '../helpers/storage-faults.js';
import type { LevelStore } from '../../storage/level/level-store.js';

t.test('Overview: a banner while storage is read-only, gone once it recovers', { skip: chromiumSkip }, async (t) => {
  const site = await startSecureSite(t, { datapoints: [{ id: 'a.x', kind: 'sensor', type: 'number' }] });
  const store = site.gateway.store as unknown as { reopen(): Promise<void> };
  // Every write fails and the database cannot be reopened: a disk that stays full.
  failCommits(site.gateway.store as LevelStore, { once: false });
  const reopen = store.reopen.bind(store);
  store.reopen = async () => {
    throw new Error('No space left on device (injected)');
  };
  await t.rejects(site.gateway.store.write([{ id: 'a.x', t: Date.now(), v: 1 }]));

  const context = await launchChromium(t);
  const page = await firstPage(context);
  const errors = pageErrors(page);
  await page.goto(site.url);
  await logIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  const banner = page.getByRole('alert').filter({ hasText: 'Storage is read-only' });
  await banner.waitFor({ timeout: 10_000 });
  t.match(await banner.textContent(), /No space left on device.*free disk space/, 'the banner says why and what to do');
  t.match(await page.locator('.card', { hasText: 'Gateway health' }).textContent(), /storage\s*read-only/, 'the health card renders, with the storage state');

  store.reopen = reopen;
  await eventually(() => !site.gateway.store.readOnly, 20_000);
  await page.reload();
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  await page.locator('.card').first().waitFor();
  t.equal(await banner.count(), 0, 'no banner once storage is writable again');
  t.same(errors, [], 'no page errors');
});
