import t from 'tap';
import type { Test } from 'tap';
import { readFileSync, statSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { ApiClient, ADMIN_PASSWORD, selfSignedCert, startSecureSite } from './harness.js';

const SITE = {
  datapoints: [{ id: 'site.mode', kind: 'actuator', type: 'string', allowed: ['auto', 'off'] }],
  adapters: [{ id: 'site', type: 'simulated', interval: 60_000 }],
  auth: { loopback: 'none' },
  http: { maxBodyBytes: 4096 },
};

async function withUsers(t: Test) {
  const site = await startSecureSite(t, SITE);
  const admin = new ApiClient(site.url);
  t.equal((await admin.login('admin', ADMIN_PASSWORD)).status, 200, 'the first admin from config logs in');
  for (const [username, role] of [
    ['vera', 'viewer'],
    ['otto', 'operator'],
  ] as const) {
    const res = await admin.request('POST', '/api/users', { username, role, password: `${username}-password-1` });
    t.equal(res.status, 201, `admin adds ${role} ${username}`);
  }
  const viewer = new ApiClient(site.url);
  await viewer.login('vera', 'vera-password-1');
  const operator = new ApiClient(site.url);
  await operator.login('otto', 'otto-password-1');
  return { site, admin, viewer, operator };
}

t.test('unauthenticated requests are refused; health and the dashboard shell are public', async (t) => {
  const site = await startSecureSite(t, SITE);
  for (const [method, path] of [
    ['GET', '/api/datapoints'],
    ['GET', '/api/datapoints/site.grid.power/values'],
    ['GET', '/api/adapters'],
    ['GET', '/metrics'],
    ['GET', '/api/users'],
    ['POST', '/api/datapoints/site.hvac.setpoint/setpoint'],
    ['POST', '/api/users'],
  ] as const) {
    const res = await fetch(`${site.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: method === 'POST' ? '{"v":20}' : undefined,
    });
    t.equal(res.status, 401, `${method} ${path} without login`);
    t.match(await res.json(), { error: { code: 'NOT_AUTHENTICATED' } });
  }
  t.equal(site.gateway.store.latest('site.hvac.setpoint')?.v, 21, 'the refused setpoint changed nothing');
  t.equal((await fetch(`${site.url}/healthz`)).status, 200);
  const shell = await fetch(`${site.url}/`);
  t.equal(shell.status, 200);
  t.match(await shell.text(), /<title>Outpost/);
  t.equal((await fetch(`${site.url}/api/datapoints`, { headers: { authorization: 'Bearer nope' } })).status, 401, 'a wrong bearer token');
  t.equal((await fetch(`${site.url}/api/datapoints`, { headers: { authorization: 'Basic YWRtaW46eA==' } })).status, 401, 'another scheme');
  t.equal((await fetch(`${site.url}/api/datapoints`, { headers: { cookie: 'outpost_session=forged' } })).status, 401, 'a forged session cookie');
});

t.test('login sets a hardened session cookie; logout ends it', async (t) => {
  const site = await startSecureSite(t, SITE);
  const wrong = await fetch(`${site.url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: 'wrong-password' }),
  });
  t.equal(wrong.status, 401);
  t.equal(wrong.headers.get('set-cookie'), null);
  const unknown = await fetch(`${site.url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'ghost', password: 'whatever-pw' }),
  });
  t.same(
    await unknown.json(),
    await (
      await fetch(`${site.url}/api/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'admin', password: 'wrong-again' }),
      })
    ).json(),
    'unknown user and wrong password answer alike',
  );
  const form = await fetch(`${site.url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'username=admin&password=' + ADMIN_PASSWORD,
  });
  t.equal(form.status, 400, 'a form post (what a cross-site page can send without CORS) is not a login');

  const c = new ApiClient(site.url);
  const res = await c.login('admin', ADMIN_PASSWORD);
  const cookie = res.headers.get('set-cookie')!;
  t.match(cookie, /^outpost_session=[A-Za-z0-9_-]{40,}; Path=\/; HttpOnly; SameSite=Strict$/, 'HttpOnly, SameSite=Strict, no Secure over plain HTTP');
  t.match(await res.json(), { username: 'admin', role: 'admin', csrf: /^[A-Za-z0-9_-]{40,}$/ });
  const me = await c.request('GET', '/api/auth/me');
  t.match(await me.json(), { username: 'admin', role: 'admin', kind: 'session', csrf: c.csrf });
  t.equal((await c.request('GET', '/api/datapoints')).status, 200);
  t.equal((await c.request('POST', '/api/auth/logout')).status, 200);
  t.equal((await c.request('GET', '/api/datapoints')).status, 401, 'the session ended on logout');
});

t.test('roles: viewer reads, operator writes setpoints, admin manages users', async (t) => {
  const { site, admin, viewer, operator } = await withUsers(t);

  t.equal((await viewer.request('GET', '/api/datapoints')).status, 200, 'viewer reads');
  const denied = await viewer.request('POST', '/api/datapoints/site.hvac.setpoint/setpoint', { v: 22 });
  t.equal(denied.status, 403, 'viewer cannot write setpoints');
  t.match(await denied.json(), { error: { code: 'FORBIDDEN', message: /needs the operator role/ } });
  t.equal(site.gateway.store.latest('site.hvac.setpoint')?.v, 21);

  const ok = await operator.request('POST', '/api/datapoints/site.hvac.setpoint/setpoint', { v: 22 });
  t.equal(ok.status, 200, 'operator writes setpoints');
  t.equal(site.gateway.store.latest('site.hvac.setpoint')?.v, 22);
  const invalid = await operator.request('POST', '/api/datapoints/site.hvac.setpoint/setpoint', { v: 99 });
  t.match(await invalid.json(), { error: { code: 'SETPOINT_OUT_OF_RANGE' } }, 'validation still applies after authorization');

  for (const c of [viewer, operator]) {
    t.equal((await c.request('GET', '/api/users')).status, 403, 'only admins list users');
    t.equal((await c.request('POST', '/api/users', { username: 'mallory', role: 'admin', password: 'mallory-password' })).status, 403, 'only admins add users');
    t.equal((await c.request('POST', '/api/tokens', { name: 'x', role: 'admin' })).status, 403, 'only admins make tokens');
    t.equal((await c.request('GET', '/api/config')).status, 403, 'admin paths are closed to others');
    // Express routes ignore case and decode %-escapes: the role check must too.
    for (const path of ['/API/USERS', '/Api/Users/', '/api/%75sers', '/API/Tokens']) {
      const body = path.toLowerCase().includes('token') ? { name: 'x', role: 'admin' } : { username: 'mallory', role: 'admin', password: 'mallory-password' };
      t.equal((await c.request('POST', path, body)).status, 403, `POST ${path} is refused too`);
      t.equal((await c.request('GET', path)).status, 403, `GET ${path} is refused too`);
    }
  }
  const users = (await (await admin.request('GET', '/api/users')).json()) as { items: Array<Record<string, unknown>> };
  t.same(
    users.items.map((u) => [u.username, u.role]),
    [
      ['admin', 'admin'],
      ['otto', 'operator'],
      ['vera', 'viewer'],
    ],
  );
  t.notOk(JSON.stringify(users).includes('scrypt'), 'no password hash in the API');

  const dup = await admin.request('POST', '/api/users', { username: 'vera', role: 'viewer', password: 'another-password' });
  t.equal(dup.status, 409);
  const weak = await admin.request('POST', '/api/users', { username: 'weak', role: 'viewer', password: 'short' });
  t.match(await weak.json(), { error: { code: 'BAD_REQUEST', message: /at least 10/ } });
  const badRole = await admin.request('POST', '/api/users', { username: 'x', role: 'root', password: 'long-enough-pw' });
  t.match(await badRole.json(), { error: { code: 'BAD_REQUEST', message: /role must be one of/ } });
  const lastAdmin = await admin.request('PATCH', '/api/users/admin', { role: 'viewer' });
  t.equal(lastAdmin.status, 409, 'the last admin cannot be demoted');
  t.equal((await admin.request('DELETE', '/api/users/admin')).status, 409, 'nor remove itself');

  // Promotion applies at once: vera's session ends, her next login has the new role.
  t.equal((await admin.request('PATCH', '/api/users/vera', { role: 'operator' })).status, 200);
  t.equal((await viewer.request('GET', '/api/datapoints')).status, 401, 'a changed user logs in again');
  await viewer.login('vera', 'vera-password-1');
  t.equal((await viewer.request('POST', '/api/datapoints/site.hvac.setpoint/setpoint', { v: 23 })).status, 200);
  t.equal((await admin.request('DELETE', '/api/users/vera')).status, 200);
  t.equal((await viewer.request('GET', '/api/datapoints')).status, 401, 'a removed user is out at once');
  t.equal((await viewer.login('vera', 'vera-password-1')).status, 401);
});

t.test('CSRF: cookie-authenticated writes need the token and the same origin', async (t) => {
  const { site, operator } = await withUsers(t);
  const path = '/api/datapoints/site.hvac.setpoint/setpoint';
  const noToken = await operator.request('POST', path, { v: 24 }, { 'x-csrf-token': '' });
  t.equal(noToken.status, 403);
  t.match(await noToken.json(), { error: { code: 'CSRF_FAILED' } });
  t.equal((await operator.request('POST', path, { v: 24 }, { 'x-csrf-token': 'A'.repeat(43) })).status, 403, 'a wrong token');
  const foreign = await operator.request('POST', path, { v: 24 }, { origin: 'https://evil.example' });
  t.match(await foreign.json(), { error: { code: 'CSRF_FAILED', message: /another site/ } });
  const crossSite = await operator.request('POST', path, { v: 24 }, { 'sec-fetch-site': 'cross-site' });
  t.equal(crossSite.status, 403, 'Fetch Metadata says cross-site');
  t.equal(site.gateway.store.latest('site.hvac.setpoint')?.v, 21, 'nothing was written');
  const sameOrigin = await operator.request('POST', path, { v: 24 }, { origin: site.url, 'sec-fetch-site': 'same-origin' });
  t.equal(sameOrigin.status, 200, 'the dashboard itself passes');
});

t.test('API tokens for machines: role-bound, shown once, revocable', async (t) => {
  const { site, admin } = await withUsers(t);
  const made = await admin.request('POST', '/api/tokens', { name: 'scada', role: 'viewer' });
  t.equal(made.status, 201);
  const { token, id } = (await made.json()) as { token: string; id: string };
  t.match(token, /^opt_[a-z0-9]{8}_/);
  const bearer = { authorization: `Bearer ${token}` };
  t.equal((await fetch(`${site.url}/api/datapoints`, { headers: bearer })).status, 200, 'the token reads');
  const write = await fetch(`${site.url}/api/datapoints/site.hvac.setpoint/setpoint`, {
    method: 'POST',
    headers: { ...bearer, 'content-type': 'application/json' },
    body: '{"v":20}',
  });
  t.equal(write.status, 403, 'a viewer token cannot write');
  const listed = await (await admin.request('GET', '/api/tokens')).text();
  t.notOk(listed.includes(token) || listed.includes('sha256:'), 'the list shows neither the token nor its hash');
  const file = readFileSync(site.security.users.path, 'utf8');
  t.notOk(file.includes(token), 'only the hash is stored');
  t.equal(statSync(site.security.users.path).mode & 0o777, 0o600, 'the user file is private');
  t.equal((await admin.request('DELETE', `/api/tokens/${id}`)).status, 200);
  t.equal((await fetch(`${site.url}/api/datapoints`, { headers: bearer })).status, 401, 'a revoked token is refused');

  const op = (await (await admin.request('POST', '/api/tokens', { name: 'ems', role: 'operator' })).json()) as { token: string };
  const opWrite = await fetch(`${site.url}/api/datapoints/site.hvac.setpoint/setpoint`, {
    method: 'POST',
    headers: { authorization: `Bearer ${op.token}`, 'content-type': 'application/json' },
    body: '{"v":20}',
  });
  t.equal(opWrite.status, 200, 'an operator token writes without CSRF (no cookie, no ambient authority)');
});

t.test('brute-force logins are throttled before the password is checked', async (t) => {
  const site = await startSecureSite(t, { ...SITE, auth: { loopback: 'none', login: { maxFailures: 3, maxFailuresPerAddress: 6, windowSeconds: 600 } } });
  const login = (username: string, password: string) =>
    fetch(`${site.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
  for (let i = 0; i < 3; i++) t.equal((await login('admin', `guess-${i}-xxxx`)).status, 401, `guess ${i + 1}`);
  const throttled = await login('admin', `guess-4-xxxx`);
  t.equal(throttled.status, 429);
  t.ok(Number(throttled.headers.get('retry-after')) > 0, 'Retry-After is given');
  t.match(await throttled.json(), { error: { code: 'LOGIN_THROTTLED', retryable: true } });
  t.equal((await login('admin', ADMIN_PASSWORD)).status, 429, 'even the right password waits: guessing gains nothing');
  // Another name from the same address still has its own budget, up to the address limit.
  for (let i = 0; i < 3; i++) t.equal((await login('someone', `guess-${i}-yyyy`)).status, 401);
  t.equal((await login('third', `guess-zzzz`)).status, 429, 'the address limit covers all usernames');
  const failures = site.httpLogs.filter((l) => l.msg === 'login failed');
  t.equal(failures.length, 6, 'each failed attempt is logged (with the name, never the password)');
  t.notOk(JSON.stringify(site.httpLogs).includes('guess-'), 'no attempted password in the logs');
});

