// Issue 24, item 7: a sweep of every dashboard page, read from app.js's PAGES (a page added
// there is covered without touching this file), as an admin and as a viewer, at desktop
// 1366×800 and phone 390×844. Only generic checks, so pages being built stay free to change:
// no console errors or uncaught exceptions, no failed requests, no horizontal page scroll,
// a page heading. Screenshots: test/artifacts/dashboard/<page>-sweep-desktop.png / -phone.png.
//
// The gateway runs with broker.prefix `site7`, not the default `outpost`: live values must
// still reach the page (live.js takes the prefix from GET /api/auth/me).
import t from 'tap';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromiumSkip, firstPage, launchChromium, logIn } from '../helpers/browser.js';
import { ADMIN_PASSWORD, ApiClient, startSecureSite } from '../security/harness.js';
import { REPO_ROOT } from '../helpers/process.js';
import { hashPassword, hashToken } from '../../runtime/auth/passwords.js';

const ARTIFACTS = join(REPO_ROOT, 'test', 'artifacts', 'dashboard');
const APP_JS = join(REPO_ROOT, 'runtime', 'dashboard', 'public', 'app.js');
const VIEWPORTS = [
  ['desktop', { width: 1366, height: 800 }],
  ['phone', { width: 390, height: 844 }],
] as const;
const PREFIX = 'site7';

interface PageEntry {
  id: string;
  title: string;
  /** The role the page needs (admin), or undefined: every role. */
  role: string | undefined;
}

