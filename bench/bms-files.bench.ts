/**
 * Siemens Insight import speed and memory.
 *
 *   node --import tsx bench/bms-files.bench.ts            (5 MB report, ~1 min)
 *   node --max-old-space-size=256 --max-semi-space-size=1 --import tsx bench/bms-files.bench.ts  (the Pi heap flags of the main README)
 *   BENCH_BIG=1 node --import tsx bench/bms-files.bench.ts  (adds a 50 MB report for the memory comparison)
 *   BENCH_FULL=1 node --import tsx bench/bms-files.bench.ts (adds the SQLite peer)
 *
 * Prints, for one generated report of ~160 points:
 * - streaming parse (lines → InsightParser) vs a naive baseline in the same run (whole file in
 *   memory, split on newlines and commas, parseFloat): rows/s, time, ratio, peak RSS growth;
 * - the adapter pipeline without storage (parse → map → batches of 5000 → a counting target),
 *   which is what this adapter adds on top of storage;
 * - the same pipeline writing straight into the gateway's LevelStore (`store.write`: storage
 *   alone, no ingest validation, no bus), then the same report again with every value changed
 *   (every reading an overwrite with a new value), and with BENCH_FULL=1 into SQLite
 *   (bench/peers/sqlite.ts: the same readings, outbox records and rollup upserts, one
 *   transaction per batch), as the peers of
 * - the full import of the 5 MB report into a real gateway (LevelDB with fsync, the adapter's
 *   batches of DEFAULT_BATCH_SIZE points) through the drop folder, as the adapter reports it
 *   (`lastImport.ms`), then the same file dropped again (every reading an overwrite with the
 *   value it has: issue 21's re-import), with each one's peak RSS growth and their ratio.
 * Each line also gives the process CPU time (all threads, getrusage), which a shared machine
 * disturbs less than wall time; the ratios compare runs of this one process.
 */
import { copyFile, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bmsFiles, { DEFAULT_BATCH_SIZE } from '../adapters/bms-files/index.js';
import { readLines } from '../adapters/bms-files/lines.js';
import { InsightParser } from '../adapters/bms-files/siemens-insight.js';
import { importFile } from '../adapters/bms-files/importer.js';
import { PointMapper } from '../adapters/bms-files/mapping.js';
import { defaultInsightPoints, writeInsightReport } from '../adapters/bms-files/simulator.js';
import { eventually, startTestGateway } from '../test/helpers/gateway.js';
import type { PointRecord } from '../storage/store.js';
import { openSqlite, sqliteWriter } from './peers/sqlite.js';

const POINTS = 160;
const ZONE = 'America/Chicago';

async function measure<T>(fn: () => Promise<T>): Promise<{ ms: number; peakRssMb: number; peakMb: number; result: T }> {
  (globalThis as { gc?: () => void }).gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 2);
  const t0 = performance.now();
  const result = await fn();
  const ms = performance.now() - t0;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  return { ms, peakRssMb: (peak - before) / 1024 / 1024, peakMb: peak / 1024 / 1024, result };
}

async function streaming(path: string): Promise<number> {
  const parser = new InsightParser({ timeZone: ZONE });
  let n = 0;
  let sum = 0;
  const sink = {
    point() {},
    row() {},
    sample(_i: number, v: number | null) {
      if (v !== null) sum += v;
    },
    rowEnd() {},
  };
  for await (const line of readLines(createReadStream(path, { highWaterMark: 256 * 1024 }))) parser.line(line, ++n, sink);
  parser.end(n);
  if (!Number.isFinite(sum)) throw new Error('bad sum');
  return parser.stats.rows;
}

