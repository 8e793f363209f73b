/**
 * Issue 21, item 1, against the real `outpost start` with the Pi heap flags of the README
 * (`--max-old-space-size=256 --max-semi-space-size=1`, PI_HEAP_NODE_ARGS): a 50 MB Siemens
 * Insight report dropped twice, the second time every reading an overwrite of a stored one,
 * then a corrected export of its first 4,000 rows (every number changed).
 *
 * Before: a re-import read and held everything it overwrote (every chunk and rollup bucket a
 * commit of 50,000 points touched, all datapoints at once): the 6.2 MB report of the issue died
 * with "JavaScript heap out of memory" after ~17 s; this test's 50 MB report did the same
 * (storage/DESIGN.md "Overwrites"). Now all three complete and the process stays under
 * ANON_BOUND_MB and RSS_BOUND_MB (adapters/bms-files/README.md "Limits"), sampled every 250 ms
 * from /proc/<pid>/status.
 *
 * The gateway runs from the sources through tsx (OUTPOST_TEST_FROM_SOURCE), whose loader thread
 * adds ~27 MB (idle: RssAnon 79 MB from the sources, 52 MB from a build) that the built gateway
 * does not have: the bounds hold with room for that.
 */
import t from 'tap';
import { copyFile, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PI_HEAP_NODE_ARGS, spawnOutpost, processYamlHead } from '../../helpers/process.js';
import { localApi } from '../../helpers/local-api.js';
import { eventually } from '../../helpers/gateway.js';
import { freePort } from '../../helpers/reverse-proxy.js';
import { defaultInsightPoints, writeInsightReport } from '../../../adapters/bms-files/simulator.js';
import type { ImportHistoryEntry } from '../../../adapters/bms-files/history.js';
import { tempDir } from '../../helpers/teardown.js';

// The sources, not a build in dist/ that may be older than them.
process.env.OUTPOST_TEST_FROM_SOURCE = '1';
// ~90 s on an idle 2-core machine; a loaded one took 150–190 s.
t.setTimeout(420_000);

/**
 * Bounds over all three imports (adapters/bms-files/README.md "Limits"): the gateway's own
 * memory (RssAnon: V8 heap, LevelDB, the rest of the process) and its whole RSS (VmHWM), which
 * also counts the pages of LevelDB's memory-mapped table files the imports read (file-backed,
 * given back under memory pressure; they grow with the tables read, up to the database's size).
 * Measured on the shared 2-core test machine: RssAnon 227–256 MB, VmHWM ~395 MB after the
 * re-import and 475 MB after the corrected export. Before, the re-import died at the 256 MB
 * heap limit.
 */
const ANON_BOUND_MB = 320;
const RSS_BOUND_MB = 640;
/** Report size: 160 points × ~40,600 rows of 15 min values (~6.5 million readings). */
const REPORT_MB = Number(process.env.REIMPORT_TEST_MB ?? 50);
const POINTS = 160;
/** Rows of the corrected export imported last (every number changed): ~5 MB. */
const CHANGED_ROWS = Number(process.env.REIMPORT_TEST_CHANGED_ROWS ?? 4000);
const ROW_BYTES = 1290; // 160 cells of "12.34" with quotes and commas, plus date and time (bench/bms-files.bench.ts)

/** VmRSS, VmHWM, RssAnon and RssFile of a process, in MB (undefined once it is gone). */
async function memoryOf(pid: number): Promise<{ rss: number; hwm: number; anon: number; file: number } | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024, anon: kb('RssAnon') / 1024, file: kb('RssFile') / 1024 };
  } catch {
    return undefined;
  }
}