t.test('parallel logins: thirty wrong passwords and the right one at once get the same budget as one by one', async (t) => {
  const site = await startSecureSite(t, { ...SITE, auth: { loopback: 'none', login: { maxFailures: 3, maxFailuresPerAddress: 20, windowSeconds: 600 } } });
  const login = (password: string) =>
    fetch(`${site.url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password }),
    });
  const answers = await Promise.all([...Array.from({ length: 30 }, (_, i) => login(`parallel-guess-${i}`)), login(ADMIN_PASSWORD)]);
  const statuses = answers.map((r) => r.status);
  t.equal(statuses[30], 429, 'the right password, sent with the guesses, waits');
  t.equal(statuses.filter((s) => s === 401).length, 3, 'three passwords were checked (maxFailures 3)');
  t.equal(statuses.filter((s) => s === 429).length, 28, 'the others refused before hashing, with Retry-After');
  t.ok(answers.filter((r) => r.status === 429).every((r) => Number(r.headers.get('retry-after')) > 0));
});

t.test('password changes are throttled like logins', async (t) => {
  const site = await startSecureSite(t, { ...SITE, auth: { login: { maxFailures: 3, maxFailuresPerAddress: 20, windowSeconds: 600 } } });
  const admin = new ApiClient(site.url);
  t.equal((await admin.login('admin', ADMIN_PASSWORD)).status, 200);
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++)
    statuses.push((await admin.request('POST', '/api/auth/password', { current: `guess-${i}-xxxx`, password: 'new-password-123' })).status);
  t.same(statuses, [401, 401, 401, 429, 429], 'a stolen session cannot guess the current password');
  t.equal(
    (await admin.request('POST', '/api/auth/password', { current: ADMIN_PASSWORD, password: 'new-password-123' })).status,
    429,
    'even the right one waits',
  );
  t.ok(site.httpLogs.filter((l) => l.msg === 'password change: wrong current password').length === 3, 'each wrong attempt is logged');
});

t.test('oversized bodies are refused with 413; security headers are set', async (t) => {
  const { admin } = await withUsers(t);
  const big = await admin.request('POST', '/api/datapoints/site.mode/setpoint', JSON.stringify({ v: 'auto', pad: 'x'.repeat(10_000) }));
  t.equal(big.status, 413);
  t.match(await big.json(), { error: { code: 'BODY_TOO_LARGE' } });
  const res = await admin.request('GET', '/api/datapoints');
  t.match(res.headers.get('content-security-policy'), /default-src 'self'; script-src 'self'/);
  t.equal(res.headers.get('x-content-type-options'), 'nosniff');
  t.equal(res.headers.get('x-frame-options'), 'DENY');
  t.equal(res.headers.get('cache-control'), 'no-store');
  t.equal(res.headers.get('x-powered-by'), null);
  t.equal(res.headers.get('strict-transport-security'), null, 'no HSTS over plain HTTP');
});

t.test('no secrets in logs or API responses', async (t) => {
  const { site, admin, operator } = await withUsers(t);
  const tokenRes = (await (await admin.request('POST', '/api/tokens', { name: 'probe', role: 'viewer' })).json()) as { token: string };
  await fetch(`${site.url}/api/datapoints`, { headers: { authorization: `Bearer ${tokenRes.token}` } });
  await fetch(`${site.url}/api/datapoints`, { headers: { authorization: `Bearer ${tokenRes.token}x` } });
  await operator.request('POST', '/api/auth/password', { current: 'otto-password-1', password: 'otto-password-2' });
  const everything = JSON.stringify([site.logs, site.httpLogs]);
  const secrets = [ADMIN_PASSWORD, 'vera-password-1', 'otto-password-1', 'otto-password-2', tokenRes.token, admin.cookie!.split('=')[1]!, admin.csrf!];
  for (const s of secrets) t.notOk(everything.includes(s), `secret ${s.slice(0, 4)}… is not in the logs`);
  t.notOk(everything.includes('scrypt$'), 'no password hash in the logs');
  const apis = await Promise.all(
    ['/api/users', '/api/tokens', '/api/datapoints', '/api/adapters', '/healthz'].map(async (p) => (await admin.request('GET', p)).text()),
  );
  for (const s of [...secrets.slice(0, 5), 'scrypt$', 'sha256:']) t.notOk(apis.join('').includes(s), `no ${s.slice(0, 7)}… in API answers`);
});

t.test('own password change ends the other sessions', async (t) => {
  const { site, operator } = await withUsers(t);
  const other = new ApiClient(site.url);
  await other.login('otto', 'otto-password-1');
  const wrong = await operator.request('POST', '/api/auth/password', { current: 'nope-nope-nope', password: 'otto-password-2' });
  t.equal(wrong.status, 401);
  const changed = await operator.request('POST', '/api/auth/password', { current: 'otto-password-1', password: 'otto-password-2' });
  t.equal(changed.status, 200);
  const setCookie = changed.headers.get('set-cookie');
  t.ok(setCookie, 'a fresh session for the one who changed it');
  t.equal((await other.request('GET', '/api/datapoints')).status, 401, 'the other session ended');
  t.equal((await new ApiClient(site.url).login('otto', 'otto-password-2')).status, 200);
});

t.test('loopback trust is for tools on this host, never for browsers', async (t) => {
  const site = await startSecureSite(t, { ...SITE, auth: { loopback: 'viewer' } });
  const tool = await fetch(`${site.url}/api/datapoints`);
  t.equal(tool.status, 200, 'curl on the box reads as a viewer');
  const write = await fetch(`${site.url}/api/datapoints/site.mode/setpoint`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"v":"off"}',
  });
  t.equal(write.status, 403, 'with the viewer role only');
  t.equal((await fetch(`${site.url}/api/datapoints`, { headers: { 'sec-fetch-site': 'same-origin' } })).status, 401, 'a browser on this host logs in');
  t.equal((await fetch(`${site.url}/api/datapoints`, { headers: { origin: 'http://evil.example' } })).status, 401, 'a page elsewhere gets nothing');
  for (const header of ['x-forwarded-for', 'forwarded', 'x-real-ip']) {
    t.equal(
      (await fetch(`${site.url}/api/datapoints`, { headers: { [header]: header === 'forwarded' ? 'for=203.0.113.7' : '203.0.113.7' } })).status,
      401,
      `a request a local proxy forwarded (${header}) is not trusted as loopback`,
    );
  }
  // fetch() may not set Host; a plain request can, as a DNS-rebinding page's browser would.
  const rebound = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${site.url}/api/datapoints`, { headers: { host: 'evil.example:8080' } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(rebound, 401, 'DNS rebinding (foreign Host) gets nothing');
});

t.test('HTTPS from configured files: Secure cookie and HSTS', async (t) => {
  const files = await selfSignedCert(t);
  const site = await startSecureSite(t, SITE, { tls: { certFile: files.certFile, keyFile: files.keyFile } });
  const call = (method: string, path: string, body?: string) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
      const req = httpsRequest(`${site.url}${path}`, { method, ca: files.cert, headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
      });
      req.on('error', reject);
      req.end(body);
    });
  const res = await call('POST', '/api/auth/login', JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }));
  t.equal(res.status, 200);
  t.match(String(res.headers['set-cookie']), /HttpOnly; SameSite=Strict; Secure/);
  t.match(res.headers['strict-transport-security'], /max-age=\d+/);
});

