import t from 'tap';
import { appendFile, copyFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bmsFiles from '../../../adapters/bms-files/index.js';
import { ImportHistory, type ImportHistoryEntry } from '../../../adapters/bms-files/history.js';
import { hashToken } from '../../../runtime/auth/passwords.js';
import { eventually, startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { ADMIN_PASSWORD, ApiClient, startSecureSite } from '../../security/harness.js';
import { FIXTURES } from './helpers.js';
import { tempDir } from '../../helpers/teardown.js';

const types = [bmsFiles as never];
const SAMPLE = FIXTURES + 'siemens-insight-trend-interval.csv';
const UPLOAD_TOKEN = 'history-upload-token-0123456789';

async function history(
  gw: TestGateway,
  id: string,
  query = '',
): Promise<{ status: number; body: { items: ImportHistoryEntry[]; limit: number; total: number; error?: { code: string; message: string } } }> {
  const res = await fetch(`${gw.httpUrl}/api/imports/${id}${query}`);
  return { status: res.status, body: (await res.json()) as never };
}

t.test('GET /api/imports/<id>: imported and refused files with their figures, newest first, across a restart', async (t) => {
  const dataDir = await tempDir(t, 'outpost-bms-hist-data-');
  const drop = await tempDir(t, 'outpost-bms-hist-drop-');
  const cfg = {
    gateway: { timezone: 'America/Chicago' },
    adapters: [
      {
        id: 'insight',
        type: 'bms-files',
        format: 'siemens-insight',
        dropDir: drop,
        pollMs: 30,
        stableMs: 100,
        points: [{ exact: 'OATEMP', id: 'weitz.outdoor.temperature', unit: '°F' }],
      },
    ],
  };
  const first = await startTestGateway(t, cfg, { types, dataDir });

  // The real Insight sample as is, then the same sample with an impossible date at line 172.
  const goodSize = (await stat(SAMPLE)).size;
  await copyFile(SAMPLE, join(drop, 'weitz-good.csv'));
  await eventually(async () => (await history(first, 'insight')).body.items.length === 1, 60_000, 30);
  const lines = (await readFile(SAMPLE, 'utf8')).split('\n');
  lines[171] = lines[171]!.replace('"12/26/2017"', '"12/32/2017"');
  const bad = lines.join('\n');
  await writeFile(join(drop, 'weitz-bad-date.csv'), bad);
  await eventually(async () => (await history(first, 'insight')).body.items.length === 2, 60_000, 30);

  const errorTxt = await readFile(join(drop, 'failed', 'weitz-bad-date.csv.error.txt'), 'utf8');
  const errorLine = Number(/^line: (\d+)$/m.exec(errorTxt)?.[1]);
  const errorReason = /^reason: (.*)$/m.exec(errorTxt)?.[1];
  t.equal(errorLine, 172, '.error.txt names the line');

  const check = (items: ImportHistoryEntry[], when: string): void => {
    t.equal(items.length, 2, `${when}: both files`);
    const [failed, imported] = items;
    t.match(
      failed,
      {
        status: 'failed',
        file: 'weitz-bad-date.csv',
        storedAs: 'weitz-bad-date.csv',
        size: Buffer.byteLength(bad),
        line: errorLine,
        reason: errorReason,
        rows: 0,
        points: 0,
        datapoints: 162,
      },
      `${when}: the refused file, newest first, with the line and reason of its .error.txt; nothing stored (all or nothing)`,
    );
    t.match(
      imported,
      { status: 'imported', file: 'weitz-good.csv', storedAs: 'weitz-good.csv', size: goodSize, rows: 16, points: 2592, gaps: 149, datapoints: 162 },
      `${when}: the imported file with its figures`,
    );
    t.notOk('reason' in imported! || 'line' in imported!, `${when}: an imported file has no reason`);
    t.ok(failed!.at >= imported!.at, `${when}: newest first`);
    for (const e of items) t.ok(e.ms >= 0 && e.startedAt <= e.at && e.at - e.ms === e.startedAt, `${when}: ${e.file} has its duration`);
  };
  const before = await history(first, 'insight');
  t.equal(before.status, 200);
  check(before.body.items, 'before the restart');
  t.same(
    (await history(first, 'insight', '?limit=1')).body.items.map((e) => e.file),
    ['weitz-bad-date.csv'],
    'limit=1: the newest only',
  );

  await first.stop();
  const second = await startTestGateway(t, cfg, { types, dataDir });
  const after = await history(second, 'insight');
  t.equal(after.status, 200);
  check(after.body.items, 'after the restart');
  t.same(after.body.items, before.body.items, 'the history is durable, not rebuilt from the status');

  for (const bad of ['?limit=0', '?limit=501', '?limit=abc', '?limit=-5', '?limit=2.5', '?limit=1&limit=2']) {
    const res = await history(second, 'insight', bad);
    t.equal(res.status, 400, `${bad} → 400`);
    t.equal(res.body.error?.code, 'BAD_REQUEST');
  }
  t.equal((await history(second, 'insight', '?limit=500')).status, 200, 'limit=500 is allowed');
  t.equal((await fetch(`${second.httpUrl}/api/imports/nosuchsource`)).status, 404, 'unknown source → 404');
});

t.test('uploads appear under the name they were sent with', async (t) => {
  const gw = await startTestGateway(
    t,
    {
      gateway: { timezone: 'America/Chicago' },
      adapters: [{ id: 'up', type: 'bms-files', format: 'siemens-insight', pollMs: 30, upload: { tokenHashes: [hashToken(UPLOAD_TOKEN)] } }],
    },
    { types },
  );
  const form = new FormData();
  form.append('file', new Blob([await readFile(SAMPLE)]), 'plant room/../weitz.csv');
  const res = await fetch(`${gw.httpUrl}/upload/siemens`, { method: 'POST', headers: { authorization: `Bearer ${UPLOAD_TOKEN}` }, body: form });
  t.equal(res.status, 200);
  const items = await eventually(
    async () => {
      const h = await history(gw, 'up');
      return h.body.items.length === 1 ? h.body.items : undefined;
    },
    60_000,
    30,
  );
  t.match(items![0], { status: 'imported', file: 'weitz.csv', rows: 16 });
  t.match(items![0]!.storedAs, /^\d{10,}-[0-9a-f]{8}-weitz\.csv$/, 'storedAs is the spool archive name');
});

t.test('the route is behind the gateway login: a viewer reads it, a stranger does not', async (t) => {
  const drop = await tempDir(t, 'outpost-bms-hist-auth-');
  const site = await startSecureSite(
    t,
    {
      gateway: { timezone: 'America/Chicago' },
      auth: { loopback: 'none' },
      adapters: [{ id: 'insight', type: 'bms-files', format: 'siemens-insight', dropDir: drop, pollMs: 30, stableMs: 0 }],
    },
    { types },
  );
  const admin = new ApiClient(site.url);
  t.equal((await admin.login('admin', ADMIN_PASSWORD)).status, 200);
  const { token } = (await (await admin.request('POST', '/api/tokens', { name: 'wallboard', role: 'viewer' })).json()) as { token: string };
  await copyFile(SAMPLE, join(drop, 'weitz.csv'));
  const viewer = { authorization: `Bearer ${token}` };
  const items = await eventually(
    async () => {
      const res = await fetch(`${site.url}/api/imports/insight`, { headers: viewer });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      const body = (await res.json()) as { items: ImportHistoryEntry[] };
      return body.items.length ? body.items : undefined;
    },
    60_000,
    30,
  );
  t.match(items, [{ status: 'imported', file: 'weitz.csv', rows: 16 }], 'a viewer token reads the history');
  t.equal((await fetch(`${site.url}/api/imports/insight`)).status, 401, 'no credentials → 401');
  t.equal((await fetch(`${site.url}/api/imports/insight`, { method: 'DELETE', headers: viewer })).status, 403, 'a viewer cannot write there');
});

t.test('history file: bounded on disk, torn last line dropped, survives reload', async (t) => {
  const dir = await tempDir(t, 'outpost-bms-hist-file-');
  const entry = (i: number): ImportHistoryEntry => ({
    status: i % 3 ? 'imported' : 'failed',
    file: `f${i}.csv`,
    storedAs: `f${i}.csv`,
    size: i,
    at: 1_700_000_000_000 + i,
    startedAt: 1_700_000_000_000 + i,
    ms: 0,
    rows: i,
    points: i,
    gaps: 0,
    datapoints: 1,
  });
  const h = new ImportHistory(dir, 10);
  await h.load();
  for (let i = 0; i < 45; i++) await h.add(entry(i));
  t.equal(h.size, 10, 'memory keeps the newest 10');
  const lines = (await readFile(h.path, 'utf8')).split('\n').filter(Boolean);
  t.ok(lines.length < 20, `the file is compacted (${lines.length} lines for 45 entries)`);
  t.same(
    h.recent(3).map((e) => e.file),
    ['f44.csv', 'f43.csv', 'f42.csv'],
  );

  // Power lost in the middle of an append: the half line is dropped, the rest kept.
  await appendFile(h.path, '{"status":"imported","file":"tor');
  const reloaded = new ImportHistory(dir, 10);
  t.equal(await reloaded.load(), 1, 'one torn line dropped');
  t.same(
    reloaded.recent(10).map((e) => e.file),
    h.recent(10).map((e) => e.file),
  );
  t.ok((await readFile(reloaded.path, 'utf8')).endsWith('\n'), 'rewritten without the torn line, so the next append starts on a new line');
  await reloaded.add(entry(99));
  const again = new ImportHistory(dir, 10);
  t.equal(await again.load(), 0);
  t.equal(again.recent(1)[0]!.file, 'f99.csv');
  t.same(await readdir(dir), ['import-history.jsonl'], 'no temp files left behind');
});
