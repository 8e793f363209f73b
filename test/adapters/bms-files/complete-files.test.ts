/**
 * Issue 21, item 2 and the crash loop of item 1, against the real `outpost start`:
 * a file is imported once complete, never partially, and a file the gateway dies importing is
 * quarantined instead of killing it at every restart.
 *
 * Before: an ALC file whose writer paused longer than stableMs was imported with 7 of 20 rows
 * and archived (the rest went into the archived copy, never imported); an Insight file in the
 * same situation went to failed/ while still being written; an ALC file cut two characters
 * before its end was "imported" with 65.0 stored as 6; a refused file left datapoints behind;
 * a re-import that ran out of memory was resumed at every restart and died again.
 */
import t from 'tap';
import type { Test } from 'tap';
import { open, readdir, readFile, writeFile, appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnOutpost, type OutpostProcess, processYamlHead } from '../../helpers/process.js';
import { localApi } from '../../helpers/local-api.js';
import { eventually } from '../../helpers/gateway.js';
import { freePort } from '../../helpers/reverse-proxy.js';
import { hashToken } from '../../../runtime/auth/passwords.js';
import { defaultInsightPoints, insightReportLines } from '../../../adapters/bms-files/simulator.js';
import { tempDir } from '../../helpers/teardown.js';

const TOKEN = 'complete-files-upload-token';

/** An ALC wide trend export: 20 rows of two points, ISO times; row 8 of point "AHU1 SAT" is 65.0. */
function alcRows(): string[] {
  const rows = ['Time,AHU1 SAT,Zone 101 Temp'];
  for (let i = 0; i < 20; i++)
    rows.push(`${new Date(Date.UTC(2024, 2, 1, 0, 15 * i)).toISOString()},${i === 7 ? '65.0' : (50 + i).toFixed(1)},${(70 + i / 10).toFixed(1)}`);
  return rows;
}

interface Site {
  dataDir: string;
  alcDrop: string;
  insightDrop: string;
  httpPort: number;
  config: string;
}

async function site(t: Test): Promise<Site> {
  const root = await tempDir(t, 'outpost-complete-');
  const dataDir = join(root, 'data');
  const alcDrop = join(root, 'alc');
  const insightDrop = join(root, 'insight');
  const httpPort = await freePort();
  const config = join(root, 'outpost.yaml');
  await writeFile(
    config,
    `${processYamlHead({ id: 'complete-files', timezone: 'America/Chicago', dataDir, httpPort })}adapters:
  - { id: alc, type: bms-files, format: alc-webctrl, dropDir: ${alcDrop}, pollMs: 100, stableMs: 500, completeWithinMs: 4000, upload: { tokenHashes: ["${hashToken(TOKEN)}"] } }
  - { id: insight, type: bms-files, format: siemens-insight, dropDir: ${insightDrop}, pollMs: 100, stableMs: 500, completeWithinMs: 4000, points: [{ exact: OATEMP, id: weitz.oat }] }
`,
  );
  return { dataDir, alcDrop, insightDrop, httpPort, config };
}

function start(t: Test, s: Site): OutpostProcess {
  const p = spawnOutpost(['start', '-c', s.config]);
  t.teardown(() => p.child.kill('SIGKILL'));
  return p;
}

type HistoryItem = { status: string; file: string; rows: number; reason?: string };

