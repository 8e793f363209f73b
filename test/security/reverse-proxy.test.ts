/**
 * Issue 18 as an attacker plays it: the gateway behind real proxies on the same box (socat,
 * nginx, Caddy), requests from several "remote" source addresses (127.0.0.2, 127.0.0.3 …),
 * foreign Origin and Host, websocket upgrades without a session. Each attack in the issue
 * succeeded on the code before it (auth.loopback defaulted to admin; forwarding headers were
 * never believed; every client behind a proxy shared one throttle).
 */
import t from 'tap';
import type { Test } from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import WebSocket from 'ws';
import { ADMIN_PASSWORD, selfSignedCert, startSecureSite, type SecureSite } from './harness.js';
import { spawnOutpost } from '../helpers/process.js';
import { localApi } from '../helpers/local-api.js';
import { rawRequest, readmeCaddy, readmeNginx, startNginx, startSocat, type RunningProxy } from '../helpers/reverse-proxy.js';
import { tempDir } from '../helpers/teardown.js';

const json = { 'content-type': 'application/json' };
const SITE = {
  datapoints: [{ id: 'site.mode', kind: 'actuator', type: 'string', allowed: ['auto', 'off'] }],
  adapters: [{ id: 'site', type: 'simulated', interval: 60_000 }],
};
const portOf = (url: string): number => Number(new URL(url).port);
/** The gateway's log records (the harness's own server logs apart when it composes one). */
const logsOf = (site: SecureSite): Array<Record<string, unknown>> => (site.httpLogs === site.logs ? site.logs : site.logs.concat(site.httpLogs));

/** What the issue did as a stranger through a proxy: each must now be refused without credentials. */
async function strangerAttacks(t: Test, base: string, headers: Record<string, string> = {}, ca?: string): Promise<void> {
  const attacks: Array<[string, string, string | undefined]> = [
    ['POST', '/api/users', JSON.stringify({ username: 'mallory', role: 'admin', password: 'mallory-password-1' })],
    ['GET', '/api/admin/backup', undefined],
    ['POST', '/api/datapoints/site.hvac.setpoint/setpoint', '{"v": 30}'],
    ['POST', '/flows/flows', JSON.stringify([{ id: 'x1', type: 'exec', command: 'touch /tmp/pwned' }])],
    ['GET', '/api/users', undefined],
  ];
  for (const [method, path, body] of attacks) {
    const res = await rawRequest(`${base}${path}`, { method, body, headers: { ...json, ...headers }, ca });
    t.equal(res.status, 401, `${method} ${path} through the proxy without credentials`);
  }
}

t.test('a TCP forwarder (socat) in front of the real process: strangers get nothing, even with Host: 127.0.0.1', async (t) => {
  const dir = await tempDir(t, 'outpost-socat-');
  const file = join(dir, 'outpost.yaml');
  await writeFile(
    file,
    [
      'gateway: { id: proxied }',
      `dataDir: ${JSON.stringify(join(dir, 'data'))}`,
      'log: { level: warn }',
      'broker: { mqtt: { host: 127.0.0.1, port: 0 } }',
      'http: { host: 127.0.0.1, port: 0 }',
      'auth: { admin: { username: admin, password: admin-secret-pw-1 } }',
      `flows: { enabled: true, credentialSecret: ${JSON.stringify('a-test-secret-of-32-characters!!')} }`,
      'adapters: [{ id: site, type: simulated, interval: 60000 }]',
      '',
    ].join('\n'),
  );
  const gw = spawnOutpost(['start', '-c', file]);
  t.teardown(() => gw.child.kill('SIGKILL'));
  const url = await gw.ready;
  const forwarder = await startSocat(t, portOf(url));
  await strangerAttacks(t, forwarder.url, { host: `127.0.0.1:${portOf(url)}` });
  await strangerAttacks(t, forwarder.url, { host: 'localhost' });
  const api = localApi(join(dir, 'data'));
  t.equal((await api('/api/users')).status, 200, 'the local tool with the token from the data dir is admin');
  const users = (await (await api('/api/users')).json()) as { items: Array<{ username: string }> };
  t.same(
    users.items.map((u) => u.username),
    ['admin'],
    'no user was created by the stranger',
  );
  t.equal(((await (await api('/api/datapoints/site.hvac.setpoint')).json()) as { latest: { v: number } }).latest.v, 21, 'the setpoint is unchanged');
  gw.child.kill('SIGTERM');
  t.equal((await gw.exited).code, 0);
});

