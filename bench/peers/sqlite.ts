/**
 * SQLite as the storage peer of the benchmarks (storage, BMS import): the same readings with
 * the same work per reading as LevelStore — the point, an outbox record and the rollup upserts
 * of the four resolutions — in one transaction per batch, WAL, synchronous=NORMAL.
 */
import { createRequire } from 'node:module';
import { RESOLUTIONS, bucketStart } from '../../storage/rollups.js';
import type { PointRecord } from '../../storage/store.js';

// better-sqlite3 (dev dependency of the benchmarks only) ships no types; the part used here.
interface Statement {
  run(...args: unknown[]): unknown;
  all(...args: unknown[]): Array<Record<string, unknown>>;
  get(...args: unknown[]): unknown;
}
export interface SqliteDb {
  pragma(s: string): unknown;
  exec(sql: string): void;
  prepare(sql: string): Statement;
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  close(): void;
}
const Database = createRequire(import.meta.url)('better-sqlite3') as new (path: string) => SqliteDb;

export function openSqlite(path: string): SqliteDb {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(`
    CREATE TABLE IF NOT EXISTS points (id TEXT NOT NULL, t INTEGER NOT NULL, v TEXT NOT NULL, PRIMARY KEY (id, t)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, t INTEGER NOT NULL, v TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS rollups (res TEXT NOT NULL, id TEXT NOT NULL, bucket INTEGER NOT NULL,
      count INTEGER, sum REAL, min REAL, max REAL, ft INTEGER, fv REAL, lt INTEGER, lv REAL,
      PRIMARY KEY (res, id, bucket)) WITHOUT ROWID;`);
  return db;
}

/** Writes a batch of readings in one transaction. */
export function sqliteWriter(db: SqliteDb): (points: readonly PointRecord[]) => void {
  const putPoint = db.prepare('INSERT OR REPLACE INTO points (id, t, v) VALUES (?, ?, ?)');
  const putOutbox = db.prepare('INSERT INTO outbox (id, t, v) VALUES (?, ?, ?)');
  // Same rollup work as LevelStore: count/sum/min/max and first/last by time, per resolution.
  const upsert = db.prepare(`INSERT INTO rollups VALUES (@res, @id, @bucket, 1, @v, @v, @v, @t, @v, @t, @v)
    ON CONFLICT (res, id, bucket) DO UPDATE SET count = count + 1, sum = sum + excluded.sum,
      min = min(min, excluded.min), max = max(max, excluded.max),
      fv = CASE WHEN excluded.ft < ft THEN excluded.fv ELSE fv END, ft = min(ft, excluded.ft),
      lv = CASE WHEN excluded.lt >= lt THEN excluded.lv ELSE lv END, lt = max(lt, excluded.lt)`);
  return db.transaction((points: readonly PointRecord[]) => {
    for (const p of points) {
      const v = JSON.stringify([p.v]);
      putPoint.run(p.id, p.t, v);
      putOutbox.run(p.id, p.t, v);
      // Gaps (null) count in no rollup, as in LevelStore.
      if (typeof p.v === 'number') for (const r of RESOLUTIONS) upsert.run({ res: r.name, id: p.id, bucket: bucketStart(p.t, r.ms), t: p.t, v: p.v });
    }
  });
}