/** The `PAGES` table of app.js: `[hash, title, role needed, module]` per line. */
function pagesOf(source: string): PageEntry[] {
  const table = /const PAGES = \[([\s\S]*?)\n\];/.exec(source);
  if (!table) throw new Error('app.js has no `const PAGES = [ ... ];` table: update pagesOf()');
  const pages: PageEntry[] = [];
  for (const m of table[1]!.matchAll(/^\s*\[\s*'([\w-]+)',\s*'([^']+)',\s*(undefined|'(\w+)')\s*,/gm)) pages.push({ id: m[1]!, title: m[2]!, role: m[4] });
  return pages;
}

t.test('every page of PAGES, admin and viewer, desktop and phone', { skip: chromiumSkip }, async (t) => {
  const pages = pagesOf(await readFile(APP_JS, 'utf8'));
  // Guards the parser: today's app.js has eleven pages; a table it cannot read must not pass as "nothing to check".
  t.ok(
    pages.length >= 8 && pages.some((p) => p.id === 'overview') && pages.some((p) => p.role === 'admin'),
    `PAGES read from app.js: ${pages.map((p) => p.id).join(', ')}`,
  );

  const site = await startSecureSite(t, {
    gateway: { id: 'sweep', name: 'Dashboard sweep site', timezone: 'UTC' },
    broker: { prefix: PREFIX },
    datapoints: [{ id: 'site.mode', kind: 'actuator', type: 'string', allowed: ['auto', 'manual', 'off'], description: 'Operating mode' }],
    // Each kind of page has something to show: a simulated site, a charger (offline), a BMS import source.
    adapters: [
      { id: 'site', type: 'simulated', interval: 1000, prefix: 'site' },
      {
        id: 'chargers',
        type: 'ocpp',
        chargers: [{ id: 'CP-SWEEP-1', password: await hashPassword('cp-sweep-authorization-key') }],
        loadManagement: { limitA: 32, meter: { datapoint: 'site.grid.power', unit: 'W' } },
      },
      {
        id: 'insight',
        type: 'bms-files',
        format: 'siemens-insight',
        upload: { tokenHashes: [hashToken('upload-token-sweep-0123456789')] },
        points: [{ exact: 'OATEMP', id: 'bms.outdoor.temperature', unit: '°F' }],
      },
    ],
    auth: { loopback: 'none' },
  });
  const admin = new ApiClient(site.url);
  await admin.login('admin', ADMIN_PASSWORD);
  t.equal((await admin.request('POST', '/api/users', { username: 'vera', role: 'viewer', password: 'vera-password-1' })).status, 201, 'viewer added');
  t.match(await (await admin.request('GET', '/api/auth/me')).json(), { broker: { prefix: PREFIX } }, 'GET /api/auth/me names the topic prefix');
  await mkdir(ARTIFACTS, { recursive: true });

  const context = await launchChromium(t);
  const page = await firstPage(context);
  let visiting = 'login';
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${visiting}: console error: ${m.text()} (${m.location().url || 'no url'})`);
  });
  page.on('pageerror', (e) => problems.push(`${visiting}: uncaught: ${e.message}`));
  page.on('requestfailed', (r) => {
    // A fetch cut short by the test moving to the next page is not a failure of the page.
    const why = r.failure()?.errorText ?? 'failed';
    if (!/ERR_ABORTED/.test(why)) problems.push(`${visiting}: request failed: ${r.method()} ${r.url()} (${why})`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${visiting}: ${r.status()} for ${r.request().method()} ${new URL(r.url()).pathname}`);
  });

  await page.goto(site.url);
  await logIn(page, 'admin', ADMIN_PASSWORD);
  // Before the login the page asks who is logged in and gets 401: by design.
  const onlyWhoAmI = (what: string) => {
    const seen = problems.splice(0);
    t.same(
      seen.filter((p) => !/(401 for GET \/api\/auth\/me|status of 401 \(Unauthorized\) \(.*\/api\/auth\/me\))$/.test(p)),
      [],
      `${what}: nothing but 401 for GET /api/auth/me (${seen.length} entries)`,
    );
  };
  onlyWhoAmI('the login screen');

  // Live values under the gateway's prefix reach the page's live module (the same module
  // instance the pages use: the browser keeps one per URL).
  const within = <T>(what: Promise<T>, ms: number): Promise<T | string> =>
    Promise.race([what.catch((err: Error) => `failed: ${err.message}`), new Promise<string>((r) => setTimeout(() => r(`nothing within ${ms} ms`), ms))]);
  const arrived = within(
    page.evaluate(`import('/ui/live.js').then((live) => new Promise((resolve) => {
      const off = live.onValue((id, msg) => { if (id === 'site.mode' && msg.v === 'manual') { off(); resolve(msg.v); } });
    }))`),
    20_000,
  );
  await page.locator('.live-dot.up').waitFor();
  // The subscription follows the CONNACK: wait for a simulated reading, then publish ours.
  const simulated = await within(
    // The simulated site's own readings (an OCPP adapter's plan may come first: not what is asked).
    page.evaluate(
      `import('/ui/live.js').then((live) => new Promise((resolve) => { const off = live.onValue((id) => { if (!id.startsWith('site.')) return; off(); resolve(id); }); }))`,
    ),
    10_000,
  );
  t.match(simulated, /^site\./, `simulated readings arrive live under ${PREFIX}/ (first: ${simulated})`);
  await site.gateway.ingest.accept('virtual', 'site.mode', { v: 'manual' });
  t.equal(await arrived, 'manual', `a reading published under ${PREFIX}/ reached the page's live listeners`);

  const sweep = async (role: 'admin' | 'viewer') => {
    const visible = pages.filter((p) => !p.role || p.role === role);
    for (const [size, viewport] of VIEWPORTS) {
      await page.setViewportSize(viewport);
      // Drawn fresh at this size (charts are sized when built), then page by page as a person navigates.
      await page.goto(`${site.url}/#/overview`);
      await page.reload();
      for (const p of visible) {
        visiting = `${role} ${p.id} (${size})`;
        const before = problems.length;
        await page.goto(`${site.url}/#/${p.id}`);
        const heading = page.locator('main h1').first();
        await heading.waitFor({ timeout: 10_000 });
        // Let the page's requests finish (live values keep coming; the websocket is not counted).
        await page
          .waitForLoadState('networkidle', { timeout: 5000 })
          .catch((err: Error) => t.comment(`${visiting}: network not idle within 5 s (${err.message.split('\n')[0]})`));
        await page.waitForTimeout(300);
        const headingText = ((await heading.textContent()) ?? '').trim();
        const layout = (await page.evaluate('({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth, hash: location.hash })')) as {
          scroll: number;
          inner: number;
          hash: string;
        };
        t.equal(layout.hash, `#/${p.id}`, `${visiting}: stays on its page`);
        t.ok(headingText.length > 0, `${visiting}: heading "${headingText}"`);
        t.ok(layout.scroll <= layout.inner + 1, `${visiting}: no horizontal scroll (scrollWidth ${layout.scroll}, innerWidth ${layout.inner})`);
        t.same(problems.slice(before), [], `${visiting}: no console errors, uncaught exceptions or failed requests`);
        if (role === 'admin') await page.screenshot({ path: join(ARTIFACTS, `${p.id}-sweep-${size}.png`), fullPage: true });
      }
    }
  };

  await sweep('admin');
  visiting = 'logout';
  await page.getByRole('button', { name: 'Log out' }).click();
  await logIn(page, 'vera', 'vera-password-1');
  // The logout ends the session, the gateway closes the live connection, and the page may ask
  // whether its login is gone (live.js → checkSession) before it has shown the login screen.
  onlyWhoAmI('log out and in again');
  await sweep('viewer');
  t.same(problems, [], 'no problems anywhere in the sweep');
});
