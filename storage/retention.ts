import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { HIGH, pointTime, pointPrefix, rollupPrefix } from './keys.js';
import { RESOLUTIONS, type ResolutionName } from './rollups.js';
import type { LevelStore } from './level-store.js';

const DAY = 86_400_000;

/** Days to keep, or null for "keep forever". */
const Days = z.number().positive().nullable();

export const RetentionRuleSchema = z.strictObject({
  /** Datapoint id glob: `*` any characters (dots included), `?` one character. */
  pattern: z.string().min(1).regex(/^[a-z0-9_.*?-]+$/, 'expected a datapoint id glob of [a-z0-9_.-], * and ?'),
  rawDays: Days.optional(),
});

/**
 * `storage.retention` in outpost.yaml. Raw points are kept `rawDays` (per datapoint
 * pattern, first matching rule wins), rollups longer. When `maxBytes` is set and the
 * database grows beyond it, the explicit policy is: drop the oldest raw points (all
 * datapoints, one day at a time), then the oldest 1 min rollups; unsynced outbox records
 * only when `dropUnsyncedOutbox` is true. Everything dropped is counted and reported.
 */
export const RetentionConfigSchema = z
  .strictObject({
    rawDays: Days.default(90),
    rules: z.array(RetentionRuleSchema).default([]),
    rollupDays: z
      .strictObject({ '1m': Days.default(30), '15m': Days.default(730), '1h': Days.default(1825), '1d': Days.default(null) })
      .prefault({}),
    maxBytes: z.number().int().min(1024 * 1024).optional(),
    dropUnsyncedOutbox: z.boolean().default(false),
    intervalMinutes: z.number().min(1).max(1440).default(60),
  })
  .prefault({});

export type RetentionConfig = z.output<typeof RetentionConfigSchema>;

export interface RetentionReport {
  startedAt: number;
  durationMs: number;
  /** Raw points deleted by age. */
  rawExpired: number;
  /** Rollup buckets deleted by age, per resolution. */
  rollupsExpired: Record<ResolutionName, number>;
  /** Raw points dropped to meet the disk budget. */
  rawDroppedForBudget: number;
  /** 1 min rollup buckets dropped to meet the disk budget. */
  rollupsDroppedForBudget: number;
  /** Unsynced outbox records dropped (only with dropUnsyncedOutbox). */
  outboxDropped: number;
  bytesBefore: number;
  bytesAfter: number;
  /** Still above maxBytes after everything the policy allows was dropped. */
  overBudget: boolean;
}

export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\-]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/** Bytes the database takes on disk (its files, not LevelDB's estimate). */
export async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isFile()) total += (await stat(join(dir, entry.name))).size;
  }
  return total;
}

export class Retention {
  private readonly rules: Array<{ re: RegExp; rawDays: number | null | undefined }>;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RetentionReport> | undefined;
  /** Totals since start, for metrics and the status API. */
  readonly totals = { runs: 0, rawExpired: 0, rollupsExpired: 0, rawDroppedForBudget: 0, rollupsDroppedForBudget: 0, outboxDropped: 0 };
  last: RetentionReport | undefined;

  constructor(
    private readonly store: LevelStore,
    private readonly config: RetentionConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.rules = config.rules.map((r) => ({ re: globToRegExp(r.pattern), rawDays: r.rawDays }));
  }

  /** Days of raw data kept for a datapoint (null: forever). */
  rawDaysFor(id: string): number | null {
    for (const rule of this.rules) if (rule.re.test(id) && rule.rawDays !== undefined) return rule.rawDays;
    return this.config.rawDays;
  }

