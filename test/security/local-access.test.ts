/**
 * Issue 18, part 1: local tools authenticate with a file only the service user can read,
 * not with where they connect from. `outpost api` is the README's way to call the API.
 */
import t from 'tap';
import { statSync, existsSync } from 'node:fs';

import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { startSecureSite, selfSignedCert } from './harness.js';
import { outpostCommand, REPO_ROOT } from '../helpers/process.js';
import { localAccessPath, readLocalAccess } from '../../runtime/auth/local-access.js';
import { ProxyTrust } from '../../runtime/http/forwarded.js';
import type { IncomingMessage } from 'node:http';
import { tempDir } from '../helpers/teardown.js';

/** `outpost api …` from the sources or the build, as users run it. */
function outpost(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const { command, args: full } = outpostCommand(args);
  return new Promise((resolve) => {
    const child = execFile(command, full, { cwd: REPO_ROOT }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(stdin ?? '');
  });
}

t.test('the local access file: 0600 in a 0700 folder, admin by token only, gone after stop', async (t) => {
  const site = await startSecureSite(t, {});
  const file = localAccessPath(site.dataDir);
  t.equal(statSync(file).mode & 0o777, 0o600, 'only the service user reads it');
  t.equal(statSync(join(site.dataDir, 'auth')).mode & 0o777, 0o700);
  const access = await readLocalAccess(site.dataDir);
  t.equal(access.url, site.httpUrl, 'it names the running API');
  const call = (token: string) => fetch(`${site.httpUrl}/api/users`, { headers: { authorization: `Bearer ${token}` } });
  t.equal((await call(access.token)).status, 200, 'its token is admin');
  t.equal((await call(access.token.slice(0, -1) + (access.token.endsWith('A') ? 'B' : 'A'))).status, 401, 'a token one character off is not');
  t.equal((await fetch(`${site.httpUrl}/api/users`)).status, 401, 'no token, nothing: loopback alone is no credential');
  t.notOk(JSON.stringify(site.logs).includes(access.token), 'the token is never logged');
  await site.stop();
  t.notOk(existsSync(file), 'a graceful stop removes it');
});

t.test('outpost api: reads, writes, and refuses clearly', async (t) => {
  const site = await startSecureSite(t, { datapoints: [{ id: 'lab.mode', kind: 'actuator', type: 'string', allowed: ['auto', 'off'] }] });
  const dataDir = ['--data-dir', site.dataDir];
  const list = await outpost(['api', 'GET', '/api/datapoints', ...dataDir]);
  t.equal(list.code, 0, list.stderr);
  t.ok((JSON.parse(list.stdout) as { items: Array<{ id: string }> }).items.some((d) => d.id === 'lab.mode'));
  const set = await outpost(['api', 'POST', '/api/datapoints/lab.mode/setpoint', '{"v": "off"}', ...dataDir]);
  t.equal(set.code, 0, set.stderr);
  t.equal(site.gateway.store.latest('lab.mode')?.v, 'off', 'the setpoint was applied');
  const fromStdin = await outpost(['api', 'POST', '/api/datapoints/lab.mode/setpoint', '-', ...dataDir], '{"v": "auto"}');
  t.equal(fromStdin.code, 0, fromStdin.stderr);
  t.equal(site.gateway.store.latest('lab.mode')?.v, 'auto', "'-' reads the body from stdin");
  const refused = await outpost(['api', 'POST', '/api/datapoints/lab.mode/setpoint', '{"v": "boost"}', ...dataDir]);
  t.equal(refused.code, 1, 'a refused request exits 1');
  t.match(refused.stderr, /SETPOINT_OUT_OF_RANGE|not one of|allowed/);
  t.match(refused.stderr, /HTTP 400/);
  t.equal((await outpost(['api', 'FETCH', '/api/datapoints', ...dataDir])).code, 2, 'not a method: a usage error');
  t.equal((await outpost(['api', 'GET', 'http://elsewhere.example/api', ...dataDir])).code, 2, 'a full URL is refused: the token goes only to our gateway');
  // Spellings that URL resolution turns into another host: the token must not go there.
  let stolen = 0;
  const { createServer } = await import('node:http');
  const thief = createServer((_req, res) => {
    stolen++;
    res.end('{}');
  });
  await new Promise<void>((r) => thief.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => thief.close(() => r())));
  const thiefPort = (thief.address() as { port: number }).port;
  for (const path of [`//127.0.0.1:${thiefPort}/steal`, `/\\127.0.0.1:${thiefPort}/steal`]) {
    t.equal((await outpost(['api', 'GET', path, ...dataDir])).code, 2, `${path} is refused`);
  }
  t.equal(stolen, 0, 'no request reached another server');
  const badJson = await outpost(['api', 'POST', '/api/datapoints/lab.mode/setpoint', '{v: off}', ...dataDir]);
  t.equal(badJson.code, 2);
  t.match(badJson.stderr, /not valid JSON/);
  const empty = await tempDir(t, 'outpost-noaccess-');
  const none = await outpost(['api', 'GET', '/api/datapoints', '--data-dir', empty]);
  t.equal(none.code, 1);
  t.match(none.stderr, /local-access\.json does not exist: is the gateway running with this data dir\?/);
});

