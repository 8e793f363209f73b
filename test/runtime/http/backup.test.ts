import t from 'tap';
import express, { type NextFunction, type Request, type Response } from 'express';
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { listen } from '../../../runtime/http/server.js';
import { OutpostError } from '../../../core/errors.js';
import { createLogger } from '../../../runtime/log.js';
import { backupRoutes } from '../../../runtime/http/backup.js';
import type { PointRecord } from '../../../storage/store.js';

const ADMIN_PASSWORD = 'admin-secret-pw-1';
const T0 = Date.UTC(2025, 2, 1, 0, 0, 0);
const MIN = 60_000;
const SECURE = { auth: { loopback: 'none', admin: { username: 'admin', password: ADMIN_PASSWORD } } };

/** A logged-in user: the session cookie and its CSRF token. */
interface Login {
  cookie: string;
  csrf: string;
}

async function login(base: string, username: string, password: string): Promise<Login> {
  const res = await fetch(`${base}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (res.status !== 200) throw new Error(`login ${username}: ${res.status} ${await res.text()}`);
  return { cookie: res.headers.get('set-cookie')!.split(';')[0]!, csrf: ((await res.json()) as { csrf: string }).csrf };
}

function auth(who: Login | undefined, extra: Record<string, string> = {}): Record<string, string> {
  return who ? { cookie: who.cookie, 'x-csrf-token': who.csrf, ...extra } : extra;
}

/** Raw HTTP, so the test decides Accept-Encoding and Content-Length itself (fetch would add and decode). */
function raw(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: Buffer; declaredLength?: number },
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: options.method ?? 'GET',
        headers: { ...options.headers, ...(options.declaredLength !== undefined ? { 'content-length': String(options.declaredLength) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.declaredLength !== undefined) {
      // Claim a huge body, send a little: the server must answer without reading it all.
      req.write(options.body ?? Buffer.alloc(0));
      return;
    }
    req.end(options.body);
  });
}

async function seed(gw: TestGateway): Promise<number> {
  const g = gw.gateway;
  await g.registry.register({ id: 'yard.charger1.power', adapter: 'virtual', kind: 'sensor', type: 'number', unit: 'kW' });
  await g.registry.register({ id: 'yard.charger1.status', adapter: 'virtual', kind: 'sensor', type: 'string' });
  await g.registry.register({ id: 'yard.door.open', adapter: 'virtual', kind: 'sensor', type: 'boolean' });
  const points: PointRecord[] = [];
  for (let i = 0; i < 600; i++) {
    const t = T0 + i * 10_000;
    points.push(i >= 100 && i < 106 ? { id: 'yard.charger1.power', t, v: null, q: 'stale' } : { id: 'yard.charger1.power', t, v: (i % 37) + 0.5 });
    if (i % 100 === 0) points.push({ id: 'yard.charger1.status', t, v: i % 200 === 0 ? 'Charging' : 'Available' });
    if (i % 50 === 0) points.push({ id: 'yard.door.open', t, v: i % 100 === 0 });
  }
  await g.store.write(points);
  return points.length;
}

async function values(base: string, who: Login | undefined, id: string, query = `from=${T0}&to=${T0 + 3600_000}&limit=10000`): Promise<unknown> {
  const res = await fetch(`${base}/api/datapoints/${id}/values?${query}`, { headers: auth(who) });
  if (res.status !== 200) throw new Error(`${id}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { values: unknown }).values;
}

async function spoolFiles(gw: TestGateway): Promise<string[]> {
  const dir = join(gw.dataDir, 'tmp');
  return existsSync(dir) ? readdir(dir) : [];
}

