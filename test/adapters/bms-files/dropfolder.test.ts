import t from 'tap';
import { appendFile, copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bmsFiles from '../../../adapters/bms-files/index.js';
import { defaultInsightPoints, writeInsightReport } from '../../../adapters/bms-files/simulator.js';
import { eventually, startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { FIXTURES, reportText } from './helpers.js';
import { tempDir } from '../../helpers/teardown.js';

const types = [bmsFiles as never];
const SAMPLE = FIXTURES + 'siemens-insight-trend-interval.csv';
const WEITZ_RULES = [
  { exact: 'OATEMP', id: 'weitz.outdoor.temperature', unit: '°F', description: 'Outdoor air temperature' },
  { glob: 'EV.*.V', id: 'weitz.{1}.valve', unit: '%' },
  { regex: '^EV\\.(\\w+)\\.RT$', id: 'weitz.{1}.temperature', unit: '°F' },
];

async function values(gw: TestGateway, id: string): Promise<Array<{ t: number; v: unknown; q?: string }>> {
  const res = await fetch(`${gw.httpUrl}/api/datapoints/${id}/values?from=2000-01-01T00:00:00Z&to=2030-01-01T00:00:00Z&limit=100000`);
  if (res.status !== 200) throw new Error(`${id}: HTTP ${res.status}`);
  return ((await res.json()) as { values: Array<{ t: number; v: unknown; q?: string }> }).values;
}

/** The adapter's info with its status; the counters these tests read are typed, the rest is there for t.match. */
interface ImporterInfo {
  [key: string]: unknown;
  files: number;
  rows: number;
  points: number;
  failures: number;
  unmappedPoints: string[];
  degraded?: boolean;
  message?: string;
  state: string;
}

async function info(gw: TestGateway, id: string): Promise<ImporterInfo> {
  const res = await fetch(`${gw.httpUrl}/api/adapters`);
  const items = ((await res.json()) as { items: Array<{ id: string; info?: Record<string, unknown>; degraded?: boolean; message?: string; state: string }> })
    .items;
  const a = items.find((i) => i.id === id)!;
  return { ...a.info, degraded: a.degraded, message: a.message, state: a.state } as ImporterInfo;
}

function source(dropDir: string, extra: Record<string, unknown> = {}) {
  return { id: 'insight', type: 'bms-files', format: 'siemens-insight', dropDir, pollMs: 30, stableMs: 150, points: WEITZ_RULES, ...extra };
}

t.test('real Insight sample dropped into the folder: stored, archived, counted; a second copy changes nothing stored', async (t) => {
  const drop = await tempDir(t, 'outpost-bms-drop-');
  const gw = await startTestGateway(t, { gateway: { timezone: 'America/Chicago' }, adapters: [source(drop)] }, { types });
  await copyFile(SAMPLE, join(drop, 'weitz-2018-01-02.csv'));
  await eventually(async () => (await readdir(join(drop, 'archive')).catch((): string[] => [])).includes('weitz-2018-01-02.csv'), 60_000, 50);
  t.same(await readdir(drop).then((n) => n.filter((x) => !['archive', 'failed'].includes(x))), [], 'nothing left in the drop folder');

  const oat = await values(gw, 'weitz.outdoor.temperature');
  t.equal(oat.length, 16);
  t.same(oat[0], { t: Date.UTC(2017, 11, 26, 6), v: -2.41 });
  const last = oat.at(-1)!;
  t.same(last, { t: Date.UTC(2018, 0, 2, 9, 30), v: null, q: 'bad' }, 'No Data is stored as a gap, not a zero');
  const dp = (await (await fetch(`${gw.httpUrl}/api/datapoints/weitz.rm102.valve`)).json()) as Record<string, unknown>;
  t.match(dp, { unit: '%', adapter: 'insight', meta: { bmsPoint: 'EV.RM102.V', trendDefinition: '5 minutes', format: 'siemens-insight' } });
  const auto = await values(gw, 'insight.ev.hx2.ena');
  t.equal(auto[0]!.v, 1, 'unmapped points are auto-registered; ON → 1');
  const loss = await values(gw, 'weitz.rm208.temperature');
  t.same(
    loss
      .filter((p) => p.q === 'bad' && p.t > Date.UTC(2017, 11, 29))
      .map((p) => p.t)
      .slice(0, 3),
    [Date.UTC(2017, 11, 29, 9, 30), Date.UTC(2017, 11, 29, 9, 45), Date.UTC(2017, 11, 29, 10)],
    'Data Loss is a gap',
  );

  const s1 = await eventually(async () => {
    const i = await info(gw, 'insight');
    return i.files === 1 ? i : undefined;
  });
  t.match(s1, { files: 1, rows: 16, points: 2592, gaps: 149, failures: 0, lastImport: { file: 'weitz-2018-01-02.csv', rows: 16 }, degraded: false });

  // The same export again (scripts re-send on doubt): same stored points, one more file counted.
  await copyFile(SAMPLE, join(drop, 'weitz-2018-01-02.csv'));
  await eventually(async () => (await info(gw, 'insight')).files === 2, 60_000, 50);
  t.equal((await values(gw, 'weitz.outdoor.temperature')).length, 16, 'a re-import overwrites, it does not duplicate');
  t.same(await values(gw, 'weitz.outdoor.temperature'), oat);
  const archived = await readdir(join(drop, 'archive'));
  t.equal(archived.length, 2, 'the second copy is archived under a new name, the first is kept');
});

t.test('a file still being written is not read until size and mtime are stable', async (t) => {
  const drop = await tempDir(t, 'outpost-bms-partial-');
  const gw = await startTestGateway(t, { gateway: { timezone: 'America/Chicago' }, adapters: [source(drop, { stableMs: 400 })] }, { types });
  const text = await readFile(SAMPLE, 'utf8');
  const file = join(drop, 'slow.csv');
  // A slow SMB copy: a chunk every 100 ms (less than stableMs), so the file never looks finished.
  const step = Math.ceil(text.length / 12);
  for (let i = 0; i < text.length; i += step) {
    await appendFile(file, text.slice(i, i + step));
    await new Promise((r) => setTimeout(r, 100));
    const st = await info(gw, 'insight');
    t.equal(st.files + st.failures, 0, `not read after ${i + step} bytes`);
  }
  t.equal((await stat(file)).size, Buffer.byteLength(text));
  await eventually(async () => (await info(gw, 'insight')).files === 1, 60_000, 50);
  t.equal((await info(gw, 'insight')).failures, 0, 'read once complete, never as a truncated file');
  t.equal((await values(gw, 'weitz.outdoor.temperature')).length, 16);
});

t.test('refused files go to failed/ with <name>.error.txt naming line and reason', async (t) => {
  const drop = await tempDir(t, 'outpost-bms-failed-');
  // A cut-off file is waited for completeWithinMs (a writer may still be at work), then refused.
  const gw = await startTestGateway(t, { gateway: { timezone: 'America/Chicago' }, adapters: [source(drop, { completeWithinMs: 1000 })] }, { types });
  const sample = (await readFile(SAMPLE, 'utf8')).split('\n');
  sample[171] = sample[171]!.replace('"12/26/2017"', '"12/32/2017"');
  const cases: Array<[string, string | Buffer, RegExp]> = [
    ['bad-date.csv', sample.join('\n'), /line: 172\nreason: unparseable date\/time "12\/32\/2017" "00:45:00"/],
    ['empty.csv', '', /reason: empty file/],
    ['junk.bin', Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 256)), /reason: .*(not a Siemens Insight|binary data|unterminated quote)/],
    [
      'truncated.csv',
      reportText({
        points: defaultInsightPoints(4),
        start: Date.UTC(2024, 0, 1, 6),
        rows: 10,
        intervalMinutes: 15,
        timeZone: 'America/Chicago',
        truncate: true,
      }),
      /reason: file ends without the "End of Report" trailer .*\(unchanged for 1 s\); nothing was stored/,
    ],
  ];
  for (const [name, content] of cases) await writeFile(join(drop, name), content);
  await eventually(async () => (await info(gw, 'insight')).failures === cases.length, 60_000, 50);
  const failed = await readdir(join(drop, 'failed'));
  for (const [name, , pattern] of cases) {
    t.ok(failed.includes(name), `${name} moved to failed/`);
    const report = await readFile(join(drop, 'failed', `${name}.error.txt`), 'utf8');
    t.match(report, pattern, `${name}.error.txt says why`);
    t.match(report, new RegExp(`^file: ${name.replace('.', '\\.')}\\n`));
  }
  const st = await info(gw, 'insight');
  t.equal(st.degraded, true);
  t.match(st.message, /last file failed/);
  // All or nothing per file (issue 21): no rows before the defect, no datapoints of refused files.
  t.same(
    gw.gateway.registry
      .list()
      .filter((d) => d.id.startsWith('weitz.') || d.id.startsWith('insight.'))
      .map((d) => d.id),
    [],
    'refused files left no datapoints (and so no rows) behind',
  );
});

