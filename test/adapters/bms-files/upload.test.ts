import t from 'tap';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createLogger } from '../../../runtime/log.js';
import { request } from 'node:http';
import { basename, join } from 'node:path';
import bmsFiles from '../../../adapters/bms-files/index.js';
import {
  displayFilename,
  forgetOriginalName,
  listSpooled,
  mountUpload,
  originalName,
  sanitizeFilename,
  spoolName,
} from '../../../adapters/bms-files/upload.js';
import { isCandidate } from '../../../adapters/bms-files/watcher.js';
import { hashToken } from '../../../runtime/auth/passwords.js';
import { eventually, startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { FIXTURES } from './helpers.js';
import { tempDir, type Teardown } from '../../helpers/teardown.js';

const TOKEN = 'upload-token-0123456789abcdef';
const types = [bmsFiles as never];

async function gateway(t: Teardown, maxBytes = 10 * 1024 * 1024): Promise<TestGateway> {
  return startTestGateway(
    t,
    {
      gateway: { timezone: 'America/Chicago' },
      adapters: [
        {
          id: 'insight',
          type: 'bms-files',
          format: 'siemens-insight',
          upload: { tokenHashes: [hashToken(TOKEN)], maxBytes },
          points: [{ exact: 'OATEMP', id: 'weitz.oat' }],
        },
        { id: 'alc', type: 'bms-files', format: 'alc-webctrl', upload: { tokenHashes: [hashToken(TOKEN)] } },
      ],
    },
    { types },
  );
}

function form(fields: Record<string, string | { filename: string; content: string | Buffer }>): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === 'string') f.append(k, v);
    else f.append(k, new Blob([v.content]), v.filename);
  }
  return f;
}

/** An importer's status info, typed as far as these tests read it. */
type ImporterInfo = Record<string, unknown> & { files: number; failures: number; queued: number; catalogue: number };

async function adapterInfo(gw: TestGateway, id: string): Promise<ImporterInfo> {
  const items = ((await (await fetch(`${gw.httpUrl}/api/adapters`)).json()) as { items: Array<{ id: string; info: ImporterInfo }> }).items;
  return items.find((i) => i.id === id)!.info;
}

t.test('POST /upload/siemens: bearer, form-field and query tokens; OK after spooling; imported afterwards', async (t) => {
  const gw = await gateway(t);
  const sample = await readFile(FIXTURES + 'siemens-insight-trend-interval.csv');
  const res = await fetch(`${gw.httpUrl}/upload/siemens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}` },
    body: form({ file: { filename: 'weitz.csv', content: sample } }),
  });
  t.equal(res.status, 200);
  t.equal(await res.text(), 'OK');
  t.match(res.headers.get('content-type'), /^text\/plain/);
  await eventually(async () => (await adapterInfo(gw, 'insight')).files === 1, 60_000, 50);
  const v = (await (await fetch(`${gw.httpUrl}/api/datapoints/weitz.oat/values?from=2017-01-01T00:00:00Z&to=2019-01-01T00:00:00Z`)).json()) as {
    values: unknown[];
  };
  t.equal(v.values.length, 16);
  const spool = join(gw.dataDir, 'adapters', 'insight', 'spool');
  const archived = await readdir(join(spool, 'archive'));
  t.equal(archived.length, 1);
  t.match(archived[0], /^\d+-[0-9a-f]{8}-weitz\.csv$/);

  // Old scripts: token as a form field (before or after the file) or in the query string.
  for (const [name, url, body] of [
    ['field first', '/upload/siemens', form({ token: TOKEN, file: { filename: 'a.csv', content: sample } })],
    ['field last', '/upload/siemens', form({ file: { filename: 'b.csv', content: sample }, token: TOKEN })],
    ['query', `/upload/siemens?token=${TOKEN}`, form({ file: { filename: 'c.csv', content: sample } })],
  ] as const) {
    const r = await fetch(gw.httpUrl + url, { method: 'POST', body });
    t.equal(r.status, 200, name);
    t.equal(await r.text(), 'OK');
  }
  await eventually(async () => (await adapterInfo(gw, 'insight')).files === 4, 90_000, 100);
});