t.test('admin downloads a backup (gzip when accepted) and restores it into another gateway', async (t) => {
  const a = await startTestGateway(t, { ...SECURE, gateway: { id: 'yard-a' } });
  const written = await seed(a);
  const adminA = await login(a.httpUrl, 'admin', ADMIN_PASSWORD);

  const gz = await raw(`${a.httpUrl}/api/admin/backup`, { headers: auth(adminA, { 'accept-encoding': 'gzip' }) });
  t.equal(gz.status, 200);
  t.equal(gz.headers['content-encoding'], 'gzip', 'gzip for a client that accepts it');
  t.match(gz.headers['content-disposition'], /^attachment; filename="outpost-backup-yard-a-\d{8}T\d{6}Z\.ndjson"$/);
  t.match(gz.headers['content-type'], /application\/x-ndjson/);
  const text = gunzipSync(gz.body).toString('utf8');
  const lines = text.trimEnd().split('\n');
  t.match(JSON.parse(lines[0]!), { format: 'outpost-backup', version: 1, gateway: 'yard-a' });
  t.match(JSON.parse(lines[lines.length - 1]!), { end: 'outpost-backup', datapoints: 3, points: written });

  const plain = await raw(`${a.httpUrl}/api/admin/backup`, { headers: auth(adminA) });
  t.equal(plain.headers['content-encoding'], undefined, 'no Accept-Encoding (curl): plain NDJSON');
  t.equal(plain.body.toString('utf8').split('\n').length, lines.length + 1, 'same lines');

  const ranged = await raw(`${a.httpUrl}/api/admin/backup?from=${T0 + 10 * MIN}&to=${new Date(T0 + 20 * MIN).toISOString()}&ids=yard.charger1.power`, {
    headers: auth(adminA),
  });
  const rangedLines = ranged.body.toString('utf8').trimEnd().split('\n');
  t.match(
    JSON.parse(rangedLines.at(-1)!),
    { datapoints: 1, points: 61 },
    'from/to (epoch ms or ISO) and ids: 10 minutes of one datapoint, both ends inclusive',
  );
  const badRange = await raw(`${a.httpUrl}/api/admin/backup?from=${T0 + 1}&to=${T0}`, { headers: auth(adminA, { 'accept-encoding': 'gzip' }) });
  t.equal(badRange.status, 400);
  t.equal(badRange.headers['content-encoding'], undefined, 'an error is plain JSON, not a broken gzip file');
  t.match(JSON.parse(badRange.body.toString('utf8')), { error: { code: 'BAD_REQUEST', message: /is after "to"/ } });

  const b = await startTestGateway(t, { ...SECURE, gateway: { id: 'yard-b' } });
  const adminB = await login(b.httpUrl, 'admin', ADMIN_PASSWORD);
  t.equal((await fetch(`${b.httpUrl}/api/datapoints/yard.charger1.power`, { headers: auth(adminB) })).status, 404, 'gateway B does not know the datapoint yet');
  const res = await fetch(`${b.httpUrl}/api/admin/restore`, { method: 'POST', headers: auth(adminB, { 'content-type': 'application/gzip' }), body: gz.body });
  t.equal(res.status, 200);
  const report = (await res.json()) as Record<string, unknown>;
  t.match(report, { gateway: 'yard-a', datapoints: 3, points: written, verifiedFirst: true, definitionsKept: 0 });
  t.same(await spoolFiles(b), [], 'the spooled upload is removed');

  for (const id of ['yard.charger1.power', 'yard.charger1.status', 'yard.door.open']) {
    t.same(await values(b.httpUrl, adminB, id), await values(a.httpUrl, adminA, id), `${id}: same values over REST`);
  }
  const meta = (await (await fetch(`${b.httpUrl}/api/datapoints/yard.charger1.power`, { headers: auth(adminB) })).json()) as {
    unit: string;
    latest: { t: number };
  };
  t.equal(meta.unit, 'kW', 'the definition is known to the running gateway at once');
  t.equal(meta.latest.t, T0 + 599 * 10_000, 'and its latest value');
  const agg = `interval=15m&agg=avg&from=${T0}&to=${T0 + 3600_000}`;
  t.same(await values(b.httpUrl, adminB, 'yard.charger1.power', agg), await values(a.httpUrl, adminA, 'yard.charger1.power', agg), 'rollups answer the same');

  // Plain NDJSON upload of the same backup: idempotent.
  const again = await fetch(`${b.httpUrl}/api/admin/restore`, {
    method: 'POST',
    headers: auth(adminB, { 'content-type': 'application/x-ndjson' }),
    body: plain.body,
  });
  t.equal(again.status, 200);
  t.match(await again.json(), { points: written, definitionsKept: 3 }, 'the second time the definitions are already known and kept');
  t.same(await values(b.httpUrl, adminB, 'yard.charger1.power'), await values(a.httpUrl, adminA, 'yard.charger1.power'), 'restoring twice changes nothing');
  t.ok(
    b.logs.some((l) => l.msg === 'backup restored' && l.user === 'admin'),
    'the restore is logged with who did it',
  );
});