t.test('unknown points: skip keeps going and reports them, fail refuses the file', async (t) => {
  const skipDir = await tempDir(t, 'outpost-bms-skip-');
  const failDir = await tempDir(t, 'outpost-bms-fail-');
  const gw = await startTestGateway(
    t,
    {
      gateway: { timezone: 'America/Chicago' },
      adapters: [
        { ...source(skipDir, { unknownPoints: 'skip' }), id: 'skipper' },
        { ...source(failDir, { unknownPoints: 'fail', points: [{ exact: 'OATEMP', id: 'strict.oat' }] }), id: 'strict' },
      ],
    },
    { types },
  );
  await copyFile(SAMPLE, join(skipDir, 'a.csv'));
  await copyFile(SAMPLE, join(failDir, 'a.csv'));
  await eventually(async () => (await info(gw, 'skipper')).files === 1 && (await info(gw, 'strict')).failures === 1, 60_000, 50);
  const skipper = await info(gw, 'skipper');
  t.ok(skipper.unmappedPoints.includes('BIGOAT'));
  t.ok(skipper.unmappedPoints.includes('EV.HX2.ENA'));
  t.equal((await fetch(`${gw.httpUrl}/api/datapoints/skipper.bigoat`)).status, 404, 'skipped points are not registered');
  const report = await readFile(join(failDir, 'failed', 'a.csv.error.txt'), 'utf8');
  t.match(report, /line: 168\nreason: point "EV\.CUH2\.V" matches no mapping rule \(unknownPoints: fail\)/);
  t.equal((await fetch(`${gw.httpUrl}/api/datapoints/strict.oat`)).status, 404, 'nothing registered from a refused header');
});