t.test('nginx with a bare proxy_pass (no forwarding headers): no credential-less role through it', async (t) => {
  for (const trusted of [[], ['127.0.0.1']]) {
    const site = await startSecureSite(t, { ...SITE, http: { trustedProxies: trusted } });
    const nginx = await startNginx(t, `server { listen 443 ssl; location / { proxy_pass http://127.0.0.1:${portOf(site.url)}; } }`, { tls: false });
    await strangerAttacks(t, nginx.url);
    t.equal(site.gateway.store.latest('site.hvac.setpoint')?.v, 21, `nothing applied (trustedProxies ${JSON.stringify(trusted)})`);
  }
  // The opt-in role still exists for a box without a proxy, with a warning at start …
  const optIn = await startSecureSite(t, { ...SITE, auth: { loopback: 'viewer' } });
  t.equal((await rawRequest(`${optIn.url}/api/datapoints`)).status, 200, 'auth.loopback: viewer applies to a direct local tool');
  t.ok(
    logsOf(optIn).some((l) => /auth\.loopback gives this role/.test(String(l.msg))),
    'the opt-in role is warned about at start',
  );
  // … and once the proxy's address is trusted, nothing from that address gets it.
  const both = await startSecureSite(t, { ...SITE, auth: { loopback: 'viewer' }, http: { trustedProxies: ['127.0.0.1'] } });
  const nginx = await startNginx(t, `server { listen 443 ssl; location / { proxy_pass http://127.0.0.1:${portOf(both.url)}; } }`, { tls: false });
  t.equal((await rawRequest(`${nginx.url}/api/datapoints`)).status, 401, 'not to what came through the trusted proxy');
  t.equal((await rawRequest(`${both.url}/api/datapoints`)).status, 401, "nor to anything else from the proxy's address");
});

/** Logs in through the proxy as a browser at `origin` would, from `localAddress`. */
async function browserLogin(proxy: RunningProxy, ca: string, password: string, localAddress: string) {
  return rawRequest(`${proxy.url}/api/auth/login`, {
    method: 'POST',
    headers: { ...json, origin: proxy.url, 'sec-fetch-site': 'same-origin' },
    body: JSON.stringify({ username: 'admin', password }),
    localAddress,
    ca,
  });
}

function openSocket(url: string, o: { headers: Record<string, string>; ca: string; localAddress: string }): Promise<{ opened: boolean; status?: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, ['mqtt'], { headers: o.headers, ca: o.ca, localAddress: o.localAddress });
    ws.on('open', () => {
      ws.close();
      resolve({ opened: true });
    });
    ws.on('unexpected-response', (req, res) => {
      resolve({ opened: false, status: res.statusCode });
      req.destroy();
    });
    ws.on('error', () => resolve({ opened: false }));
  });
}

async function proxiedSite(t: Test, proxyKind: 'nginx' | 'caddy'): Promise<{ site: SecureSite; proxy: RunningProxy; ca: string }> {
  const cert = await selfSignedCert(t);
  const site = await startSecureSite(t, {
    ...SITE,
    http: { trustedProxies: ['127.0.0.1', '::1'] },
    auth: { login: { maxFailures: 3, maxFailuresPerAddress: 6, windowSeconds: 600 } },
  });
  const proxy = proxyKind === 'nginx' ? await readmeNginx(t, portOf(site.url), cert) : await readmeCaddy(t, portOf(site.url), cert);
  return { site, proxy, ca: cert.cert };
}