t.test('upload refusals: 401 without or with a wrong token, 400 without a file, bad input is not spooled', async (t) => {
  const gw = await gateway(t);
  const spool = join(gw.dataDir, 'adapters', 'insight', 'spool');
  const csv = { filename: 'x.csv', content: 'a,b\n' };
  let r = await fetch(`${gw.httpUrl}/upload/siemens`, { method: 'POST', body: form({ file: csv }) });
  t.equal(r.status, 401);
  r = await fetch(`${gw.httpUrl}/upload/siemens`, { method: 'POST', headers: { authorization: 'Bearer wrong' }, body: form({ file: csv }) });
  t.equal(r.status, 401);
  r = await fetch(`${gw.httpUrl}/upload/siemens`, { method: 'POST', body: form({ token: 'wrong', file: csv }) });
  t.equal(r.status, 401);
  r = await fetch(`${gw.httpUrl}/upload/siemens`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: form({ other: csv }) });
  t.equal(r.status, 400);
  t.match(await r.text(), /missing multipart field "file"/);
  r = await fetch(`${gw.httpUrl}/upload/siemens`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: form({ note: 'hello' }) });
  t.equal(r.status, 400);
  r = await fetch(`${gw.httpUrl}/upload/siemens`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'text/csv' }, body: 'a,b\n' });
  t.equal(r.status, 400, 'not multipart');
  t.same(
    (await readdir(spool)).filter((n) => !['archive', 'failed'].includes(n)),
    [],
    'nothing left in the spool, no .part files',
  );
});

t.test('filenames are sanitised: no traversal out of the spool', async (t) => {
  t.equal(sanitizeFilename('../../etc/passwd'), 'passwd');
  t.equal(sanitizeFilename('..\\..\\windows\\win.ini'), 'win.ini');
  t.equal(sanitizeFilename('..'), 'upload.csv');
  t.equal(sanitizeFilename('.hidden'), 'hidden');
  t.equal(sanitizeFilename('trend report (1).csv'), 'trend_report_1_.csv');
  t.equal(sanitizeFilename(undefined), 'upload.csv');
  t.equal(sanitizeFilename('a\u0000b\r\n.csv'), 'a_b_.csv');
  const gw = await gateway(t);
  const sample = await readFile(FIXTURES + 'siemens-insight-trend-interval.csv');
  const r = await fetch(`${gw.httpUrl}/upload/siemens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}` },
    body: form({ file: { filename: '../../../evil.csv', content: sample } }),
  });
  t.equal(r.status, 200);
  await eventually(async () => (await adapterInfo(gw, 'insight')).files === 1, 60_000, 50);
  const archived = await readdir(join(gw.dataDir, 'adapters', 'insight', 'spool', 'archive'));
  t.match(archived, [/^\d+-[0-9a-f]{8}-evil\.csv$/]);
  t.notOk((await readdir(gw.dataDir)).includes('evil.csv'));
  t.notOk((await readdir(join(gw.dataDir, 'adapters'))).some((n) => n.includes('evil')));
});

/** Streams `total` bytes of a file part without holding them: chunked, so only the stream limit can stop it. */
function streamingUpload(url: string, total: number): Promise<{ status: number; body: string; sent: number }> {
  return new Promise((resolve, reject) => {
    const boundary = 'outpostboundary';
    const req = request(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'transfer-encoding': 'chunked' },
    });
    let sent = 0;
    let done = false;
    const chunk = Buffer.alloc(256 * 1024, 0x31);
    req.on('response', (res) => {
      done = true;
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, sent }));
    });
    req.on('error', (err) => (done ? undefined : reject(err)));
    req.write(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.csv"\r\nContent-Type: text/csv\r\n\r\n`);
    const pump = (): void => {
      while (!done && sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      if (!done) req.end(`\r\n--${boundary}--\r\n`);
    };
    pump();
  });
}