t.test('an import interrupted by a restart resumes from the journal without loss or double counting', async (t) => {
  const dataDir = await tempDir(t, 'outpost-bms-data-');
  const drop = await tempDir(t, 'outpost-bms-resume-');
  const points = defaultInsightPoints(40);
  const rows = 600;
  const start = Date.UTC(2024, 0, 1, 6);
  const cfg = { gateway: { timezone: 'America/Chicago' }, adapters: [source(drop, { batchSize: 400, points: [], stableMs: 50 })] };
  const file = await writeInsightReport(tmpdir(), `resume-${process.pid}.csv`, { points, start, rows, intervalMinutes: 15, timeZone: 'America/Chicago' });
  t.teardown(() => rm(file.path, { force: true }));

  const first = await startTestGateway(t, cfg, { types, dataDir });
  await copyFile(file.path, join(drop, 'big.csv'));
  await eventually(async () => (await info(first, 'insight')).rows > 0, 20_000, 5);
  await first.stop();
  const journal = JSON.parse(await readFile(join(dataDir, 'adapters', 'insight', 'import-journal.json'), 'utf8'));
  const pending = journal.inProgress[join(drop, 'big.csv')];
  t.comment(pending ? `stopped at line ${pending.committedLine} of ${rows + 47}` : 'import finished before the stop');

  const second = await startTestGateway(t, cfg, { types, dataDir });
  await eventually(async () => (await info(second, 'insight')).files === 1, 90_000, 50);
  const st = await info(second, 'insight');
  t.equal(st.rows, rows, 'every row counted exactly once across the restart');
  t.equal(st.points, rows * points.length);
  const stored = await values(second, 'insight.oatemp');
  t.equal(stored.length, rows, 'no row lost');
  t.equal(new Set(stored.map((p) => p.t)).size, rows);
  t.same(await readdir(join(drop, 'archive')), ['big.csv']);
});

t.test('resume skips exactly the rows the journal says are stored', async (t) => {
  const dataDir = await tempDir(t, 'outpost-bms-data2-');
  const drop = await tempDir(t, 'outpost-bms-resume2-');
  const points = defaultInsightPoints(3);
  await mkdir(join(dataDir, 'adapters', 'insight'), { recursive: true });
  const path = join(drop, 'r.csv');
  await writeFile(path, reportText({ points, start: Date.UTC(2024, 0, 1, 6), rows: 10, intervalMinutes: 15, timeZone: 'America/Chicago' }));
  const st = await stat(path);
  // Header is lines 1–9 (key, 3 points, 3 settings, blank, column header): rows are lines 10–19.
  const journal = {
    version: 1,
    counters: { files: 0, rows: 4, points: 12, gaps: 0, failures: 0 },
    inProgress: { [path]: { size: st.size, mtimeMs: st.mtimeMs, committedLine: 13, rows: 4, points: 12, gaps: 0, startedAt: 0 } },
  };
  await writeFile(join(dataDir, 'adapters', 'insight', 'import-journal.json'), JSON.stringify(journal));
  const gw = await startTestGateway(t, { gateway: { timezone: 'America/Chicago' }, adapters: [source(drop, { points: [] })] }, { types, dataDir });
  await eventually(async () => (await info(gw, 'insight')).files === 1, 60_000, 50);
  const stored = await values(gw, 'insight.oatemp');
  t.same(
    stored.map((p) => p.t),
    Array.from({ length: 6 }, (_, i) => Date.UTC(2024, 0, 1, 7) + i * 900_000),
    'rows 5–10 stored, rows 1–4 taken as already stored',
  );
  t.match(await info(gw, 'insight'), { rows: 10, points: 30, files: 1, lastImport: { rows: 10 } });
});

t.test('the simulator writes realistic Insight reports that the adapter imports', async (t) => {
  const drop = await tempDir(t, 'outpost-bms-sim-');
  const gw = await startTestGateway(
    t,
    { gateway: { timezone: 'Europe/Berlin' }, adapters: [source(drop, { points: [], simulator: { everyMs: 1000, points: 12, rows: 8 } })] },
    { types },
  );
  await eventually(async () => (await info(gw, 'insight')).files >= 1, 60_000, 50);
  const st = await info(gw, 'insight');
  t.equal(st.failures, 0);
  t.equal(st.rows, 8);
  const oat = await values(gw, 'insight.oatemp');
  t.ok(oat.length >= 7 && oat.every((p) => typeof p.v === 'number' || p.v === null));
  t.ok(oat.at(-1)!.t <= Date.now() && oat.at(-1)!.t > Date.now() - 30 * 60_000, 'newest row is the current interval, in the right zone');
});
