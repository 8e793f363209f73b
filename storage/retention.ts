import { z } from 'zod';
import { directoryBytes } from './directory-bytes.js';
import { HIGH, pointPrefix, rollupPrefix } from './level/keys.js';
import { RESOLUTIONS, type ResolutionName } from './rollups.js';
import type { RetentionTarget, Store } from './store.js';

const DAY = 86_400_000;

/** Days to keep, or null for "keep forever". */
const Days = z.number().positive().nullable();

const RetentionRuleSchema = z.strictObject({
  /** Datapoint id glob: `*` any characters (dots included), `?` one character. */
  pattern: z
    .string()
    .min(1)
    .regex(/^[a-z0-9_.*?-]+$/, 'expected a datapoint id glob of [a-z0-9_.-], * and ?'),
  rawDays: Days.optional(),
});

/**
 * `storage.retention` in outpost.yaml. Raw points are kept `rawDays` (per datapoint
 * pattern, first matching rule wins, over the datapoint's own `retention`: RetentionPolicy),
 * rollups longer. When `maxBytes` is set and the
 * database grows beyond it, the explicit policy is: drop the oldest raw points (all
 * datapoints, one day at a time), then the oldest 1 min rollups; unsynced outbox records
 * only when `dropUnsyncedOutbox` is true. Everything dropped is counted and reported.
 */