t.test('outpost api over HTTPS pins the gateway certificate', async (t) => {
  const cert = await selfSignedCert(t);
  const site = await startSecureSite(t, { http: { tls: { certFile: cert.certFile, keyFile: cert.keyFile } } });
  const access = await readLocalAccess(site.dataDir);
  t.match(access.url, /^https:/);
  t.equal(access.certFile, cert.certFile);
  const res = await outpost(['api', 'GET', '/api/auth/me', '--data-dir', site.dataDir]);
  t.equal(res.code, 0, res.stderr);
  t.match(JSON.parse(res.stdout), { username: 'local', kind: 'token', role: 'admin' });
});

t.test('ProxyTrust: the client is the rightmost address a trusted proxy added', async (t) => {
  const req = (peer: string, headers: Record<string, string> = {}) => ({ socket: { remoteAddress: peer }, headers }) as unknown as IncomingMessage;
  const trust = new ProxyTrust(['127.0.0.1', '10.0.0.0/8', '::1']);
  t.match(trust.view(req('127.0.0.1', { 'x-forwarded-for': '203.0.113.9' })), { address: '203.0.113.9', proxied: true, proto: 'http' });
  t.match(
    trust.view(req('::ffff:127.0.0.1', { 'x-forwarded-for': '6.6.6.6, 203.0.113.9, 10.1.1.1' })),
    { address: '203.0.113.9' },
    'chained proxies are skipped; what the client claimed (6.6.6.6) is not believed',
  );
  t.match(trust.view(req('::1', { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gw.example.com', host: '127.0.0.1:8080' })), {
    address: '::1',
    proto: 'https',
    host: 'gw.example.com',
  });
  t.match(
    trust.view(req('192.0.2.1', { 'x-forwarded-for': '1.2.3.4', 'x-forwarded-proto': 'https', host: 'gw:8080' })),
    { address: '192.0.2.1', proto: 'http', host: 'gw:8080', proxied: false, untrustedForwarding: true },
    'an untrusted peer: headers ignored, noticed',
  );
  t.match(
    new ProxyTrust([]).view(req('127.0.0.1', { 'x-forwarded-for': '1.2.3.4' })),
    { address: '127.0.0.1', untrustedForwarding: true },
    'nobody is trusted by default',
  );
  t.match(
    trust.view(req('127.0.0.1', { 'x-forwarded-proto': 'https, http', 'x-forwarded-host': 'evil.example, gw:443', host: 'x' })),
    { proto: 'http', host: 'gw:443' },
    'the value our proxy set (the last), not what the client sent before it',
  );
  t.throws(() => new ProxyTrust(['localhost']), { code: 'CONFIG_INVALID' });
});
