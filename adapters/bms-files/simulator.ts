import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';

/** What a simulated Insight point measures; decides its value curve. */
export type SimPointKind = 'valve' | 'room' | 'outdoor' | 'enable';

export interface SimPoint {
  name: string;
  kind: SimPointKind;
}

export interface InsightReportOptions {
  points: readonly SimPoint[];
  /** First row (epoch ms, UTC instant). */
  start: number;
  rows: number;
  intervalMinutes: number;
  timeZone: string;
  eol?: '\r\n' | '\n' | '\r';
  bom?: boolean;
  /** false: the unquoted form Excel writes when a report is re-saved. */
  quoted?: boolean;
  /** Share of cells written as `No Data` / `Data Loss` (deterministic per point and time). */
  gapRatio?: number;
  /** Omit the `End of Report` trailer (a truncated file). */
  truncate?: boolean;
}

/**
 * A site like the one in shared/samples: VAV reheat valves (`EV.RM102.V`, %), room
 * temperatures (`EV.RM102.RT`, °F), outdoor air (`OATEMP`) and a pump enable (`ON`/`OFF`).
 */
export function defaultInsightPoints(count: number): SimPoint[] {
  const points: SimPoint[] = [
    { name: 'OATEMP', kind: 'outdoor' },
    { name: 'EV.HX2.ENA', kind: 'enable' },
  ];
  for (let room = 100; points.length < count; room++) {
    points.push({ name: `EV.RM${room}.V`, kind: 'valve' });
    if (points.length < count) points.push({ name: `EV.RM${room}.RT`, kind: 'room' });
  }
  return points.slice(0, count);
}

/** Deterministic noise in [0, 1) from (point, time): overlapping reports carry identical values. */
function noise(a: number, b: number): number {
  let h = (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(Math.floor(b / 60_000), 0xc2b2ae35)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  return (h >>> 0) / 4294967296;
}

function value(p: SimPoint, index: number, t: number, hour: number): string {
  const n = noise(index, t);
  const daily = Math.cos(((hour - 15) / 24) * 2 * Math.PI); // warmest mid-afternoon
  switch (p.kind) {
    case 'outdoor':
      return (20 + 12 * daily + (n - 0.5) * 2).toFixed(2);
    case 'room':
      return (70 + 2 * daily + (n - 0.5)).toFixed(2);
    case 'valve':
      return Math.max(0, Math.min(100, 45 - 40 * daily + (n - 0.5) * 30)).toFixed(2);
    case 'enable':
      return hour >= 6 && hour < 20 ? 'ON' : 'OFF';
  }
}

/** The lines of an Insight trend interval report, without line endings. */
export function* insightReportLines(o: InsightReportOptions): Generator<string> {
  const q = o.quoted === false ? (s: string) => s : (s: string) => `"${s}"`;
  const row = (cells: string[]): string => cells.map(q).join(',');
  const fmt = new Intl.DateTimeFormat('en-US', {
    timeZone: o.timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
  const wall = (t: number) => {
    const p: Record<string, string> = {};
    for (const part of fmt.formatToParts(new Date(t))) p[part.type] = part.value;
    return { date: `${Number(p.month)}/${Number(p.day)}/${p.year}`, time: `${p.hour}:${p.minute}:${p.second}`, hour: Number(p.hour) };
  };
  yield (o.bom ? '\uFEFF' : '') + q('Key            Name:Suffix                                Trend Definitions Used');
  for (let i = 0; i < o.points.length; i++) {
    const p = o.points[i]!;
    yield row([`Point_${i + 1}:`, p.name, '', p.kind === 'enable' ? 'COV' : `${o.intervalMinutes} minutes`]);
  }
  const end = o.start + (o.rows - 1) * o.intervalMinutes * 60_000;
  const first = wall(o.start);
  const last = wall(end);
  yield row(['Time Interval:', `${o.intervalMinutes} Minutes`]);
  yield row(['Date Range:', `${first.date} ${first.time} - ${last.date} ${last.time}`]);
  yield row(['Report Timings:', 'All Hours']);
  yield q('');
  yield row(['<>Date', 'Time', ...o.points.map((_, i) => `Point_${i + 1}`)]);
  const gapRatio = o.gapRatio ?? 0;
  for (let r = 0; r < o.rows; r++) {
    const t = o.start + r * o.intervalMinutes * 60_000;
    const w = wall(t);
    const cells = [w.date, w.time];
    for (let i = 0; i < o.points.length; i++) {
      const g = gapRatio > 0 ? noise(i + 7919, t) : 1;
      cells.push(g < gapRatio / 2 ? 'No Data' : g < gapRatio ? 'Data Loss' : value(o.points[i]!, i, t, w.hour));
    }
    yield row(cells);
  }
  if (!o.truncate) yield q(' ******************************** End of Report *********************************');
}

/** Writes a report as `<dir>/<name>.tmp`, then renames it, so a watcher never sees half a file. */
export async function writeInsightReport(dir: string, name: string, o: InsightReportOptions): Promise<{ path: string; bytes: number; rows: number }> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, name);
  const tmp = `${path}.tmp`;
  const out = createWriteStream(tmp);
  const eol = o.eol ?? '\r\n';
  let bytes = 0;
  for (const line of insightReportLines(o)) {
    const chunk = line + eol;
    bytes += Buffer.byteLength(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
  await rename(tmp, path);
  return { path, bytes, rows: o.rows };
}

export interface SimulatorOptions {
  dir: string;
  timeZone: string;
  /** How often a report is written (ms). */
  everyMs: number;
  points: number;
  intervalMinutes: number;
  /** Rows per report: reports overlap, which the importer must absorb (idempotent). */
  rows: number;
  now(): number;
  signal: AbortSignal;
  onError(err: unknown): void;
}

/** Writes a report of the latest `rows` intervals every `everyMs`, like a scheduled Insight export. */
export async function runInsightSimulator(o: SimulatorOptions): Promise<void> {
  const points = defaultInsightPoints(o.points);
  const step = o.intervalMinutes * 60_000;
  while (!o.signal.aborted) {
    try {
      const lastRow = Math.floor(o.now() / step) * step;
      const stamp = new Date(lastRow).toISOString().replace(/[-:]/g, '').slice(0, 13);
      await writeInsightReport(o.dir, `insight-sim-${stamp}.csv`, {
        points,
        start: lastRow - (o.rows - 1) * step,
        rows: o.rows,
        intervalMinutes: o.intervalMinutes,
        timeZone: o.timeZone,
        gapRatio: 0.01,
      });
    } catch (err) {
      o.onError(err);
    }
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        o.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, o.everyMs);
      o.signal.addEventListener('abort', done, { once: true });
    });
  }
}

// `node --import tsx adapters/bms-files/simulator.ts <dir> [everyMs] [timeZone]`: a stand-alone Insight export job.
if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2] ?? './data/bms-drop';
  const controller = new AbortController();
  process.on('SIGINT', () => controller.abort());
  process.on('SIGTERM', () => controller.abort());
  void runInsightSimulator({
    dir,
    everyMs: Number(process.argv[3] ?? 60_000),
    timeZone: process.argv[4] ?? Intl.DateTimeFormat().resolvedOptions().timeZone,
    points: 24,
    intervalMinutes: 15,
    rows: 8,
    now: () => Date.now(),
    signal: controller.signal,
    onError: (err) => console.error('simulator:', (err as Error).message),
  });
}