t.test('only admins: viewers, operators and unauthenticated or browser requests are refused', async (t) => {
  const gw = await startTestGateway(t, SECURE);
  await seed(gw);
  const admin = await login(gw.httpUrl, 'admin', ADMIN_PASSWORD);
  for (const [username, role] of [
    ['vera', 'viewer'],
    ['otto', 'operator'],
  ] as const) {
    const res = await fetch(`${gw.httpUrl}/api/users`, {
      method: 'POST',
      headers: auth(admin, { 'content-type': 'application/json' }),
      body: JSON.stringify({ username, role, password: `${username}-password-1` }),
    });
    t.equal(res.status, 201);
  }
  const backup = await raw(`${gw.httpUrl}/api/admin/backup`, { headers: auth(admin) });
  t.equal(backup.status, 200);
  const before = await values(gw.httpUrl, admin, 'yard.charger1.power');

  for (const [who, name] of [
    [await login(gw.httpUrl, 'vera', 'vera-password-1'), 'viewer'],
    [await login(gw.httpUrl, 'otto', 'otto-password-1'), 'operator'],
    [undefined, 'no login'],
  ] as const) {
    const expected = who ? 403 : 401;
    const get = await raw(`${gw.httpUrl}/api/admin/backup`, { headers: auth(who) });
    t.equal(get.status, expected, `${name}: GET backup refused`);
    t.notMatch(get.body.toString('utf8'), /outpost-backup/, `${name}: no data in the answer`);
    const post = await raw(`${gw.httpUrl}/api/admin/restore`, {
      method: 'POST',
      headers: auth(who, { 'content-type': 'application/x-ndjson' }),
      body: backup.body,
    });
    t.equal(post.status, expected, `${name}: POST restore refused`);
  }
  t.same(await values(gw.httpUrl, admin, 'yard.charger1.power'), before);
  t.notOk(
    gw.logs.some((l) => l.msg === 'backup restored'),
    'no restore happened',
  );

  const wrongCsrf = await raw(`${gw.httpUrl}/api/admin/restore`, {
    method: 'POST',
    headers: { cookie: admin.cookie, 'x-csrf-token': 'wrong', 'content-type': 'application/x-ndjson' },
    body: backup.body,
  });
  t.equal(wrongCsrf.status, 403, 'an admin session without its CSRF token is refused (cross-site restore)');

  // Default config: tools on this host are admin, a browser on this host is not.
  const open = await startTestGateway(t, {});
  await seed(open);
  const tool = await raw(`${open.httpUrl}/api/admin/backup`, {});
  t.equal(tool.status, 200, 'curl on the gateway itself (loopback role admin) may back up');
  const browser = await raw(`${open.httpUrl}/api/admin/backup`, { headers: { 'sec-fetch-site': 'same-origin' } });
  t.equal(browser.status, 401, 'a browser without login gets nothing, even on loopback');
  const crossSite = await raw(`${open.httpUrl}/api/admin/restore`, {
    method: 'POST',
    headers: { origin: 'http://evil.example', 'content-type': 'text/plain' },
    body: tool.body,
  });
  t.equal(crossSite.status, 401, 'a cross-site page cannot restore through the loopback trust');
  const viewerLoopback = await startTestGateway(t, { auth: { loopback: 'viewer' } });
  t.equal((await raw(`${viewerLoopback.httpUrl}/api/admin/backup`, {})).status, 403, 'with auth.loopback: viewer, local tools may not back up');
});