for (const proxyKind of ['nginx', 'caddy'] as const) {
  t.test(
    `the README's ${proxyKind} snippet over TLS: browsers log in, cookies are Secure, websockets need the session, throttles are per client`,
    async (t) => {
      const { proxy, ca, site } = await proxiedSite(t, proxyKind);

      const login = await browserLogin(proxy, ca, ADMIN_PASSWORD, '127.0.0.2');
      t.equal(login.status, 200, `a browser at ${proxy.url} logs in through ${proxyKind} (X-Forwarded-Proto/-Host believed): ${login.body}`);
      const setCookie = String(login.headers['set-cookie'] ?? '');
      t.match(setCookie, /; Secure/, 'the session cookie is Secure: the browser used HTTPS');
      const cookie = setCookie.split(';')[0]!;
      const me = await rawRequest(`${proxy.url}/api/auth/me`, { headers: { cookie }, ca, localAddress: '127.0.0.2' });
      t.match(JSON.parse(me.body), { username: 'admin', kind: 'session' });

      const wsUrl = `${proxy.url.replace('https', 'wss')}/mqtt`;
      t.same(
        await openSocket(wsUrl, { headers: { cookie, origin: proxy.url }, ca, localAddress: '127.0.0.2' }),
        { opened: true },
        'the live feed opens with the session and our Origin',
      );
      t.equal((await openSocket(wsUrl, { headers: { origin: proxy.url }, ca, localAddress: '127.0.0.2' })).status, 401, 'without a session it is refused');
      t.equal(
        (await openSocket(wsUrl, { headers: { cookie, origin: 'https://evil.example' }, ca, localAddress: '127.0.0.2' })).status,
        401,
        'from a foreign Origin it is refused (cross-site websocket hijacking)',
      );

      // One client guesses, even claiming other addresses in X-Forwarded-For; another logs in.
      for (let i = 0; i < 8; i++) {
        await rawRequest(`${proxy.url}/api/auth/login`, {
          method: 'POST',
          headers: { ...json, origin: proxy.url, 'x-forwarded-for': `10.66.0.${i}` },
          body: JSON.stringify({ username: i % 2 ? 'admin' : `guess${i}`, password: 'wrong-password' }),
          localAddress: '127.0.0.3',
          ca,
        });
      }
      const guesser = await browserLogin(proxy, ca, ADMIN_PASSWORD, '127.0.0.3');
      t.equal(guesser.status, 429, 'the guessing client is throttled, whatever X-Forwarded-For it sends');
      t.equal(
        (await browserLogin(proxy, ca, ADMIN_PASSWORD, '127.0.0.4')).status,
        200,
        'another client behind the same proxy still logs in (one address per client, not one per proxy)',
      );
      t.ok(
        logsOf(site).some((l) => l.msg === 'login failed' && l.address === '127.0.0.3'),
        'logs name the real client address',
      );
    },
  );
}

t.test('a TLS proxy that is not trusted: its headers are ignored, the refusal says what to set', async (t) => {
  const cert = await selfSignedCert(t);
  const site = await startSecureSite(t, SITE);
  const proxy = await readmeNginx(t, portOf(site.url), cert);
  const res = await browserLogin(proxy, cert.cert, ADMIN_PASSWORD, '127.0.0.2');
  t.equal(res.status, 403);
  t.match(JSON.parse(res.body), { error: { code: 'CSRF_FAILED', message: /http\.trustedProxies/ } }, 'the message names the setting');
  await strangerAttacks(t, proxy.url, {}, cert.cert);
  t.equal(logsOf(site).filter((l) => /not in http\.trustedProxies/.test(String(l.msg))).length, 1, 'warned once');
});

t.test('forwarding headers from a client that is not a trusted proxy change nothing', async (t) => {
  const site = await startSecureSite(t, {
    ...SITE,
    http: { trustedProxies: ['127.0.0.1'] },
    auth: { login: { maxFailures: 3, maxFailuresPerAddress: 4, windowSeconds: 600 } },
  });
  // 127.0.0.9 is not a proxy: what it claims about the client, the scheme and the host is ignored.
  for (let i = 0; i < 6; i++) {
    await rawRequest(`${site.url}/api/auth/login`, {
      method: 'POST',
      headers: { ...json, 'x-forwarded-for': `10.0.0.${i}` },
      body: JSON.stringify({ username: `u${i}`, password: 'wrong-password' }),
      localAddress: '127.0.0.9',
    });
  }
  const again = await rawRequest(`${site.url}/api/auth/login`, {
    method: 'POST',
    headers: { ...json, 'x-forwarded-for': '10.0.0.99' },
    body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
    localAddress: '127.0.0.9',
  });
  t.equal(again.status, 429, 'a fresh X-Forwarded-For does not buy a fresh throttle');
  const spoofedProto = await rawRequest(`${site.url}/api/auth/login`, {
    method: 'POST',
    headers: { ...json, origin: 'https://evil.example', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' },
    body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
    localAddress: '127.0.0.8',
  });
  t.equal(spoofedProto.status, 403, 'a foreign page cannot pass the origin check by sending X-Forwarded-Host itself');
});