/** What a quick script would do: whole file in memory, split everything, parseFloat. */
async function naive(path: string): Promise<number> {
  const text = await readFile(path, 'utf8');
  const lines = text.split(/\r?\n/);
  const header = lines.findIndex((l) => l.startsWith('"<>Date"'));
  const table = lines
    .slice(header + 1)
    .filter((l) => l.startsWith('"') && !l.includes('End of Report'))
    .map((l) => l.split(',').map((c) => c.replace(/"/g, '')));
  let sum = 0;
  for (const row of table) for (let i = 2; i < row.length; i++) sum += parseFloat(row[i]!) || 0;
  if (!Number.isFinite(sum)) throw new Error('bad sum');
  return table.length;
}

/** The adapter's own work: parse, map, batch; storage replaced by a counter. */
async function pipeline(path: string): Promise<number> {
  let stored = 0;
  const result = await importFile({
    path,
    parser: new InsightParser({ timeZone: ZONE }),
    mapper: new PointMapper([], 'register', 'bench'),
    target: { register: async () => undefined, publishValues: async (p) => (stored += p.length), now: () => Date.now() },
    describe: (_p, m) => ({ id: m.id }),
    batchSize: 5000,
    registered: new Set(),
    checkpoint: async () => undefined,
  });
  if (stored !== result.points) throw new Error('lost points');
  return result.rows;
}

/** The adapter pipeline writing straight into storage (LevelStore, or the SQLite peer): the storage part of an import, alone. `change` alters every value (an overwrite with new values). */
async function storeOnly(path: string, write: (points: PointRecord[]) => Promise<unknown> | unknown, prefix: string, change = false): Promise<number> {
  const changed = (points: readonly PointRecord[]): PointRecord[] =>
    points.map((p) => (typeof p.v === 'number' ? { ...p, v: p.v + 0.5 } : typeof p.v === 'boolean' ? { ...p, v: !p.v } : p));
  const result = await importFile({
    path,
    parser: new InsightParser({ timeZone: ZONE }),
    mapper: new PointMapper([], 'register', prefix),
    target: {
      register: async () => undefined,
      publishValues: async (p) => {
        await write(change ? changed(p as PointRecord[]) : (p as PointRecord[]));
        return p.length;
      },
      now: () => Date.now(),
    },
    describe: (_p, m) => ({ id: m.id }),
    batchSize: DEFAULT_BATCH_SIZE,
    registered: new Set(),
    checkpoint: async () => undefined,
  });
  return result.points;
}

const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

async function makeReport(dir: string, targetBytes: number, rowsOverride?: number): Promise<{ path: string; bytes: number; rows: number }> {
  const rowBytes = 1290; // 160 cells of "12.34" plus date and time, measured
  const rows = rowsOverride ?? Math.round(targetBytes / rowBytes);
  return writeInsightReport(dir, `bench-${rows}.csv`, {
    points: defaultInsightPoints(POINTS),
    start: Date.UTC(2023, 0, 1, 6),
    rows,
    intervalMinutes: 15,
    timeZone: ZONE,
    gapRatio: 0.01,
  });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-bms-'));
  const teardowns: Array<() => unknown> = [];
  try {
    const sizes = [5 * 1024 * 1024, ...(process.env.BENCH_BIG ? [50 * 1024 * 1024] : [])];
    for (const size of sizes) {
      const report = await makeReport(dir, size);
      const mb = (await stat(report.path)).size / 1024 / 1024;
      console.log(`\nInsight report: ${POINTS} points × ${report.rows} rows, ${mb.toFixed(1)} MB`);
      // Warm-up (JIT, page cache), then measure each way once.
      await streaming(report.path);
      await naive(report.path);
      const s = await measure(() => streaming(report.path));
      const b = await measure(() => naive(report.path));
      if (s.result !== b.result) throw new Error(`row counts differ: ${s.result} vs ${b.result}`);
      const rate = (r: { ms: number }) => Math.round(report.rows / (r.ms / 1000));
      console.log(
        `  parse, streaming : ${s.ms.toFixed(0).padStart(6)} ms  ${rate(s).toLocaleString('en').padStart(9)} rows/s  peak RSS +${s.peakRssMb.toFixed(1)} MB`,
      );
      console.log(
        `  parse, naive     : ${b.ms.toFixed(0).padStart(6)} ms  ${rate(b).toLocaleString('en').padStart(9)} rows/s  peak RSS +${b.peakRssMb.toFixed(1)} MB`,
      );
      console.log(`  streaming/naive  : time ×${(s.ms / b.ms).toFixed(2)}, peak RSS growth ×${(s.peakRssMb / Math.max(b.peakRssMb, 0.1)).toFixed(2)}`);
      const p = await measure(() => pipeline(report.path));
      console.log(
        `  parse+map+batch  : ${p.ms.toFixed(0).padStart(6)} ms  ${rate(p).toLocaleString('en').padStart(9)} rows/s  peak RSS +${p.peakRssMb.toFixed(1)} MB  (${Math.round((report.rows * POINTS) / (p.ms / 1000)).toLocaleString('en')} points/s, no storage)`,
      );
    }

    // Full import through the adapter into a real gateway (LevelDB, fsync on).
    const report = await makeReport(dir, 5 * 1024 * 1024);
    const drop = join(dir, 'drop');
    const gw = await startTestGateway(
      { teardown: (fn) => teardowns.push(fn) },
      {
        log: { level: 'warn' },
        gateway: { timezone: ZONE },
        adapters: [{ id: 'insight', type: 'bms-files', format: 'siemens-insight', dropDir: drop, pollMs: 20, stableMs: 0 }],
      },
      { types: [bmsFiles as never] },
    );
    // First import registers the datapoints; the second is the same file again (every reading an overwrite).
    console.log(
      `\nInsight report for the storage runs: ${POINTS} points × ${report.rows} rows, ${((await stat(report.path)).size / 1024 / 1024).toFixed(2)} MB`,
    );
    const cpu0 = process.cpuUsage();
    const store = gw.gateway.store;
    const direct = await measure(() => storeOnly(report.path, (p) => store.write(p), 'direct'));
    const directCpu = cpuMs(process.cpuUsage(cpu0));
    const rates = (ms: number, points: number): string =>
      `${Math.round(report.rows / (ms / 1000)).toLocaleString('en')} rows/s, ${Math.round(points / (ms / 1000)).toLocaleString('en')} points/s`;
    console.log(
      `storage alone (parse+map → LevelStore.write, new datapoints, batches of ${DEFAULT_BATCH_SIZE.toLocaleString('en')}): ${direct.ms.toFixed(0)} ms, CPU ${directCpu.toFixed(0)} ms for ${direct.result.toLocaleString('en')} points = ${rates(direct.ms, direct.result)}, peak RSS +${direct.peakRssMb.toFixed(0)} MB`,
    );
    const cpu1 = process.cpuUsage();
    const overwrite = await measure(() => storeOnly(report.path, (p) => store.write(p), 'direct', true));
    const overwriteCpu = cpuMs(process.cpuUsage(cpu1));
    console.log(
      `storage alone, the same report again with every value changed (every reading an overwrite): ${overwrite.ms.toFixed(0)} ms, CPU ${overwriteCpu.toFixed(0)} ms = ${rates(overwrite.ms, overwrite.result)}, peak RSS +${overwrite.peakRssMb.toFixed(0)} MB`,
    );
    console.log(`  overwrite / first write: time ×${(overwrite.ms / direct.ms).toFixed(2)}, CPU ×${(overwriteCpu / directCpu).toFixed(2)}`);
    let peerMs: number | undefined;
    if (process.env.BENCH_FULL) {
      const sqlite = openSqlite(join(dir, 'peer.sqlite'));
      teardowns.push(() => sqlite.close());
      const peer = await measure(() => storeOnly(report.path, sqliteWriter(sqlite), 'peer'));
      console.log(
        `SQLite peer (parse+map → the same rows, outbox and rollups in SQLite):    ${peer.ms.toFixed(0)} ms for ${peer.result.toLocaleString('en')} points = ${rates(peer.ms, peer.result)}`,
      );
      console.log(`  LevelStore / SQLite: ×${(peer.ms / direct.ms).toFixed(2)} the speed`);
      peerMs = peer.ms;
    }
    const passes = ['first import (registers 160 datapoints)', 're-import of the same file (every reading an overwrite)'];
    const results: Array<{ ms: number; cpu: number; peakMb: number }> = [];
    for (const [n, pass] of passes.entries()) {
      const cpuStart = process.cpuUsage();
      const name = `r-${n}.csv`;
      // Copied under a name the watcher skips, then renamed: it never sees half a file.
      const m = await measure(async () => {
        await copyFile(report.path, join(drop, `${name}.tmp`));
        await rename(join(drop, `${name}.tmp`), join(drop, name));
        return eventually(
          async () => {
            const items = (
              (await (await fetch(`${gw.httpUrl}/api/adapters`)).json()) as {
                items: Array<{ id: string; info?: { lastImport?: { file?: string; ms: number; rows: number; points: number } } }>;
              }
            ).items;
            const i = items.find((x) => x.id === 'insight')!.info!;
            return i.lastImport?.file === name ? i : undefined;
          },
          600_000,
          50,
        );
      });
      const li = m.result!.lastImport as { ms: number; rows: number; points: number };
      const cpu = cpuMs(process.cpuUsage(cpuStart));
      results.push({ ms: li.ms, cpu, peakMb: m.peakMb });
      console.log(
        `full import into LevelDB, ${pass}: ${li.ms} ms, CPU ${cpu.toFixed(0)} ms for ${li.rows} rows / ${li.points.toLocaleString('en')} points = ${Math.round(li.rows / (li.ms / 1000)).toLocaleString('en')} rows/s, ${Math.round(li.points / (li.ms / 1000)).toLocaleString('en')} points/s, peak RSS ${m.peakMb.toFixed(0)} MB (+${m.peakRssMb.toFixed(0)} MB in this pass)`,
      );
      console.log(
        `  full import / storage alone: time ×${(li.ms / direct.ms).toFixed(2)}, CPU ×${(cpu / directCpu).toFixed(2)}  (the rest is ingest validation, bus publish, journal)`,
      );
      if (peerMs !== undefined && n === 0) console.log(`  full import / SQLite peer (storage alone): time ×${(li.ms / peerMs).toFixed(2)}`);
    }
    const [first, again] = results as [(typeof results)[0], (typeof results)[0]];
    console.log(
      `re-import / first import: time ×${(again.ms / first.ms).toFixed(2)}, CPU ×${(again.cpu / first.cpu).toFixed(2)}, peak RSS ×${(again.peakMb / first.peakMb).toFixed(2)} (${again.peakMb.toFixed(0)} vs ${first.peakMb.toFixed(0)} MB)`,
    );
  } finally {
    for (const fn of teardowns.reverse()) await fn();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