t.test('a bad file is refused with 400 naming the line, and nothing is written', async (t) => {
  const a = await startTestGateway(t, SECURE);
  await seed(a);
  const adminA = await login(a.httpUrl, 'admin', ADMIN_PASSWORD);
  const good = (await raw(`${a.httpUrl}/api/admin/backup`, { headers: auth(adminA) })).body.toString('utf8');
  const lines = good.trimEnd().split('\n');

  const b = await startTestGateway(t, SECURE);
  const adminB = await login(b.httpUrl, 'admin', ADMIN_PASSWORD);
  const post = (body: Buffer, type = 'application/x-ndjson') =>
    raw(`${b.httpUrl}/api/admin/restore`, { method: 'POST', headers: auth(adminB, { 'content-type': type }), body });

  const truncated = await post(Buffer.from(lines.slice(0, -1).join('\n') + '\n'));
  t.equal(truncated.status, 400);
  t.match(JSON.parse(truncated.body.toString('utf8')), {
    error: {
      code: 'BACKUP_INVALID',
      message: new RegExp(`line ${lines.length}: .*without the trailer line.*nothing was restored`),
      details: { line: lines.length },
    },
  });

  const edited = [...lines];
  edited[20] = edited[20]!.replace(/"v":([\d.]+)/, '"v":999');
  const checksum = await post(gzipSync(Buffer.from(edited.join('\n') + '\n')), 'application/gzip');
  t.equal(checksum.status, 400);
  t.match(JSON.parse(checksum.body.toString('utf8')), { error: { code: 'BACKUP_INVALID', message: /checksum mismatch/ } });

  const junk = [...lines];
  junk.splice(300, 0, '<html>');
  t.match(JSON.parse((await post(Buffer.from(junk.join('\n') + '\n'))).body.toString('utf8')), {
    error: { code: 'BACKUP_INVALID', message: /line 301: not valid JSON/ },
  });

  const asJson = await post(Buffer.from(lines[0]!), 'application/json');
  t.equal(asJson.status, 400, 'a JSON body is not a backup upload');
  t.match(JSON.parse(asJson.body.toString('utf8')), { error: { message: /raw body/ } });

  t.same(
    b.gateway.registry.list().map((dp) => dp.id),
    [],
    'no definition was registered',
  );
  t.same(await b.gateway.store.query('yard.charger1.power'), [], 'no point was written');
  t.same(await spoolFiles(b), [], 'no spooled upload left behind');
});

t.test('an upload over the limit is refused with 413 before it is stored', async (t) => {
  const gw = await startTestGateway(t, SECURE);
  const admin = await login(gw.httpUrl, 'admin', ADMIN_PASSWORD);
  const declared = await raw(`${gw.httpUrl}/api/admin/restore`, {
    method: 'POST',
    headers: auth(admin, { 'content-type': 'application/gzip' }),
    body: Buffer.from('{"format"'),
    declaredLength: 513 * 1024 * 1024,
  });
  t.equal(declared.status, 413, 'a declared Content-Length over 512 MiB is refused at once');
  t.match(JSON.parse(declared.body.toString('utf8')), { error: { code: 'UPLOAD_TOO_LARGE', message: /at most 536870912 bytes/ } });
  t.same(await spoolFiles(gw), []);

  // A chunked upload (no Content-Length) is counted while it streams. Same router, lower
  // limit, mounted behind a stand-in for the auth guard, over the gateway's store.
  const app = express();
  app.use((_req, res, next) => {
    res.locals.principal = { kind: 'token', name: 'test', role: 'admin' };
    next();
  });
  app.use(
    backupRoutes({
      store: gw.gateway.store,
      registry: gw.gateway.registry,
      dataDir: gw.dataDir,
      gatewayId: 'x',
      log: createLogger({ level: 'silent', pretty: false }),
      maxUploadBytes: 64 * 1024,
    }),
  );
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err instanceof OutpostError ? err : new OutpostError('INTERNAL', String(err));
    res.status(e.status).json({ error: e.toJSON() });
  });
  const server = createServer(app);
  const port = await listen(server, '127.0.0.1', 0);
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const lines: string[] = [JSON.stringify({ format: 'outpost-backup', version: 1, gateway: 'x', createdAt: T0, from: null, to: null })];
  for (let i = 0; i < 5000; i++) lines.push(JSON.stringify({ id: 'big.one', t: T0 + i, v: i }));
  const big = Buffer.from(lines.join('\n') + '\n');
  t.ok(big.length > 64 * 1024);
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(
      `http://127.0.0.1:${port}/api/admin/restore`,
      { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'transfer-encoding': 'chunked' } },
      (res) => {
        res.resume();
        resolve(res.statusCode!);
      },
    );
    req.on('error', reject);
    for (let i = 0; i < big.length; i += 8192) req.write(big.subarray(i, i + 8192));
    req.end();
  });
  t.equal(chunked, 413, 'a chunked upload is cut off at the limit');
  t.same(await gw.gateway.store.query('big.one'), [], 'nothing was written');
  t.same(await spoolFiles(gw), [], 'the partial spool file is removed');
});
