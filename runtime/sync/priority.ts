import { compileGlobs } from '../../core/glob.js';
import type { OutboxRecord } from '../../storage/store.js';

/**
 * `sync.fallback.alarms`: datapoint id globs (core/glob.ts; ids have no separator, so `*`
 * crosses dots). A `?` was literal before, but no datapoint id can hold one.
 */
export function compilePatterns(patterns: readonly string[]): (id: string) => boolean {
  return compileGlobs(patterns);
}

/**
 * Picks what a thin link (live lane while catching up, satellite fallback) carries
 * first out of unsent records: every alarm record (alarm datapoints, and readings
 * marked bad or stale), newest first, then the latest value of each other datapoint,
 * newest first, until `maxRecords`. `skip` leaves out what the link already carried
 * (the fallback sends a datapoint again only once it has a newer value). The result
 * is in sequence order, so a receiver applies it like any other batch. `fit` (a metered
 * link's) cuts the priority-ordered candidates to what one message carries.
 */
export function selectPriority(
  records: readonly OutboxRecord[],
  isAlarm: (id: string) => boolean,
  maxRecords: number,
  skip: (r: OutboxRecord, alarm: boolean) => boolean = () => false,
  fit?: (ordered: readonly OutboxRecord[], isAlarm: (r: OutboxRecord) => boolean) => OutboxRecord[],
): OutboxRecord[] {
  const alarms: OutboxRecord[] = [];
  const latest = new Map<string, OutboxRecord>();
  for (const r of records) {
    const alarm = isAlarm(r.id) || r.q !== undefined;
    if (skip(r, alarm)) continue;
    if (alarm) alarms.push(r);
    else {
      const cur = latest.get(r.id);
      if (!cur || r.t >= cur.t) latest.set(r.id, r);
    }
  }
  const byNewest = (a: OutboxRecord, b: OutboxRecord): number => b.t - a.t || b.seq - a.seq;
  const ordered = [...alarms.sort(byNewest), ...[...latest.values()].sort(byNewest)];
  const alarmSet = new Set(alarms);
  // A metered link cuts the priority-ordered list itself (bytes and budget, not a count).
  const picked = fit ? fit(ordered.slice(0, maxRecords), (r) => alarmSet.has(r)) : ordered.slice(0, maxRecords);
  return [...picked].sort((a, b) => a.seq - b.seq);
}
