import t from 'tap';
import { z } from 'zod';
import { defineAdapter, type AdapterType } from '../../runtime/adapter.js';
import { OutpostError } from '../../core/errors.js';
import { chromiumSkip, firstPage, launchChromium, logIn } from '../helpers/browser.js';
import { ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';

// An adapter whose start fails with a non-retryable error is `failed` (runtime/adapter-host.ts):
// its card on the Overview says so, with the reason, and that no retry follows.

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

t.test('Overview: a failed adapter card shows the state and its message', { skip: chromiumSkip }, async (t) => {
  const site = await startSecureSite(t, { adapters: [{ id: 'meter', type: 'misconfigured' }] }, { types: [misconfigured] });
  const context = await launchChromium(t);
  const page = await firstPage(context);
  await page.goto(site.url);
  await logIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  const cardEl = page.locator('.card', { has: page.getByRole('heading', { name: 'meter' }) });
  await cardEl.waitFor();
  const text = (await cardEl.textContent()) ?? '';
  t.match(text, /failed \(not retried/, 'the state says no retry follows');
  t.match(text, /register 40001 has no type/, 'the reason is on the card');
  t.equal(await cardEl.locator('.state-failed').count(), 1, 'styled as failed');
});