t.test(
  `a ${REPORT_MB} MB Insight report imported twice (every reading overwritten), then a corrected export, under the Pi heap flags: all complete, memory bounded`,
  async (t) => {
    const root = await tempDir(t, 'outpost-reimport-');
    const dataDir = join(root, 'data');
    const drop = join(root, 'drop');
    const config = join(root, 'outpost.yaml');
    await writeFile(
      config,
      `${processYamlHead({ id: 'reimport-memory', timezone: 'America/Chicago', dataDir, log: 'warn', httpPort: await freePort() })}adapters:
  - { id: insight, type: bms-files, format: siemens-insight, dropDir: ${drop}, pollMs: 200, stableMs: 300 }
`,
    );
    const rows = Math.round((REPORT_MB * 1024 * 1024) / ROW_BYTES);
    const report = await writeInsightReport(root, 'report.csv', {
      points: defaultInsightPoints(POINTS),
      start: Date.UTC(2022, 0, 1, 6),
      rows,
      intervalMinutes: 15,
      timeZone: 'America/Chicago',
      gapRatio: 0.01,
    });
    const size = (await stat(report.path)).size;
    t.comment(`report: ${POINTS} points × ${rows} rows, ${(size / 1024 / 1024).toFixed(1)} MB`);

    const gw = spawnOutpost(['start', '-c', config], { nodeArgs: PI_HEAP_NODE_ARGS });
    t.teardown(() => gw.child.kill('SIGKILL'));
    await gw.ready;
    const pid = gw.child.pid!;
    let peakRss = 0;
    let peakAnon = 0;
    const trace: string[] = [];
    const sampler = setInterval(() => {
      void memoryOf(pid).then((m) => {
        if (!m) return;
        peakRss = Math.max(peakRss, m.rss);
        peakAnon = Math.max(peakAnon, m.anon);
        if (trace.length < 2000) trace.push(`${m.rss.toFixed(0)}/${m.anon.toFixed(0)}`);
      });
    }, 250);
    t.teardown(() => clearInterval(sampler));
    const idle = (await memoryOf(pid))!.rss;

    const api = localApi(dataDir);
    // The V8 heap as the gateway reports it (/metrics), for the figures.
    let peakHeap = 0;
    const heapSampler = setInterval(() => {
      void api('/metrics')
        .then((res) => res.text())
        .then((text) => {
          const used = /^outpost_nodejs_heap_size_used_bytes (\S+)/m.exec(text);
          if (used) peakHeap = Math.max(peakHeap, Number(used[1]) / 1024 / 1024);
        })
        .catch(() => undefined);
    }, 1000);
    t.teardown(() => clearInterval(heapSampler));
    const history = async (): Promise<ImportHistoryEntry[]> =>
      ((await (await api('/api/imports/insight?limit=10')).json()) as { items: ImportHistoryEntry[] }).items;
    // Into the drop folder under a name the watcher skips, then renamed: it never sees half a file.
    const dropAs = async (name: string, path = report.path): Promise<ImportHistoryEntry> => {
      await copyFile(path, join(drop, `${name}.tmp`));
      await rename(join(drop, `${name}.tmp`), join(drop, name));
      let done: ImportHistoryEntry | undefined;
      await eventually(
        async () => {
          if (gw.child.exitCode !== null || gw.child.signalCode !== null) throw new Error(`the gateway died importing ${name}:\n${gw.stderr().slice(-2000)}`);
          done = (await history()).find((h) => h.file === name);
          return done !== undefined;
        },
        200_000,
        250,
      );
      return done!;
    };

    const first = await dropAs('first.csv');
    t.comment(`first import: ${first.ms} ms, ${first.points} points; peak RSS so far ${peakRss.toFixed(0)} MB (idle ${idle.toFixed(0)} MB)`);
    const second = await dropAs('second.csv');
    t.comment(
      `re-import: ${second.ms} ms (×${(second.ms / first.ms).toFixed(2)} the first); peak RSS ${peakRss.toFixed(0)} MB, RssAnon ${peakAnon.toFixed(0)} MB, V8 heap used ${peakHeap.toFixed(0)} MB`,
    );

    // A corrected export: the first CHANGED_ROWS rows with every number changed. The same file
    // again stores no reading anew (storage skips what is stored as it is); this one overwrites
    // every number and recomputes every rollup bucket it lands in, in the same bounded memory.
    const outdoor = async (at: number): Promise<number | undefined> => {
      const iso = new Date(at).toISOString();
      const res = (await (await api(`/api/datapoints/insight.oatemp/values?from=${iso}&to=${iso}`)).json()) as { values: Array<{ v: number }> };
      return res.values[0]?.v;
    };
    const probe = Date.UTC(2022, 0, 1, 6) + 100 * 15 * 60_000;
    const before = await outdoor(probe);
    const corrected = await writeInsightReport(root, 'corrected.csv', {
      points: defaultInsightPoints(POINTS),
      start: Date.UTC(2022, 0, 1, 6),
      rows: CHANGED_ROWS,
      intervalMinutes: 15,
      timeZone: 'America/Chicago',
      gapRatio: 0.01,
    });
    const text = await readFile(corrected.path, 'utf8');
    await writeFile(
      corrected.path,
      text.replace(/"(-?\d+\.\d\d)"/g, (_all, v: string) => `"${(Number(v) + 1).toFixed(2)}"`),
    );
    const third = await dropAs('corrected.csv', corrected.path);
    const end = (await memoryOf(pid))!;
    clearInterval(sampler);
    clearInterval(heapSampler);
    t.comment(
      `corrected export (${CHANGED_ROWS} rows, every number changed): ${third.ms} ms; peak RSS ${Math.max(peakRss, end.hwm).toFixed(0)} MB (VmHWM), now ${end.rss.toFixed(0)} MB; peak RssAnon ${peakAnon.toFixed(0)} MB, RssFile now ${end.file.toFixed(0)} MB; peak V8 heap used ${peakHeap.toFixed(0)} MB`,
    );
    t.comment(`RSS/RssAnon every 250 ms (MB): ${trace.join(' ')}`);

    t.match(first, { status: 'imported', rows }, 'the first import completes with every row');
    t.match(second, { status: 'imported', rows, points: first.points }, 'the re-import (every reading an overwrite) completes with every row');
    t.match(third, { status: 'imported', rows: CHANGED_ROWS }, 'the corrected export (every number an overwrite with a new value) completes');
    t.equal(await outdoor(probe), before! + 1, 'its values are stored');
    t.equal(gw.child.exitCode, null, 'the gateway is alive');
    t.ok(peakAnon < ANON_BOUND_MB, `peak RssAnon ${peakAnon.toFixed(0)} MB is under ${ANON_BOUND_MB} MB`);
    t.ok(end.hwm < RSS_BOUND_MB, `peak RSS (VmHWM) ${end.hwm.toFixed(0)} MB is under ${RSS_BOUND_MB} MB`);
    // What was imported is there: the last row's outdoor temperature.
    const values = (await (await api(`/api/datapoints/insight.oatemp/values?from=2021-01-01T00:00:00Z&to=2030-01-01T00:00:00Z&order=desc&limit=1`)).json()) as {
      values: Array<{ t: number }>;
    };
    t.equal(values.values[0]?.t, Date.UTC(2022, 0, 1, 6) + (rows - 1) * 15 * 60_000, 'the newest reading is the report’s last row');
  },
);