t.test('a 100 MB upload over the limit is cut off with 413 while streaming, nothing kept', async (t) => {
  const gw = await gateway(t, 1024 * 1024);
  const rssBefore = process.memoryUsage().rss;
  const r = await streamingUpload(`${gw.httpUrl}/upload/siemens`, 100 * 1024 * 1024);
  t.equal(r.status, 413);
  t.match(r.body, /over the limit of 1048576 bytes/);
  t.ok(r.sent < 100 * 1024 * 1024, `the answer came before the whole body was sent (${(r.sent / 1048576).toFixed(0)} MB)`);
  t.comment(`RSS growth during the refused upload: ${((process.memoryUsage().rss - rssBefore) / 1048576).toFixed(1)} MB`);
  const spool = join(gw.dataDir, 'adapters', 'insight', 'spool');
  await eventually(async () => (await readdir(spool)).filter((n) => !['archive', 'failed'].includes(n)).length === 0);
  // Declared too large up front: refused before reading the body.
  const big = await fetch(`${gw.httpUrl}/upload/siemens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}` },
    body: form({ file: { filename: 'big.csv', content: Buffer.alloc(3 * 1024 * 1024, 0x32) } }),
  });
  t.equal(big.status, 413);
  t.equal((await adapterInfo(gw, 'insight')).files, 0);
});

t.test('POST /upload/alc goes to the ALC instance: a points list becomes the catalogue, a bad file lands in failed/', async (t) => {
  const gw = await gateway(t);
  const list = await readFile(FIXTURES + 'alc-webctrl-points-list.csv');
  let r = await fetch(`${gw.httpUrl}/upload/alc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}` },
    body: form({ file: { filename: 'points.csv', content: list } }),
  });
  t.equal(r.status, 200);
  await eventually(async () => (await adapterInfo(gw, 'alc')).files === 1, 10_000);
  t.ok((await adapterInfo(gw, 'alc')).catalogue > 30);
  const trend = 'Time,WCC-AHU11/OAT,WCC-CHWS.SYSTEM/CHW SUPPLY TEMP\r\n6/15/2023 1:00:00 PM,81.5,44.2\r\n6/15/2023 1:15:00 PM,82.0,No Data\r\n';
  r = await fetch(`${gw.httpUrl}/upload/alc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}` },
    body: form({ file: { filename: 'trend.csv', content: trend } }),
  });
  t.equal(r.status, 200);
  await eventually(async () => (await adapterInfo(gw, 'alc')).files === 2, 10_000);
  const dp = (await (await fetch(`${gw.httpUrl}/api/datapoints/alc.wcc-ahu11_oat`)).json()) as Record<string, unknown>;
  t.match(dp, { meta: { controlProgram: 'WCC-AHU11', ioType: 'ANI', location: /Lower Level$/ } }, 'metadata from the points list');
  const vals = (await (
    await fetch(`${gw.httpUrl}/api/datapoints/alc.wcc-chws.system_chw_supply_temp/values?from=2023-06-15T00:00:00Z&to=2023-06-16T00:00:00Z`)
  ).json()) as { values: unknown[] };
  t.same(vals.values, [
    { t: Date.UTC(2023, 5, 15, 18), v: 44.2 },
    { t: Date.UTC(2023, 5, 15, 18, 15), v: null, q: 'bad' },
  ]);
  r = await fetch(`${gw.httpUrl}/upload/alc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}` },
    body: form({ file: { filename: 'bad.csv', content: 'Time,A\r\nnot a time,1\r\n' } }),
  });
  t.equal(r.status, 200, 'accepted: parsing happens after the answer');
  await eventually(async () => (await adapterInfo(gw, 'alc')).failures === 1, 10_000);
  const failedDir = join(gw.dataDir, 'adapters', 'alc', 'spool', 'failed');
  const names = await readdir(failedDir);
  const errorTxt = names.find((n) => n.endsWith('-bad.csv.error.txt'))!;
  t.match(await readFile(join(failedDir, errorTxt), 'utf8'), /line: 2\nreason: unparseable timestamp "not a time"/);
});

