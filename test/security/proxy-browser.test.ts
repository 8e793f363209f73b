/**
 * Issue 18 in a real browser: Chromium reaching the gateway through nginx by a host name
 * (not localhost), as a remote user of a same-box reverse proxy does. On the code before,
 * a plain-HTTP page was admin without logging in (Chromium sends neither Origin nor
 * Sec-Fetch-Site on such same-origin GETs, and auth.loopback defaulted to admin), and no
 * browser could log in behind a TLS-terminating proxy (X-Forwarded-Proto was ignored).
 */
import t from 'tap';
import { ADMIN_PASSWORD, selfSignedCert, startSecureSite } from './harness.js';
import { chromiumSkip, launchChromium } from '../helpers/browser.js';
import { readmeNginx, startNginx } from '../helpers/reverse-proxy.js';

const SITE = { adapters: [{ id: 'site', type: 'simulated', interval: 500 }] };
const portOf = (url: string): number => Number(new URL(url).port);
// The proxy gets a real name: Chromium treats localhost specially (it counts as secure).
const HOST_RULES = '--host-resolver-rules=MAP gateway.test 127.0.0.1';

t.test('a remote browser over plain HTTP through nginx must log in', { skip: chromiumSkip }, async (t) => {
  const site = await startSecureSite(t, SITE);
  const nginx = await startNginx(t, `server { listen 443 ssl; location / { proxy_pass http://127.0.0.1:${portOf(site.url)}; } }`, { tls: false });
  const context = await launchChromium(t, { args: [HOST_RULES] });
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`http://gateway.test:${nginx.port}/`);
  await page.getByLabel('Username').waitFor();
  t.pass('the login form is shown, not the dashboard');
  const me = await page.evaluate(async () => (await fetch('/api/auth/me')).status);
  t.equal(me, 401, 'the page has no role without a login');
  const users = await page.evaluate(async () => (await fetch('/api/users')).status);
  t.equal(users, 401, 'and cannot list users');
});

t.test('behind the README nginx snippet with TLS: log in, Secure cookie, live values', { skip: chromiumSkip }, async (t) => {
  const cert = await selfSignedCert(t);
  const site = await startSecureSite(t, { ...SITE, http: { trustedProxies: ['127.0.0.1'] } });
  const nginx = await readmeNginx(t, portOf(site.url), cert);
  const context = await launchChromium(t, { args: [HOST_RULES], ignoreHTTPSErrors: true });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(`https://gateway.test:${nginx.port}/`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  t.pass('the browser logged in through the TLS proxy');
  const cookie = (await context.cookies()).find((c) => c.name === 'outpost_session');
  t.ok(cookie?.secure, 'the session cookie is Secure');
  t.equal(cookie?.httpOnly, true);
  await page.locator('.live-dot.up').waitFor();
  t.pass('the live feed (MQTT over wss through nginx) is up');
  t.same(problems, [], 'no page errors');
});