t.test('delegated paths check their own credentials; admin and API paths never are delegated', async (t) => {
  const site = await startSecureSite(t, { ...SITE, auth: { loopback: 'none', delegatedPaths: ['/upload', '/api/x', '/red'], adminPaths: ['/red'] } });
  t.equal(site.security.requirement('POST', '/upload/siemens'), 'delegated', 'the upload route authenticates by its own token');
  t.equal(site.security.requirement('POST', '/uploads'), 'operator', 'prefixes match whole path levels');
  t.equal(site.security.requirement('POST', '/api/x'), 'operator', 'never under /api/');
  t.equal(site.security.requirement('GET', '/red/flows'), 'admin', 'never an admin path');
  const res = await fetch(`${site.url}/upload/siemens`, { method: 'POST', headers: { authorization: 'Bearer adapter-own-token' }, body: 'x' });
  t.equal(res.status, 404, 'passed on to the routes (none mounted here) instead of 401');
});

t.test("reading a charger's configuration needs the operator role", async (t) => {
  const site = await startSecureSite(t, { ...SITE, adapters: [...SITE.adapters, { id: 'ev', type: 'ocpp', chargers: [{ id: 'CPX', securityProfile: 0 }] }] });
  const admin = new ApiClient(site.url);
  await admin.login('admin', ADMIN_PASSWORD);
  for (const [username, role] of [
    ['vera', 'viewer'],
    ['otto', 'operator'],
  ] as const) {
    t.equal((await admin.request('POST', '/api/users', { username, role, password: `${username}-password-1` })).status, 201);
  }
  const viewer = new ApiClient(site.url);
  await viewer.login('vera', 'vera-password-1');
  const operator = new ApiClient(site.url);
  await operator.login('otto', 'otto-password-1');
  const refused = await viewer.request('GET', '/api/charging/chargers/CPX/configuration');
  t.equal(refused.status, 403, 'a viewer may not read it');
  t.match(await refused.json(), { error: { code: 'FORBIDDEN', message: /operator/ } });
  const asked = await operator.request('GET', '/api/charging/chargers/CPX/configuration');
  t.not(asked.status, 403, `an operator may (the offline charger answers ${asked.status})`);
});
