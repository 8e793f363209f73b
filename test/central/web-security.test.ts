// Outpost Central's web UI, its access rules: logins (wrong password refused and audited,
// throttled), roles (a viewer cannot acknowledge, the read-only API tokens stay read-only),
// CSRF and foreign origins refused for browser writes, the audit trail for admins, users added
// with the gateway's `outpost user` CLI against central's data dir, acknowledgements that
// survive a restart. Headless Chromium for what a person sees; fetch for what a script could try.
import t from 'tap';
import { spawn } from 'node:child_process';
import { ApiClient } from '../security/harness.js';
import { chromiumSkip } from '../helpers/browser.js';
import { outpostCommand, REPO_ROOT } from '../helpers/process.js';
import { API_TOKEN, startTestCentral, type JsonBody } from './helpers.js';
import {
  ADMIN_PASSWORD,
  OPERATOR_PASSWORD,
  SimulatedGateway,
  VIEWER_PASSWORD,
  VIEWPORTS,
  alarmState,
  logInAs,
  openBrowser,
  overflows,
  screenshot,
  startWebCentral,
} from './web-helpers.js';

const GW = 'site-a';
const SECRET = 'site-a-hmac-secret-0123456789';
const RAISED = Date.now() - 600_000;

/** `outpost user add NAME --role ROLE --data-dir DIR`, the password on stdin, as an operator would run it. */
function userAdd(dataDir: string, name: string, role: string, password: string): Promise<{ code: number | null; out: string }> {
  const { command, args } = outpostCommand(['user', 'add', name, '--role', role, '--data-dir', dataDir]);
  const env = { ...process.env };
  delete env.OUTPOST_TEST_FROM_SOURCE;
  const child = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  child.stdin.end(`${password}\n`);
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out })));
}

async function json(res: Response): Promise<JsonBody> {
  const text = await res.text();
  return text ? JSON.parse(text) : undefined;
}