t.test('writers that pause, files cut off: imported whole once complete, or refused with nothing stored', async (t) => {
  const s = await site(t);
  const gw = start(t, s);
  await gw.ready;
  const api = localApi(s.dataDir);
  const history = async (id: string): Promise<HistoryItem[]> => ((await (await api(`/api/imports/${id}`)).json()) as { items: HistoryItem[] }).items;
  const values = async (id: string): Promise<Array<{ t: number; v: number }>> => {
    const res = await api(`/api/datapoints/${id}/values?from=2024-01-01T00:00:00Z&to=2025-01-01T00:00:00Z&limit=1000`);
    return res.status === 200 ? ((await res.json()) as { values: Array<{ t: number; v: number }> }).values : [];
  };
  const rows = alcRows();
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

  // 1. ALC writer pausing in the middle of a row (the cut "6" of "65.0"): not imported until complete.
  const midRow = join(s.alcDrop, 'mid-row.csv');
  await writeFile(midRow, rows.slice(0, 8).join('\r\n') + '\r\n' + rows[8]!.slice(0, rows[8]!.indexOf(',') + 2));
  await pause(2500);
  t.same(await history('alc'), [], 'a file ending in a cut-off row is not imported while its writer pauses');
  t.ok((await readdir(s.alcDrop)).includes('mid-row.csv'), 'it stays in the drop folder');
  await appendFile(midRow, rows[8]!.slice(rows[8]!.indexOf(',') + 2) + '\r\n' + rows.slice(9).join('\r\n') + '\r\n');
  await eventually(async () => (await history('alc')).some((h) => h.file === 'mid-row.csv'), 20_000, 100);
  t.match((await history('alc'))[0], { status: 'imported', file: 'mid-row.csv', rows: 20 }, 'imported whole once the writer finished');
  t.equal((await values('alc.ahu1_sat')).find((p) => p.t === Date.UTC(2024, 2, 1, 1, 45))?.v, 65, 'row 8 stored as 65.0, not cut');

  // 2. ALC writer pausing at a row boundary (nothing in the content can tell): imported, then
  // the rows it writes into the archived copy bring the file back, imported whole.
  const boundary = join(s.alcDrop, 'boundary.csv');
  const writer = await open(boundary, 'w');
  t.teardown(() => writer.close().catch(() => undefined));
  const second = rows.map((r, i) => (i === 0 ? r : r.replace('2024-03-01', '2024-03-02')));
  await writer.write(second.slice(0, 8).join('\r\n') + '\r\n');
  await eventually(async () => (await readdir(join(s.alcDrop, 'archive')).catch((): string[] => [])).includes('boundary.csv'), 20_000, 100);
  await writer.write(second.slice(8).join('\r\n') + '\r\n'); // the writer's handle now points into archive/
  await writer.close();
  await eventually(async () => (await history('alc')).some((h) => h.file === 'boundary.csv' && h.rows === 20), 20_000, 100);
  t.pass('the appended rows brought the file back: imported again with all 20 rows');
  const day2 = (await values('alc.ahu1_sat')).filter((p) => p.t >= Date.UTC(2024, 2, 2));
  t.equal(day2.length, 20, 'all 20 rows of the paused writer are stored');
  t.match(gw.stdout(), /rows were written to a BMS file after it was imported/, 'and the log says what happened and what to do');

  // 3. Insight writer pausing before the trailer: waited for, not refused.
  const insight = [
    ...insightReportLines({ points: defaultInsightPoints(4), start: Date.UTC(2024, 0, 1, 6), rows: 10, intervalMinutes: 15, timeZone: 'America/Chicago' }),
  ];
  const insightPath = join(s.insightDrop, 'insight.csv');
  await writeFile(insightPath, insight.slice(0, -1).join('\r\n') + '\r\n');
  await pause(2500);
  t.same(await readdir(join(s.insightDrop, 'failed')).catch((): string[] => []), [], 'an Insight file without its End of Report yet is not moved to failed/');
  await appendFile(insightPath, insight.at(-1)! + '\r\n');
  await eventually(async () => (await history('insight')).some((h) => h.status === 'imported' && h.rows === 10), 20_000, 100);
  t.pass('imported once the trailer arrived');

  // 4. A file cut two characters before its end: "65.0" would be stored as "6".
  const cut = rows
    .slice(0, 9)
    .join('\r\n')
    .slice(0, -2)
    .replace(/2024-03-01/g, '2024-03-05');
  const form = new FormData();
  form.append('file', new Blob([cut]), 'cut.csv');
  const up = await fetch(`http://127.0.0.1:${s.httpPort}/upload/alc`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: form });
  t.equal(up.status, 200, 'the upload is taken');
  await eventually(async () => (await history('alc')).some((h) => h.file.endsWith('cut.csv')), 20_000, 100);
  t.match(
    (await history('alc')).find((h) => h.file.endsWith('cut.csv')),
    { status: 'failed', rows: 0, reason: /cut off/ },
    'an uploaded file whose last row is cut off is refused at once (an upload is complete), nothing stored',
  );
  await writeFile(join(s.alcDrop, 'cut.csv'), cut);
  await eventually(async () => (await readdir(join(s.alcDrop, 'failed')).catch((): string[] => [])).includes('cut.csv'), 20_000, 100);
  const report = await readFile(join(s.alcDrop, 'failed', 'cut.csv.error.txt'), 'utf8');
  t.match(report, /cut off.*unchanged for 4 s.*nothing was stored/s, 'a dropped one is refused once it stayed cut off for completeWithinMs');
  t.equal((await values('alc.ahu1_sat')).filter((p) => p.t >= Date.UTC(2024, 2, 5)).length, 0, 'no row of the cut files is stored');

  gw.child.kill('SIGTERM');
  t.equal((await gw.exited).code, 0, 'graceful stop');
});

t.test('a file the gateway dies importing is quarantined after 3 attempts, not resumed forever', async (t) => {
  const s = await site(t);
  // ~14 MB: pass 1 alone takes long enough to be interrupted.
  const lines = insightReportLines({
    points: defaultInsightPoints(200),
    start: Date.UTC(2023, 0, 1, 6),
    rows: 12_000,
    intervalMinutes: 1,
    timeZone: 'America/Chicago',
  });
  await mkdir(s.insightDrop, { recursive: true });
  const fh = await open(join(s.insightDrop, 'huge.tmp'), 'w');
  for (const line of lines) await fh.write(line + '\r\n');
  await fh.close();
  const { rename } = await import('node:fs/promises');
  await rename(join(s.insightDrop, 'huge.tmp'), join(s.insightDrop, 'huge.csv'));
  const attemptsFile = join(s.dataDir, 'adapters', 'insight', 'import-attempts.json');
  const attempts = async (): Promise<number> =>
    Object.values(JSON.parse(await readFile(attemptsFile, 'utf8').catch(() => '{}')) as Record<string, number>)[0] ?? 0;

  // Three starts, each killed (as the OOM killer or a crash would) while importing the file.
  for (let n = 1; n <= 3; n++) {
    const gw = start(t, s);
    await eventually(async () => (await attempts()) >= n, 90_000, 10);
    gw.child.kill('SIGKILL');
    await gw.exited;
    t.ok((await readdir(s.insightDrop)).includes('huge.csv'), `attempt ${n} died: the file is still in the drop folder`);
  }
  const gw = start(t, s);
  await gw.ready;
  await eventually(async () => (await readdir(join(s.insightDrop, 'failed')).catch((): string[] => [])).includes('huge.csv'), 30_000, 100);
  const report = await readFile(join(s.insightDrop, 'failed', 'huge.csv.error.txt'), 'utf8');
  t.match(report, /quarantined: 3 imports of this file never finished/, 'the fourth start quarantines it with the reason');
  const api = localApi(s.dataDir);
  const items = ((await (await api('/api/imports/insight')).json()) as { items: HistoryItem[] }).items;
  t.match(items[0], { status: 'failed', file: 'huge.csv', reason: /quarantined/ }, 'the history says so');
  t.equal(gw.child.exitCode, null, 'and the gateway runs on');
  gw.child.kill('SIGTERM');
  await gw.exited;
});
