// Issue 24 item 6: the System page and the Node-RED editor link, on the real process (it is the
// process that restarts) with flows on, run as systemd would run it (INVOCATION_ID set). At
// 1366×800 and 390×844: the figures equal GET /api/system, the clock warns when it cannot be
// told synchronised, a viewer sees neither Restart nor Flows; an admin restarts it through the
// confirm step and the page follows the gateway back. Screenshots: system-desktop.png, system-phone.png.
import t from 'tap';
import { createServer } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { chromiumSkip, firstPage, launchChromium, logIn } from '../helpers/browser.js';
import { processYamlHead, spawnOutpost } from '../helpers/process.js';
import { localApi } from '../helpers/local-api.js';
import { tempDir } from '../helpers/teardown.js';
import { ApiClient } from '../security/harness.js';
import { EXIT_RESTART } from '../../runtime/system-info.js';

const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'dashboard');
const WIDE = { width: 1366, height: 800 };
const PHONE = { width: 390, height: 844 };
const ADMIN = 'system-admin-pw-1';
const VIEWER = 'system-viewer-pw-1';

/** A port free now: the restarted process must answer where the page is. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** As the page formats bytes (status-view.js formatBytes, SI units, en-US). */
function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toLocaleString('en-US', { maximumFractionDigits: i ? 1 : 0 })} ${units[i]}`;
}

interface SystemInfo {
  disk: { totalBytes: number; usedPercent: number };
  memory: { totalBytes: number };
  cpu: { count: number };
  clock: { synchronized: boolean | null; source: string | null };
  versions: Record<string, string | null>;
  flows: { enabled: boolean; editor: string | null };
  restart: { available: boolean; supervisor: string; note: string };
}

t.test('System page: figures equal REST, flows link for admins, restart with a confirm step', { skip: chromiumSkip }, async (t) => {
  const dir = await tempDir(t, 'outpost-system-page-');
  const dataDir = join(dir, 'data');
  const secret = join(dir, 'flows.secret');
  await writeFile(secret, 'a-flows-credential-secret-0123456789\n', { mode: 0o600 });
  const file = join(dir, 'outpost.yaml');
  const port = await freePort();
  await writeFile(
    file,
    `${processYamlHead({ id: 'system-page', timezone: 'UTC', dataDir, httpPort: port })}auth: { admin: { username: admin, password: ${ADMIN} } }
flows: { enabled: true, credentialSecretFile: ${secret} }
adapters:
  - { id: site, type: simulated, interval: 1000 }