t.test('logins, roles, CSRF, origins and the audit trail of the web UI', { skip: chromiumSkip }, async (t) => {
  const central = await startWebCentral(t, { gateways: [{ id: GW, name: 'Tank farm', auth: { type: 'hmac', secret: SECRET } }] });
  const url = central.url;
  const site = new SimulatedGateway(url, GW, SECRET);
  await site.send([
    { id: 'plant.power', t: Date.now() - 1000, v: 12.5 },
    { id: 'alarm.tank-high', t: RAISED, v: alarmState({ active: true, message: 'Tank above 95 %', raisedAt: RAISED }) },
  ]);
  const ackPath = `/api/gateways/${GW}/alarms/tank-high/ack`;

  // ---- the page: public, CSP without inline anything ----
  const page0 = await fetch(`${url}/`);
  t.equal(page0.status, 200, 'the page is public (it holds no data)');
  t.match(page0.headers.get('content-security-policy') ?? '', /default-src 'self'/, "CSP default-src 'self'");
  t.match(page0.headers.get('content-security-policy') ?? '', /script-src 'self'(;|$)/, 'no inline scripts allowed');
  t.equal(page0.headers.get('x-frame-options'), 'DENY');
  t.equal((await fetch(`${url}/api/gateways`)).status, 401, 'the API without credentials: 401');

  // ---- a wrong password, in the browser: refused, the form stays ----
  const { page, errors } = await openBrowser(t, VIEWPORTS.desktop);
  await page.goto(`${url}/#/fleet`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong username or password' }).waitFor();
  t.equal(await page.getByRole('button', { name: 'Log out' }).count(), 0, 'not logged in');
  t.notOk(await overflows(page), 'login page: no sideways scrolling');
  await screenshot(page, 'login-desktop');
  t.equal((await new ApiClient(url).login('admin', 'not-the-password')).status, 401, 'the API says 401 too');

  // ---- throttled: five wrong guesses for one name, then 429 before the password is even checked ----
  const guesser = new ApiClient(url);
  for (let i = 0; i < 5; i++) t.equal((await guesser.login('mallory', `guess-number-${i}`)).status, 401, `guess ${i + 1}: 401`);
  const throttled = await guesser.login('mallory', 'guess-number-6');
  t.equal(throttled.status, 429, 'the sixth guess: 429');
  t.equal((await json(throttled)).error.code, 'LOGIN_THROTTLED');
  t.ok(Number(throttled.headers.get('retry-after')) > 0, 'with Retry-After');

  // ---- a viewer sees the alarm but cannot acknowledge it ----
  await logInAs(page, url, 'vera', VIEWER_PASSWORD, '#/alarms');
  const row = page.locator(`#alarm-table tr[data-gateway="${GW}"][data-alarm="tank-high"]`);
  await row.waitFor();
  t.ok(await row.getByRole('button', { name: /Acknowledge/ }).isDisabled(), 'the viewer: Acknowledge is disabled');
  t.match(await page.locator('#ack-note').textContent(), /viewer.*cannot acknowledge/, 'and says why');
  const viewer = new ApiClient(url);
  t.equal((await viewer.login('vera', VIEWER_PASSWORD)).status, 200);
  const viewerAck = await viewer.request('POST', ackPath, {});
  t.equal(viewerAck.status, 403, 'the API refuses a viewer: 403');
  t.equal((await json(viewerAck)).error.code, 'FORBIDDEN');

  // ---- CSRF and foreign origins: an operator's session alone does not make a write ----
  const operator = new ApiClient(url);
  const login = await operator.login('otto', OPERATOR_PASSWORD);
  t.equal(login.status, 200, 'the operator logs in');
  t.match(login.headers.get('set-cookie') ?? '', /HttpOnly; SameSite=Strict/, 'the session cookie: HttpOnly, SameSite=Strict');
  // Cookies ignore ports: with the gateway's name a gateway dashboard on the same host would log central out.
  t.match(login.headers.get('set-cookie') ?? '', /^outpost_central_session=/, "central's own cookie name, not the gateway's outpost_session");
  const noToken = await operator.request('POST', ackPath, {}, { 'x-csrf-token': '' });
  t.equal(noToken.status, 403, 'no CSRF token: 403');
  t.equal((await json(noToken)).error.code, 'CSRF_FAILED');
  const wrongToken = await operator.request('POST', ackPath, {}, { 'x-csrf-token': 'x'.repeat(43) });
  t.equal((await json(wrongToken)).error.code, 'CSRF_FAILED', 'a wrong CSRF token: CSRF_FAILED');
  const foreign = await operator.request('POST', ackPath, {}, { 'x-csrf-token': operator.csrf!, origin: 'http://evil.example' });
  t.equal(foreign.status, 403, 'the right token from a foreign Origin: 403');
  t.equal((await json(foreign)).error.code, 'CSRF_FAILED');
  const crossSite = await operator.request('POST', ackPath, {}, { 'x-csrf-token': operator.csrf!, 'sec-fetch-site': 'cross-site' });
  t.equal((await json(crossSite)).error.code, 'CSRF_FAILED', 'Sec-Fetch-Site: cross-site: refused');
  const foreignLogin = await fetch(`${url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: 'http://evil.example' },
    body: JSON.stringify({ username: 'otto', password: OPERATOR_PASSWORD }),
  });
  t.equal(foreignLogin.status, 403, 'a login posted from a foreign Origin: 403');
  t.equal((await central.get('/api/alarms')).body.items[0].acknowledged, false, 'none of those acknowledged the alarm');

  // ---- the read-only API tokens of http.tokens stay read-only ----
  const bearer = { authorization: `Bearer ${API_TOKEN}` };
  t.equal((await fetch(`${url}/api/gateways`, { headers: bearer })).status, 200, 'the API token reads the fleet');
  const tokenAck = await fetch(`${url}${ackPath}`, { method: 'POST', headers: { ...bearer, 'content-type': 'application/json' }, body: '{}' });
  t.equal(tokenAck.status, 403, 'the API token cannot acknowledge');
  t.equal((await fetch(`${url}/api/audit`, { headers: bearer })).status, 403, 'nor read the audit trail');
  t.equal((await fetch(`${url}/api/users`, { headers: bearer })).status, 403, 'nor list users');

  // ---- the operator acknowledges, properly ----
  const ack = await operator.request('POST', ackPath, {});
  t.equal(ack.status, 200, 'the operator, with the token and no foreign origin: 200');
  const acked = await json(ack);
  t.same([acked.acknowledged, acked.ack.by, acked.ack.where, acked.forwarded], [true, 'user otto', 'central', true], 'acknowledged at central by user otto');
  // And sent to the site as an alarm.ack command (the gateway applies it: test/sync/alarm-ack-downlink.test.ts).
  const forwarded = await json(await operator.request('GET', `/api/commands/${acked.command}`));
  t.match(forwarded, { type: 'alarm.ack', state: 'queued', body: { id: 'tank-high', by: 'user otto' } }, 'queued for the site as an alarm.ack command');
  const again = await operator.request('POST', ackPath, {});
  t.equal((await json(again)).error.code, 'ALARM_ACKNOWLEDGED', 'twice: ALARM_ACKNOWLEDGED');
  t.equal((await json(await operator.request('POST', `/api/gateways/${GW}/alarms/nothing/ack`, {}))).error.code, 'ALARM_UNKNOWN', 'an unknown alarm: 404');

  // ---- the admin adds a user (API) and reads the trail (API and Audit page) ----
  const admin = new ApiClient(url);
  t.equal((await admin.login('admin', ADMIN_PASSWORD)).status, 200);
  t.equal((await admin.request('POST', '/api/users', { username: 'dora', role: 'viewer', password: 'dora-password-1' })).status, 201, 'user added');
  await central.web!.audit.flush();
  const trail = (await json(await admin.request('GET', '/api/audit?limit=500'))).items as Array<Record<string, JsonBody>>;
  const find = (action: string, outcome: string, name: string) => trail.find((e) => e.action === action && e.outcome === outcome && e.actor.name === name);
  t.ok(find('login', 'refused', 'admin'), 'the wrong password is in the trail (login refused)');
  t.equal(find('login', 'refused', 'admin')?.error?.code, 'NOT_AUTHENTICATED');
  t.ok(find('login', 'ok', 'otto'), 'the operator’s login is in the trail');
  t.equal(trail.filter((e) => e.action === 'login' && e.actor.name === 'mallory').length, 5, 'the five guesses, not the throttled sixth');
  t.ok(
    central.logs.some((l) => l.msg === 'request refused: role too low' && l.user === 'vera' && l.path === ackPath),
    "the viewer's acknowledgement was refused by the guard, before the route (logged with who and what)",
  );
  t.equal(find('alarm.ack', 'ok', 'otto')?.target, `${GW}/tank-high`, "the operator's acknowledgement, naming gateway and alarm");
  t.equal(find('user.add', 'ok', 'admin')?.target, 'dora', 'the added user');
  t.equal(find('login', 'ok', 'otto')?.address, '127.0.0.1', 'with the client address');

  await logInAs(page, url, 'admin', ADMIN_PASSWORD, '#/audit');
  await page.locator('#audit-table tbody tr').first().waitFor();
  const shownRows = await page.locator('#audit-table tbody tr').count();
  // The admin's own browser login is the newest entry now: the trail as it stands.
  const now = (await json(await admin.request('GET', '/api/audit?limit=100'))).items as Array<Record<string, JsonBody>>;
  t.equal(shownRows, now.length, `the Audit page lists what the API answers (${now.length} entries)`);
  t.match(await page.locator('#audit-table tbody tr').first().textContent(), /user admin.*Login/, 'newest first: the admin’s login');
  t.ok((await page.locator('#audit-table tbody').textContent())?.includes('Alarm acknowledged'), 'the acknowledgement is on the Audit page');
  t.notOk(await overflows(page), 'audit page: no sideways scrolling');
  await screenshot(page, 'audit-desktop');
  // The Users page (the gateway dashboard's own module): the users the API lists.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
  await page.locator('#users tbody tr').first().waitFor();
  const users = (await json(await admin.request('GET', '/api/users'))).items as Array<{ username: string }>;
  t.same(
    await page.locator('#users tbody tr th').allInnerTexts(),
    users.map((u) => u.username),
    `the Users page lists the ${users.length} users of the API`,
  );
  t.notOk(await overflows(page), 'users page: no sideways scrolling');
  await screenshot(page, 'users-desktop');
  const vieweraudit = await viewer.request('GET', '/api/audit');
  t.equal(vieweraudit.status, 403, 'a viewer cannot read the trail');

  // ---- a user added with the gateway's CLI against central's data dir, while central runs ----
  const added = await userAdd(central.dataDir, 'carol', 'operator', 'carol-password-1');
  t.equal(added.code, 0, `outpost user add … --data-dir <central's dataDir> (${added.out.trim()})`);
  const carol = await new ApiClient(url).login('carol', 'carol-password-1');
  t.equal(carol.status, 200, 'the new user logs in to the running central');
  t.equal((await json(carol)).role, 'operator');

  // ---- the phone: the login page fits ----
  const phone = await openBrowser(t, VIEWPORTS.phone);
  await phone.page.goto(`${url}/`);
  await phone.page.getByRole('button', { name: 'Log in' }).waitFor();
  t.notOk(await overflows(phone.page), 'login page on a phone: no sideways scrolling');
  await screenshot(phone.page, 'login-phone');
  t.same([...errors, ...phone.errors], [], 'no script errors, no CSP violations');

  // ---- the acknowledgement survives a restart ----
  await central.stop();
  const restarted = await startTestCentral(t, { gateways: [{ id: GW, auth: { type: 'hmac', secret: SECRET } }] }, { dataDir: central.dataDir });
  const after = (await restarted.get('/api/alarms')).body.items[0];
  t.same([after.id, after.acknowledged, after.ack?.by], ['tank-high', true, 'user otto'], 'after a restart: still acknowledged by user otto');
  t.notOk(restarted.web!.firstAdmin.created, 'and no second first admin');
});
