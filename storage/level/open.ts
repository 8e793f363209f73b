import { Level } from 'level';
import type { Caches } from './caches.js';
import type { ChunkedSeries } from './series.js';
import { recomputeCurrent } from './current-buckets.js';
import { HIGH, pointTime, rollupPrefix } from './keys.js';
import { READ_PARALLEL, inParallel, type Snapshot, type StoreDb } from './db.js';
import { queryRaw } from './read.js';
import { OutpostError } from '../../core/errors.js';
import '../errors.js';
import { RESOLUTIONS, numericValue, type Agg } from '../rollups.js';
import { MAX_QUERY_LIMIT } from '../store.js';

/** The command an operator runs when LevelDB reports corruption on open. */
function repairCommand(path: string): string {
  return `outpost repair --db ${path}`;
}

/** Runs LevelDB's repair (rebuilds the manifest from the table and log files it can read). */
export async function repairLevelDb(path: string): Promise<void> {
  // `level` re-exports classic-level's ClassicLevel on Node, which has the static repair
  // (LevelDB RepairDB); its browser-compatible typings leave it out.
  await (Level as unknown as { repair(location: string): Promise<void> }).repair(path);
}

/** Classifies an open failure: a lock held by another process, corruption (with the repair command), or other I/O. */
export function openError(path: string, err: unknown): OutpostError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = (err as { code?: string }).code;
  const message = cause?.message ?? (err as Error).message;
  if (code === 'LEVEL_CORRUPTION' || cause?.code === 'LEVEL_CORRUPTION' || /corrupt/i.test(message)) {
    return new OutpostError(
      'STORAGE_CORRUPT',
      `LevelDB at ${path} is damaged (${message}). Stop Outpost, back up the folder, then run: ${repairCommand(path)}`,
      {
        cause: err,
        details: { path, repair: repairCommand(path) },
      },
    );
  }
  if (code === 'LEVEL_LOCKED' || cause?.code === 'LEVEL_LOCKED' || /lock/i.test(message)) {
    return new OutpostError('STORAGE_OPEN_FAILED', `LevelDB at ${path} is in use by another process (${message})`, { cause: err });
  }
  return new OutpostError('STORAGE_OPEN_FAILED', `cannot open LevelDB at ${path}: ${message}`, { cause: err });
}

/** Ids of datapoints that have keys under `prefix` (`p!` or `r!<res>!`), by seeking from one id's range to the next. */
export async function idsUnder(level: StoreDb, prefix: string, snapshot?: Snapshot): Promise<string[]> {
  const ids: string[] = [];
  const it = level.keys({ gte: prefix, lt: prefix + HIGH, ...(snapshot ? { snapshot } : {}) });
  try {
    let key = await it.next();
    while (key !== undefined) {
      const id = key.slice(prefix.length, key.lastIndexOf('!'));
      ids.push(id);
      it.seek(prefix + id + '!' + HIGH);
      key = await it.next();
    }
  } finally {
    await it.close();
  }
  return ids;
}

/**
 * What the store keeps in memory, read from the disk at open and after a reopen or restore
 * (storage/DESIGN.md "Current buckets"): the newest reading per datapoint, the newest rollup
 * bucket of datapoints whose raw points all expired, the exact current buckets.
 */
export class StartupState {
  constructor(
    private readonly level: StoreDb,
    private readonly series: ChunkedSeries,
    private readonly caches: Caches,
  ) {}

  /** Newest point of every datapoint that has points (by seeking from one id's range to the next). */
  async loadLatest(): Promise<void> {
    const { latestById, rollupFloor } = this.caches;
    for (const id of await idsUnder(this.level, 'p!')) {
      const [last] = await queryRaw(this.series, id, { order: 'desc', limit: 1 });
      if (last) latestById.set(id, last);
    }
    // Rollups outlive raw points (retention): a datapoint whose raw points are all gone
    // still has buckets, and writes into their time span must merge with them.
    for (const res of RESOLUTIONS) {
      for (const id of await idsUnder(this.level, `r!${res.name}!`)) {
        if (latestById.has(id)) continue;
        const [newest] = await this.level.iterator({ gte: rollupPrefix(res.name, id), lt: rollupPrefix(res.name, id) + HIGH, reverse: true, limit: 1 }).all();
        if (!newest) continue;
        const { ts } = this.series.rollupSpace(0, id).codec.decode(pointTime(newest[0]), newest[1]);
        rollupFloor.set(id, Math.max(rollupFloor.get(id) ?? -Infinity, ts[ts.length - 1]!));
      }
    }
  }

  /**
   * The exact current bucket of every resolution of every datapoint, from its raw points and
   * finer buckets on disk: live commits left their disk state older, and a crash (or power
   * loss) leaves no record of which (storage/level/current-buckets.ts). Four small reads a datapoint.
   */
  async recomputeCurrentBuckets(): Promise<void> {
    const { current, unwritten, latestById } = this.caches;
    current.clear();
    unwritten.clear();
    const reads = {
      numericReadings: async (id: string, from: number, to: number) => {
        const out: Array<{ t: number; v: number }> = [];
        for (const p of await queryRaw(this.series, id, { from, to, limit: MAX_QUERY_LIMIT })) {
          const v = numericValue(p);
          if (v !== undefined) out.push({ t: p.t, v });
        }
        return out;
      },
      buckets: async (id: string, r: number, from: number, to: number) => {
        const out = new Map<number, Agg>();
        for await (const c of this.series.chunks(this.series.rollupSpace(r, id), from, to, undefined, false, 256, true)) {
          for (let i = 0; i < c.ts.length; i++) if (c.ts[i]! >= from && c.ts[i]! <= to) out.set(c.ts[i]!, c.es[i]!);
        }
        return out;
      },
    };
    await inParallel([...latestById], READ_PARALLEL, async ([id, latest]) => {
      const exact = await recomputeCurrent(id, latest.t, reads);
      for (let r = 0; r < exact.length; r++) if (exact[r]) current.set(id, r, exact[r]!);
    });
  }
}
