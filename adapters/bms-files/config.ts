// The options of one bms-files source (zod schema, defaults, the format table): apart from
// index.ts so the adapter's wiring reads without a hundred lines of option docs in front of it.
import { z } from 'zod';
import { alcOptionsSchema } from './alc-webctrl.js';
import { pointRuleSchema } from './mapping.js';
import { timezoneSchema } from '../../runtime/config/timezone.js';

const timezone = timezoneSchema;

export const FORMATS = { 'siemens-insight': 'siemens', 'alc-webctrl': 'alc' } as const;
export type Format = keyof typeof FORMATS;

/** Points per durable write unless configured (`batchSize`); the bench stores at this size too. */
export const DEFAULT_BATCH_SIZE = 50_000;

export const bmsFilesSchema = z.strictObject({
  /** Which export this source receives. */
  format: z.enum(['siemens-insight', 'alc-webctrl']),
  /** Zone of the local times in the files; defaults to gateway.timezone. */
  timezone: timezone.optional(),
  /** Folder the BMS exports into (relative paths are under the gateway's data directory). */
  dropDir: z.string().min(1).optional(),
  /** Where imported files go; default `<dropDir>/archive`. */
  archiveDir: z.string().min(1).optional(),
  /** Where refused files go with `<name>.error.txt`; default `<dropDir>/failed`. */
  failedDir: z.string().min(1).optional(),
  pollMs: z.number().int().min(20).max(60_000).default(1000),
  /** Size and mtime must stay unchanged this long before a file is read. */
  stableMs: z.number().int().min(0).max(600_000).default(2000),
  /**
   * A dropped file that looks cut off (no `End of Report`, no line break after its last row)
   * is waited for this long after its last change (a writer still at work), then refused.
   */
  completeWithinMs: z.number().int().min(0).max(86_400_000).default(600_000),
  /**
   * Archived files are watched this long for rows appended after the import (a writer that
   * paused longer than `stableMs`); one that grows goes back to the drop folder and is imported whole.
   */
  appendWatchMs: z.number().int().min(0).max(86_400_000).default(600_000),
  /** Imports that never finished (the gateway died during each) before the file is quarantined in failed/. */
  maxAttempts: z.number().int().min(1).max(100).default(3),
  /**
   * Points per durable write (bounds memory: at most two batches are held). Larger batches
   * cost storage less per point: a 650,000-point report imports ~1.5× faster at 50,000 than
   * at 5,000 (bench/README.md), with ~40 MB more heap at its peak.
   */
  batchSize: z.number().int().min(100).max(50_000).default(DEFAULT_BATCH_SIZE),
  upload: z
    .strictObject({
      /** Default `/upload/siemens` or `/upload/alc`; set it for a second instance of the same format. */
      path: z
        .string()
        .regex(/^\/[A-Za-z0-9/_-]+$/, 'expected a path such as /upload/siemens')
        .optional(),
      /** `sha256:<hex>` hashes from `outpost hash-token`. */
      tokenHashes: z.array(z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex> from `outpost hash-token`')).min(1),
      maxBytes: z
        .number()
        .int()
        .min(1024)
        .max(1024 * 1024 * 1024)
        .default(50 * 1024 * 1024),
      maxQueued: z.number().int().min(1).max(10_000).default(100),
    })
    .optional(),
  /** BMS point name → datapoint id rules, first match wins. */
  points: z.array(pointRuleSchema).default([]),
  /** Points no rule maps: register as `<idPrefix>.<name>`, skip, or refuse the file. */
  unknownPoints: z.enum(['register', 'skip', 'fail']).default('register'),
  /** Prefix of auto-registered ids; default the instance id. */
  idPrefix: z
    .string()
    .regex(/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/)
    .optional(),
  /** Extra text states → numbers (ON/OFF built in), e.g. `{ OCC: 1, UNOCC: 0 }`. */
  states: z.record(z.string().min(1), z.number()).default({}),
  /**
   * Days the raw readings of this source's datapoints are kept (set on every datapoint it
   * registers); null, the default, keeps imported history for ever. A matching
   * `storage.retention.rules` pattern wins over it (storage/retention.ts); rollups follow
   * `storage.retention.rollupDays`.
   */
  retentionRawDays: z.number().positive().nullable().default(null),
  /** ALC trend CSV layout (format alc-webctrl). */
  alc: alcOptionsSchema.prefault({}),
  /** ALC points-list export(s) read at start for point metadata. */
  pointsLists: z.array(z.string().min(1)).default([]),
  /** Writes simulated Insight reports into dropDir (demo). */
  simulator: z
    .strictObject({
      everyMs: z.number().int().min(1000).max(86_400_000).default(60_000),
      points: z.number().int().min(1).max(2000).default(24),
      intervalMinutes: z.number().int().min(1).max(60).default(15),
      rows: z.number().int().min(1).max(10_000).default(8),
    })
    .optional(),
});

export type BmsFilesOptions = z.output<typeof bmsFilesSchema>;