export const RetentionConfigSchema = z
  .strictObject({
    rawDays: Days.default(90),
    rules: z.array(RetentionRuleSchema).default([]),
    rollupDays: z.strictObject({ '1m': Days.default(30), '15m': Days.default(730), '1h': Days.default(1825), '1d': Days.default(null) }).prefault({}),
    maxBytes: z
      .number()
      .int()
      .min(1024 * 1024)
      .optional(),
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

/** What a datapoint may say about its own raw retention (its `retention` field, set by its adapter). */
export interface RetentionOverride {
  retention?: { rawDays?: number | null } | undefined;
}

/** Where a datapoint's effective raw retention comes from. */
export interface EffectiveRetention {
  /** Days raw readings are kept; null: for ever. */
  rawDays: number | null;
  /** `rule`: a storage.retention.rules pattern; `datapoint`: its own `retention` (its adapter's); `default`: storage.retention.rawDays. */
  source: 'rule' | 'datapoint' | 'default';
  /** The rule's pattern, when a rule decided. */
  pattern?: string;
}

/**
 * The raw retention of one datapoint, in this order (the operator's config wins):
 *  1. the first `storage.retention.rules` entry whose pattern matches the id and that sets `rawDays`;
 *  2. the datapoint's own `retention.rawDays`, set by its adapter at registration (bms-files:
 *     `retentionRawDays`, default null: imported history is kept);
 *  3. `storage.retention.rawDays` (90 by default).
 * Rollups are not affected (`rollupDays`), nor the disk budget, which drops the oldest raw
 * readings of every datapoint when `maxBytes` is exceeded.
 */
export class RetentionPolicy {
  private readonly rules: Array<{ re: RegExp; pattern: string; rawDays: number | null | undefined }>;

  constructor(private readonly config: Pick<RetentionConfig, 'rawDays' | 'rules'>) {
    this.rules = config.rules.map((r) => ({ re: globToRegExp(r.pattern), pattern: r.pattern, rawDays: r.rawDays }));
  }

  /** Days raw readings of `id` are kept (null: for ever), given its definition when there is one. */
  effectiveRawDays(id: string, datapoint?: RetentionOverride): number | null {
    return this.explain(id, datapoint).rawDays;
  }

  /** The effective raw retention of `id` and what decided it. */
  explain(id: string, datapoint?: RetentionOverride): EffectiveRetention {
    for (const rule of this.rules) if (rule.rawDays !== undefined && rule.re.test(id)) return { rawDays: rule.rawDays, source: 'rule', pattern: rule.pattern };
    const own = datapoint?.retention?.rawDays;
    if (own !== undefined) return { rawDays: own, source: 'datapoint' };
    return { rawDays: this.config.rawDays, source: 'default' };
  }

  /** Readings of `id` at or before this time are deleted by a retention pass at `now` (undefined: kept for ever). */
  cutoff(id: string, now: number, datapoint?: RetentionOverride): number | undefined {
    const days = this.effectiveRawDays(id, datapoint);
    return days === null ? undefined : now - days * DAY;
  }
}

/** `RetentionPolicy.effectiveRawDays` for a retention config (`storage.retention`). */
export function effectiveRawDays(config: Pick<RetentionConfig, 'rawDays' | 'rules'>, id: string, datapoint?: RetentionOverride): number | null {
  return new RetentionPolicy(config).effectiveRawDays(id, datapoint);
}

/** Readings of one datapoint older than its effective raw retention, found at import. */
export interface RetentionWarning {
  id: string;
  rawDays: number;
  source: EffectiveRetention['source'];
  /** Readings older than the cutoff (`now - rawDays`). */
  readings: number;
  /** The oldest such reading's time. */
  oldest: number;
  cutoff: number;
}

/**
 * Collects, while a file is imported, the readings that the next retention pass will delete
 * (older than their datapoint's effective raw retention), so the import can say so instead
 * of reporting "imported" for history that is gone within the hour. Bounded: one entry per
 * datapoint (at most `maxDatapoints`, then only counted), one comparison per reading.
 */
export class RetentionCheck {
  private readonly cutoffs = new Map<string, { cutoff: number | undefined; rawDays: number | null; source: EffectiveRetention['source'] }>();
  private readonly found = new Map<string, RetentionWarning>();
  /** Readings past retention of datapoints beyond `maxDatapoints`. */
  moreReadings = 0;

  constructor(
    private readonly policy: Pick<RetentionPolicy, 'explain'>,
    /** The datapoint's definition (its own `retention`), e.g. the registry's `get`. */
    private readonly definition: (id: string) => RetentionOverride | undefined,
    private readonly now: number,
    private readonly maxDatapoints = 1000,
  ) {}

  /** Notes a batch of readings (after they were stored or before, as the caller likes). */
  add(points: ReadonlyArray<{ id: string; t: number }>): void {
    for (const p of points) {
      let c = this.cutoffs.get(p.id);
      if (!c) {
        const e = this.policy.explain(p.id, this.definition(p.id));
        c = { cutoff: e.rawDays === null ? undefined : this.now - e.rawDays * DAY, rawDays: e.rawDays, source: e.source };
        this.cutoffs.set(p.id, c);
      }
      if (c.cutoff === undefined || p.t >= c.cutoff) continue;
      const w = this.found.get(p.id);
      if (w) {
        w.readings++;
        if (p.t < w.oldest) w.oldest = p.t;
      } else if (this.found.size < this.maxDatapoints)
        this.found.set(p.id, { id: p.id, rawDays: c.rawDays!, source: c.source, readings: 1, oldest: p.t, cutoff: c.cutoff });
      else this.moreReadings++;
    }
  }

  /** One entry per datapoint with readings past its retention, in the order first seen. */
  get warnings(): RetentionWarning[] {
    return [...this.found.values()];
  }

  /** A sentence for the log or the import history; undefined when nothing is past retention. */
  message(): string | undefined {
    const list = this.warnings;
    if (list.length === 0) return undefined;
    const readings = list.reduce((n, w) => n + w.readings, 0) + this.moreReadings;
    const shown = list
      .slice(0, 3)
      .map(
        (w) =>
          `${w.id} keeps ${w.rawDays} days (${w.source === 'rule' ? 'storage.retention.rules' : w.source === 'datapoint' ? "its adapter's retention" : 'storage.retention.rawDays'})`,
      )
      .join(', ');
    return `${readings} reading(s) of ${list.length}${this.moreReadings ? '+' : ''} datapoint(s) are older than their raw retention and will be deleted at the next retention pass (rollups stay): ${shown}${list.length > 3 ? ', …' : ''}`;
  }
}

export function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\-]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

export class Retention {
  /** Which raw retention applies to which datapoint (rules, the datapoint's own, the default). */
  readonly policy: RetentionPolicy;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RetentionReport> | undefined;
  /** Totals since start, for metrics and the status API. */
  readonly totals = { runs: 0, rawExpired: 0, rollupsExpired: 0, rawDroppedForBudget: 0, rollupsDroppedForBudget: 0, outboxDropped: 0 };
  last: RetentionReport | undefined;

  constructor(
    private readonly store: Store & RetentionTarget,
    private readonly config: RetentionConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.policy = new RetentionPolicy(config);
  }

  /** Days of raw data kept for a datapoint (null: forever), given its definition (RetentionPolicy). */
  rawDaysFor(id: string, datapoint?: RetentionOverride): number | null {
    return this.policy.effectiveRawDays(id, datapoint);
  }

  /** The stored definition of `id` (its own `retention`), read per pass: definitions change while the gateway runs. */
  private async definition(id: string): Promise<RetentionOverride | undefined> {
    return (await this.store.storedDefinition(id)) as RetentionOverride | undefined;
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
      const days = this.rawDaysFor(id, await this.definition(id));
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
      const t = await this.store.oldestKeyTime(idPrefix(id));
      if (t !== undefined) oldest = Math.min(oldest, t);
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
