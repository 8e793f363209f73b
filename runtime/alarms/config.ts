import { z } from 'zod';

/**
 * Alarm ids (a rule's `id`, a Node-RED alarm's id): the alarm is published as the datapoint
 * `alarm.<id>`, so the id must make a datapoint id (core/datapoint.ts DATAPOINT_ID, 128
 * characters with the `alarm.` prefix).
 */
export const ALARM_ID = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const alarmId = z.string().regex(ALARM_ID, 'expected an alarm id: lower-case letters, digits, _ . - (at most 64, starting with a letter or digit)');

/** A datapoint id, or a glob of ids (core/glob.ts: `*` any run of characters, `?` one). */
const datapointPattern = z.string().regex(/^[a-z0-9_.*?-]{1,128}$/, 'expected a datapoint id or a glob of ids ([a-z0-9_.-], * and ?)');

const severity = z.enum(['warning', 'alarm']);

/** What every rule has. */
const common = {
  /** The alarm is published as datapoint `alarm.<id>` and acknowledged by this id. */
  id: alarmId,
  /** warning (amber) or alarm (red); upstream both go first (sync.fallback.alarms matches `alarm.*`). */
  severity: severity.default('alarm'),
  /** What the banner says; default: what the rule checks and the value that broke it. */
  message: z.string().min(1).max(200).optional(),
};

const seconds = (max: number) => z.number().min(0).max(max);

/** A value above or below a limit (for `forS` seconds), cleared once back beyond the deadband. */
const thresholdRule = z
  .strictObject({
    ...common,
    type: z.literal('threshold'),
    datapoint: datapointPattern,
    /** Raised when a reading is above this. */
    above: z.number().optional(),
    /** Raised when a reading is below this. */
    below: z.number().optional(),
    /** Deadband: cleared only once the reading is this far back inside the limit (no flapping around it). */
    hysteresis: z.number().min(0).default(0),
    /** The reading must stay beyond the limit this long before the alarm is raised (0: at once). */
    forS: seconds(7 * 86_400).default(0),
  })
  .superRefine((r, ctx) => {
    if (r.above === undefined && r.below === undefined)
      ctx.addIssue({ code: 'custom', message: 'a threshold rule needs "above", "below" or both', path: ['above'] });
    if (r.above !== undefined && r.below !== undefined && r.below + r.hysteresis >= r.above - r.hysteresis)
      ctx.addIssue({
        code: 'custom',
        message: `"below" (${r.below}) plus hysteresis must stay under "above" (${r.above}) minus hysteresis: no reading could clear the alarm`,
        path: ['below'],
      });
  });

/** No new reading (of good quality) for `afterS` seconds. */
const staleRule = z.strictObject({
  ...common,
  type: z.literal('stale'),
  datapoint: datapointPattern,
  afterS: z
    .number()
    .min(1)
    .max(30 * 86_400),
});

/** An adapter (or any, `*`) in state error or failed for `forS` seconds. */
const adapterRule = z.strictObject({
  ...common,
  type: z.literal('adapter'),
  /** An adapter id from `adapters:`, or `*` for every adapter. */
  adapter: z.string().regex(/^(\*|[a-z0-9][a-z0-9_-]{0,63})$/, 'expected an adapter id or *'),
  forS: seconds(7 * 86_400).default(60),
});

export const alarmRuleSchema = z.discriminatedUnion('type', [thresholdRule, staleRule, adapterRule], {
  error: (issue) => (issue.code === 'invalid_union' ? 'expected "type": threshold, stale or adapter' : undefined),
});

/**
 * `alarms:` — rules the gateway evaluates itself (runtime/alarms/README.md), and the bounds of
 * the event log in `<dataDir>/alarms/`.
 */
export const alarmsSchema = z
  .strictObject({
    rules: z
      .array(alarmRuleSchema)
      .max(500)
      .default([])
      .superRefine((rules, ctx) => {
        const seen = new Map<string, number>();
        rules.forEach((r, i) => {
          const first = seen.get(r.id);
          if (first !== undefined) ctx.addIssue({ code: 'custom', message: `rule id "${r.id}" is also rule ${first}: ids must be unique`, path: [i, 'id'] });
          else seen.set(r.id, i);
        });
      }),
    events: z
      .strictObject({
        /** The event log file is rotated before it passes this many bytes. */
        maxFileBytes: z
          .number()
          .int()
          .min(16 * 1024)
          .max(64 * 1024 * 1024)
          .default(1024 * 1024),
        /** Files kept, the current one included: at most maxFileBytes × keepFiles on disk. */
        keepFiles: z.number().int().min(1).max(20).default(3),
      })
      .prefault({}),
  })
  .prefault({});

export type AlarmsConfig = z.output<typeof alarmsSchema>;
export type AlarmRule = z.output<typeof alarmRuleSchema>;
export type ThresholdRule = Extract<AlarmRule, { type: 'threshold' }>;
export type StaleRule = Extract<AlarmRule, { type: 'stale' }>;
export type AdapterRule = Extract<AlarmRule, { type: 'adapter' }>;
export type AlarmSeverity = z.output<typeof severity>;