  /** Runs every `intervalMinutes`; errors go to `onError` (the runtime logs them once). */
  start(onReport: (r: RetentionReport) => void, onError: (err: unknown) => void): void {
    this.onReport = onReport;
    const tick = (): void => {
      this.run().catch(onError);
    };
    this.timer = setInterval(tick, this.config.intervalMinutes * 60_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  /** One pass: expire by age, then enforce the disk budget. Concurrent calls share one pass. */
  run(): Promise<RetentionReport> {
    this.running ??= this.pass()
      .then((report) => {
        // Every pass is reported (scheduled or run on demand), so its drops are counted.
        this.onReport?.(report);
        return report;
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private onReport: ((r: RetentionReport) => void) | undefined;

  private async pass(): Promise<RetentionReport> {
    const store = this.store;
    const startedAt = this.now();
    const bytesBefore = await directoryBytes(store.path);
    const report: RetentionReport = {
      startedAt,
      durationMs: 0,
      rawExpired: 0,
      rollupsExpired: { '1m': 0, '15m': 0, '1h': 0, '1d': 0 },
      rawDroppedForBudget: 0,
      rollupsDroppedForBudget: 0,
      outboxDropped: 0,
      bytesBefore,
      bytesAfter: bytesBefore,
      overBudget: false,
    };

    for (const id of await store.idsUnder('p!')) {
      const days = this.rawDaysFor(id);
      if (days === null) continue;
      report.rawExpired += await store.deleteBefore(id, startedAt - days * DAY);
    }
    for (const res of RESOLUTIONS) {
      const days = this.config.rollupDays[res.name];
      if (days === null) continue;
      const prefix = `r!${res.name}!`;
      for (const id of await store.idsUnder(prefix)) {
        report.rollupsExpired[res.name] += await store.deleteBefore(id, startedAt - days * DAY, res.name);
      }
    }
    const expired = report.rawExpired + Object.values(report.rollupsExpired).reduce((a, b) => a + b, 0);
    if (expired > 0) {
      store.dropRollupCache();
      // Deletes only write tombstones; compaction is what gives the disk space back.
      await store.compact('p!', 'p!' + HIGH);
      await store.compact('r!', 'r!' + HIGH);
    }
    report.bytesAfter = await directoryBytes(store.path);

    if (this.config.maxBytes !== undefined && report.bytesAfter > this.config.maxBytes) await this.enforceBudget(this.config.maxBytes, report);

    report.durationMs = this.now() - startedAt;
    this.totals.runs++;
    this.totals.rawExpired += report.rawExpired;
    this.totals.rollupsExpired += Object.values(report.rollupsExpired).reduce((a, b) => a + b, 0);
    this.totals.rawDroppedForBudget += report.rawDroppedForBudget;
    this.totals.rollupsDroppedForBudget += report.rollupsDroppedForBudget;
    this.totals.outboxDropped += report.outboxDropped;
    this.last = report;
    return report;
  }

  /** The disk budget policy, in its stated order; each step drops the oldest day across all datapoints, then compacts and measures again. */
  private async enforceBudget(maxBytes: number, report: RetentionReport): Promise<void> {
    const store = this.store;
    const steps: Array<{ prefix: string; drop: () => Promise<number | undefined> }> = [
      { prefix: 'p!', drop: () => this.dropOldestDay('p!', (id) => pointPrefix(id)) },
      { prefix: 'r!1m!', drop: () => this.dropOldestDay('r!1m!', (id) => rollupPrefix('1m', id), '1m') },
    ];
    if (this.config.dropUnsyncedOutbox) steps.push({ prefix: 'o!', drop: () => this.dropOutboxChunk() });
    for (const [i, step] of steps.entries()) {
      for (let guard = 0; guard < 100_000 && report.bytesAfter > maxBytes; guard++) {
        const n = await step.drop();
        if (n === undefined) break;
        if (i === 0) report.rawDroppedForBudget += n;
        else if (i === 1) report.rollupsDroppedForBudget += n;
        else report.outboxDropped += n;
        await store.compact(step.prefix, step.prefix + HIGH);
        report.bytesAfter = await directoryBytes(store.path);
      }
    }
    store.dropRollupCache();
    report.overBudget = report.bytesAfter > maxBytes;
  }

  /** Deletes the oldest day (by the oldest key of any datapoint) under a prefix; undefined when nothing is left. */
  private async dropOldestDay(prefix: string, idPrefix: (id: string) => string, resolution?: ResolutionName): Promise<number | undefined> {
    const ids = await this.store.idsUnder(prefix);
    let oldest = Infinity;
    for (const id of ids) {
      for await (const k of this.store.db.keys({ gte: idPrefix(id), lt: idPrefix(id) + HIGH, limit: 1 })) oldest = Math.min(oldest, pointTime(k));
    }
    if (oldest === Infinity) return undefined;
    const cutoff = Math.floor(oldest / DAY) * DAY + DAY;
    let n = 0;
    for (const id of ids) n += await this.store.deleteBefore(id, cutoff, resolution);
    return n;
  }

  /** Drops the oldest 10,000 unsynced outbox records and acknowledges them so the mark moves past them. */
  private async dropOutboxChunk(): Promise<number | undefined> {
    const s = this.store.stats();
    if (s.lastSeq <= s.ackedSeq) return undefined;
    const upto = Math.min(s.lastSeq, s.ackedSeq + 10_000);
    const n = await this.store.ackOutbox(upto);
    return n > 0 || upto > s.ackedSeq ? n : undefined;
  }
}