t.test('client names ending in .part, .tmp, .partial, .crdownload, .filepart, .error.txt are imported; the queue does not fill up', async (t) => {
  // maxQueued 2: before, the third such upload got 503, and so did every upload after it until a restart.
  const gw = await startTestGateway(
    t,
    {
      gateway: { timezone: 'America/Chicago' },
      adapters: [
        {
          id: 'insight',
          type: 'bms-files',
          format: 'siemens-insight',
          upload: { tokenHashes: [hashToken(TOKEN)], maxQueued: 2 },
          points: [{ exact: 'OATEMP', id: 'weitz.oat' }],
        },
      ],
    },
    { types },
  );
  const sample = await readFile(FIXTURES + 'siemens-insight-trend-interval.csv');
  const names = ['report.csv.part', 'report.tmp', 'report.partial', 'report.csv.crdownload', 'report.filepart', 'report.csv.error.txt', 'report.csv'];
  for (const [i, filename] of names.entries()) {
    const r = await fetch(`${gw.httpUrl}/upload/siemens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
      body: form({ file: { filename, content: sample } }),
    });
    t.equal(r.status, 200, `${filename}: accepted`);
    await eventually(async () => (await adapterInfo(gw, 'insight')).files === i + 1, 60_000, 50);
    t.equal((await adapterInfo(gw, 'insight')).queued, 0, `${filename}: imported, nothing left waiting`);
  }
  const archived = await readdir(join(gw.dataDir, 'adapters', 'insight', 'spool', 'archive'));
  t.equal(archived.length, names.length, 'every upload archived');
  t.ok(
    archived.every((n) => /^\d{13}-[0-9a-f]{8}-[A-Za-z0-9._-]+\.csv$/.test(n)),
    `our own names on disk: ${archived.join(', ')}`,
  );
});

t.test('spool names are ours: always a name the watcher takes, the client part sanitised', async (t) => {
  for (const client of [
    'report.csv.part',
    'x.TMP',
    'a.partial',
    'b.crdownload',
    'c.filepart',
    'd.csv.error.txt',
    '.hidden',
    '~$lock.csv',
    '',
    undefined,
    '../../etc/passwd',
    'Zähler März.csv',
  ]) {
    const name = spoolName('1763800000000-0123abcd', client);
    t.ok(isCandidate(name) && /^1763800000000-0123abcd-[A-Za-z0-9._-]+\.csv$/.test(name), `${JSON.stringify(client)} → ${name}`);
  }
  t.equal(spoolName('1763800000000-0123abcd', 'Zähler März.csv'), '1763800000000-0123abcd-Zahler_Marz.csv', 'accents dropped on disk, not replaced');
  t.equal(sanitizeFilename('Zähler März.csv'), 'Zahler_Marz.csv');
});

t.test('displayFilename: the name as sent, decoded as UTF-8, without controls or bidi overrides, bounded', async (t) => {
  const latin1 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1'); // what busboy hands over by default
  t.equal(displayFilename(latin1('Zähler März.csv')), 'Zähler März.csv');
  t.equal(displayFilename(latin1('日本語 😀.csv')), '日本語 😀.csv');
  t.equal(displayFilename('Z\u00e4hler.csv'), 'Zähler.csv', 'Latin-1 bytes that are not UTF-8 (an old Windows-1252 script) stay as they are');
  t.equal(displayFilename('Zähler 😀.csv'), 'Zähler 😀.csv', 'RFC 5987 filename* arrives decoded');
  t.equal(displayFilename('C:\\Users\\bms\\Desktop\\trend.csv'), 'trend.csv', 'old IE sends the full path');
  t.equal(displayFilename('a\u0000b\r\n\u0007c\u009b.csv'), 'abc.csv', 'control characters removed');
  t.equal(displayFilename('report\u202Evsc.exe'), 'reportvsc.exe', 'no right-to-left override');
  t.equal(displayFilename(undefined), 'upload.csv');
  t.equal(displayFilename('\r\n'), 'upload.csv');
  const long = displayFilename('ä'.repeat(300) + '.csv');
  t.equal([...long].length, 200);
  t.ok(long.endsWith('….csv'), 'a long name keeps its extension');
});

async function uploadServer(t: Teardown): Promise<{ url: string; spoolDir: string; spooled: string[] }> {
  const spoolDir = await tempDir(t, 'outpost-spool-');
  const spooled: string[] = [];
  const app = express();
  const router = express.Router();
  mountUpload(router, {
    path: '/upload/x',
    tokenHashes: [hashToken(TOKEN)],
    maxBytes: 1024 * 1024,
    maxQueued: 100,
    spoolDir,
    queued: () => 0,
    log: createLogger({ level: 'silent' }),
    onSpooled: (p) => spooled.push(p),
  });
  app.use(router);
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/upload/x`, spoolDir, spooled };
}

t.test('the original name is kept beside the spooled upload (originalName), and forgotten on request', async (t) => {
  const { url, spoolDir, spooled } = await uploadServer(t);
  for (const filename of ['Zähler März.csv', 'report.csv.part', '日本 "q".csv']) {
    const r = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: form({ file: { filename, content: 'a,b\n' } }) });
    t.equal(r.status, 200);
  }
  t.equal(spooled.length, 3);
  t.same(
    await Promise.all(spooled.map(originalName)),
    ['Zähler März.csv', 'report.csv.part', '日本 %22q%22.csv'],
    'exactly as sent (fetch escapes a quote as %22, as browsers do)',
  );
  t.same(await listSpooled(spoolDir), [...spooled].sort(), 'the uploads, not their sidecars');
  await forgetOriginalName(spooled[0]!);
  t.equal(
    await originalName(spooled[0]!),
    basename(spooled[0]!).replace(/^\d+-[0-9a-f]{8}-/, ''),
    'without a sidecar: the disk name without the spool prefix (uploads spooled before)',
  );
  await forgetOriginalName(spooled[0]!); // twice is fine
  // An upload imported (moved away) without forgetOriginalName: the next upload removes its record.
  await rm(spooled[1]!);
  const r = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}` },
    body: form({ file: { filename: 'next.csv', content: 'a,b\n' } }),
  });
  t.equal(r.status, 200);
  await eventually(async () => !(await readdir(spoolDir)).includes(`.${basename(spooled[1]!)}.name.json`));
  t.same((await readdir(spoolDir)).filter((n) => n.endsWith('.name.json')).length, 2, 'the waiting uploads keep theirs');
});

t.test('listSpooled: uploads only, not archive/, failed/, .part files or sidecars; orphan sidecars removed', async (t) => {
  const spoolDir = await tempDir(t, 'outpost-spool-list-');
  await mkdir(join(spoolDir, 'archive'));
  await mkdir(join(spoolDir, 'failed'));
  await writeFile(join(spoolDir, '1763800000000-0123abcd-a.csv'), 'x');
  await writeFile(join(spoolDir, '.1763800000000-0123abcd-a.csv.name.json'), '{"name":"a.csv"}');
  await writeFile(join(spoolDir, '1763800000001-0123abcd-b.csv.part'), 'x'); // upload in flight
  await writeFile(join(spoolDir, '.1763800000001-0123abcd-b.csv.name.json'), '{"name":"b.csv"}');
  await writeFile(join(spoolDir, '.1763800000002-0123abcd-c.csv.name.json'), '{"name":"c.csv"}'); // its upload was imported
  t.same(await listSpooled(spoolDir), [join(spoolDir, '1763800000000-0123abcd-a.csv')]);
  t.same((await readdir(spoolDir)).sort(), [
    '.1763800000000-0123abcd-a.csv.name.json',
    '.1763800000001-0123abcd-b.csv.name.json',
    '1763800000000-0123abcd-a.csv',
    '1763800000001-0123abcd-b.csv.part',
    'archive',
    'failed',
  ]);
});