`,
  );
  const env = { INVOCATION_ID: 'outpost-system-page-test' };
  const first = spawnOutpost(['start', '-c', file], { env });
  t.teardown(() => first.child.kill('SIGKILL'));
  const url = await first.ready;
  const api = localApi(dataDir);
  t.equal(
    (
      await api('/api/users', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'watcher', role: 'viewer', password: VIEWER }),
      })
    ).status,
    201,
  );
  const rest = (await (await api('/api/system')).json()) as SystemInfo;
  t.match(rest, { flows: { enabled: true, editor: '/flows/' }, restart: { available: true, supervisor: 'systemd' } });

  await mkdir(ARTIFACTS, { recursive: true });
  const context = await launchChromium(t, { viewport: WIDE, timezoneId: 'UTC', locale: 'en-US' });
  const page = await firstPage(context);
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => {
    // While the gateway restarts the page's requests fail on purpose: only script errors count.
    if (m.type() === 'error' && !/^Failed to load resource|^WebSocket connection/.test(m.text())) problems.push(m.text());
  });
  const overflow = (p: Page) => p.evaluate('document.documentElement.scrollWidth - window.innerWidth') as Promise<number>;

  await page.goto(url);
  await logIn(page, 'admin', ADMIN);
  const flowsLink = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Flows ↗' });
  await flowsLink.waitFor();
  t.equal(await flowsLink.getAttribute('href'), rest.flows.editor, 'the top navigation links the Node-RED editor');
  t.equal(await flowsLink.getAttribute('target'), '_blank', 'in a new tab');
  t.equal((await page.request.get(`${url}/flows/`)).status(), 200, 'the editor answers the admin');

  for (const [size, name] of [
    [WIDE, 'desktop'],
    [PHONE, 'phone'],
  ] as const) {
    await t.test(`${name}: the figures of GET /api/system`, async (t) => {
      await page.setViewportSize(size);
      await page.goto(`${url}/#/system`);
      await page.locator('#sys-cards .card').first().waitFor();
      for (const [key, v] of Object.entries(rest.versions))
        t.equal(await page.locator(`[data-version="${key}"]`).textContent(), v ?? 'not installed', `version ${key}`);
      t.equal(await page.locator('#sys-cpus').textContent(), String(rest.cpu.count), 'CPU count');
      t.match(await page.locator('#sys-disk-used').textContent(), new RegExp(`of ${bytes(rest.disk.totalBytes).replace('.', '\\.')}$`), 'disk total');
      const shownPercent = Number((await page.locator('#sys-disk-used').textContent())!.split(' %')[0]);
      t.ok(Math.abs(shownPercent - rest.disk.usedPercent) < 1, `disk in use ${shownPercent} % ≈ ${rest.disk.usedPercent} %`);
      t.ok(await page.locator('meter.usage').first().isVisible(), 'a usage bar');
      t.match(await page.locator('#sys-mem-used').textContent(), new RegExp(`of ${bytes(rest.memory.totalBytes).replace('.', '\\.')}$`), 'memory total');
      const clockWord = rest.clock.synchronized === true ? 'synchronised' : rest.clock.synchronized === false ? 'NOT synchronised' : 'unknown';
      t.equal(await page.locator('#sys-clock-state').textContent(), clockWord, `clock: ${clockWord} (${rest.clock.source ?? 'no tool answered'})`);
      if (rest.clock.synchronized !== true) {
        t.ok(await page.locator('.clock-warning').isVisible(), 'not known to be synchronised: a warning');
        t.equal(await page.locator('#sys-clock-state').evaluate((el) => el.className), 'tone-warn', 'in the warning colour');
      }
      t.match(await page.locator('#sys-uptime').textContent(), /\d+ (min|h|d)/, 'gateway uptime');
      t.equal(await page.locator('#sys-flows').getAttribute('href'), rest.flows.editor, 'the editor link on the page');
      t.equal(await page.locator('#sys-restart-note').textContent(), `${rest.restart.note}.`, 'what a restart does here');
      t.ok(await page.getByRole('button', { name: 'Restart gateway…' }).isEnabled(), 'admins may restart');
      t.ok((await overflow(page)) <= 0, `${size.width} px: no horizontal page scroll`);
      await page.screenshot({ path: join(ARTIFACTS, `system-${name}.png`), fullPage: true });
    });
  }

  await t.test('a viewer sees the figures, no Restart and no Flows link, and may not restart', async (t) => {
    const viewerContext = await launchChromium(t, { viewport: PHONE, timezoneId: 'UTC', locale: 'en-US' });
    const viewer = await firstPage(viewerContext);
    await viewer.goto(`${url}/#/system`);
    await logIn(viewer, 'watcher', VIEWER);
    await viewer.goto(`${url}/#/system`);
    await viewer.locator('#sys-cards .card').first().waitFor();
    t.equal(await viewer.getByRole('button', { name: /Restart/ }).count(), 0, 'no Restart button');
    t.equal(await viewer.locator('#sys-flows').count(), 0, 'no editor link on the page');
    t.equal(await viewer.getByRole('link', { name: 'Flows ↗' }).count(), 0, 'no Flows link in the navigation');
    const client = new ApiClient(url);
    await client.login('watcher', VIEWER);
    t.equal((await client.request('POST', '/api/system/restart')).status, 403, 'POST /api/system/restart: 403 for a viewer');
  });

  await t.test('restart: confirm, the process exits 75, the page follows it back', async (t) => {
    await page.setViewportSize(WIDE);
    await page.goto(`${url}/#/system`);
    await page.getByRole('button', { name: 'Restart gateway…' }).click();
    await page.locator('#sys-restart-confirm').waitFor();
    t.match(await page.locator('#sys-restart-confirm').textContent(), /stops cleanly.*logged out/, 'the confirm step says what happens');
    await page.getByRole('button', { name: 'Cancel' }).click();
    t.equal(await page.locator('#sys-restart-confirm').isVisible(), false, 'Cancel: nothing happens');
    t.equal(first.child.exitCode, null, 'still running');
    await page.getByRole('button', { name: 'Restart gateway…' }).click();
    await page.getByRole('button', { name: 'Restart now' }).click();
    await page.locator('#sys-restart-msg', { hasText: 'Restarting' }).waitFor();
    const exit = await first.exited;
    t.equal(exit.code, EXIT_RESTART, `the process exits with ${EXIT_RESTART}`);
    // What systemd does on that exit code.
    const second = spawnOutpost(['start', '-c', file], { env });
    t.teardown(() => second.child.kill('SIGKILL'));
    t.equal(await second.ready, url, 'back on the same address');
    await page.locator('#sys-restart-msg', { hasText: /The gateway is back after \d+ s/ }).waitFor({ timeout: 60_000 });
    await page.getByRole('button', { name: 'Log in again' }).click();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    t.pass('sessions ended with the old process: the login screen');
    second.child.kill('SIGTERM');
    t.equal((await second.exited).code, 0);
  });

  t.same(problems, [], 'no script errors or CSP violations in the console');
});
