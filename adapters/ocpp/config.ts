import { chargerKey } from './mapping.js';
import { z } from 'zod';
import { isPasswordHash } from '../../runtime/auth/passwords.js';
import { CHARGE_MODES, DEFAULT_PV } from './charge-modes.js';

/**
 * Options of one `ocpp` adapter instance. Passwords are scrypt hashes made by
 * `runtime/auth/passwords.ts` hashPassword; clear-text passwords never go into config.
 */
const chargerSchema = z
  .strictObject({
    /** Charge point identity: the last path segment of `ws://gateway/ocpp/<id>`. */
    id: z
      .string()
      .min(1)
      .max(48)
      .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces'),
    /** scrypt hash of the HTTP Basic password (OCPP 1.6 security profiles 1 and 2). */
    password: z.string().refine(isPasswordHash, 'must be a hash made by hashPassword (scrypt$…), never a clear-text password').optional(),
    /**
     * OCPP 1.6 security whitepaper: 0 = no authentication (trusted network only),
     * 1 = HTTP Basic, 2 = HTTP Basic over TLS (TLS terminated by the gateway or a local proxy).
     */
    securityProfile: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
    /** Charger profile name (`chargers/<name>.yaml`); detected from BootNotification when omitted. */
    profile: z.string().optional(),
    /** Overrides of the profile for this installation. */
    phases: z.union([z.literal(1), z.literal(3)]).optional(),
    /** Site phase a single-phase charger is wired to. */
    phase: z.enum(['L1', 'L2', 'L3']).default('L1'),
    /**
     * Connectors of this charger (NumberOfConnectors): wins over the charger's own answer to
     * GetConfiguration and over its profile's (connector-count.ts).
     */
    connectors: z.number().int().min(1).max(32).optional(),
    maxCurrentA: z.number().min(6).max(63).optional(),
    /** Load management priority: higher is served first. */
    priority: z.number().int().min(-100).max(100).default(0),
    /**
     * Charge mode of each connector until an operator picks another (charge-modes.ts): off | now |
     * minpv | pv. The mode picked last is kept (the `mode` actuator's stored value) and wins over this.
     */
    mode: z.enum(CHARGE_MODES).default('now'),
    description: z.string().max(200).optional(),
  })
  .refine((c) => c.securityProfile === 0 || c.password !== undefined, {
    message: 'a password hash is required for security profile 1 and 2',
    path: ['password'],
  });

const idTagEntry = z.union([
  z.string().min(1).max(20),
  z.strictObject({
    idTag: z.string().min(1).max(20),
    expiryDate: z.string().datetime({ offset: true }).optional(),
    parentIdTag: z.string().min(1).max(20).optional(),
  }),
]);

const loadManagementSchema = z
  .strictObject({
    /** Site connection limit in A per phase … */
    limitA: z.number().positive().max(10_000).optional(),
    /** … or in kW (converted with `voltage` and `sitePhases`). */
    limitKw: z.number().positive().max(10_000).optional(),
    voltage: z.number().min(100).max(480).default(230),
    sitePhases: z.union([z.literal(1), z.literal(3)]).default(3),
    /** Total EV current per phase when the site meter is stale; defaults to half the limit. */
    fallbackA: z.number().min(0).optional(),
    /** Headroom kept below the limit while metering. */
    marginA: z.number().min(0).max(100).default(1),
    /** MeterValueSampleInterval asked of chargers while load management runs (s; 0: leave the profile's). */
    meterValuesIntervalS: z.number().int().min(0).max(3600).default(5),
    /** Timing of the control loop (load-manager.ts, README "Load management"). */
    control: z
      .strictObject({
        followMs: z.number().int().min(100).max(60_000).optional(),
        settleTimeoutMs: z.number().int().min(1000).max(600_000).optional(),
        increaseHoldMs: z.number().int().min(0).max(600_000).optional(),
        rampStepA: z.number().min(1).max(100).optional(),
        minPauseMs: z.number().int().min(0).max(3_600_000).optional(),
        resumeMarginA: z.number().min(0).max(32).optional(),
      })
      .optional(),
    /** Charge modes pv and minpv (charge-modes.ts): when a pv session pauses and resumes. */
    pv: z
      .strictObject({
        enableDelayS: z.number().int().min(0).max(3600).default(DEFAULT_PV.enableDelayS),
        disableDelayS: z.number().int().min(0).max(3600).default(DEFAULT_PV.disableDelayS),
        enableMarginA: z.number().min(0).max(32).default(DEFAULT_PV.enableMarginA),
      })
      .prefault({}),
    meter: z
      .strictObject({
        /** Datapoint of the site meter (grid connection), e.g. `site.grid.power`. */
        datapoint: z.string().regex(/^[a-z0-9_.-]{1,128}$/),
        unit: z.enum(['W', 'kW', 'A']).default('W'),
        staleAfterMs: z.number().int().min(1000).max(3_600_000).default(30_000),
        /** The meter also measures the chargers (usual grid meter), so their draw is subtracted. */
        includesChargers: z.boolean().default(true),
      })
      .optional(),
  })
  .refine((l) => (l.limitA === undefined) !== (l.limitKw === undefined), 'give exactly one of limitA or limitKw');

export const ocppOptionsSchema = z.strictObject({
  /** Datapoint id prefix: `<prefix>.<charger>.<connector>.<quantity>`. */
  prefix: z
    .string()
    .regex(/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/)
    .default('ev'),
  /** Websocket path prefix on the gateway's HTTP server. */
  path: z
    .string()
    .regex(/^\/[A-Za-z0-9/_-]*[A-Za-z0-9_-]$/)
    .default('/ocpp'),
  /** Accept chargers that are not configured (no password check). For commissioning only. */
  autoAccept: z.boolean().default(false),
  heartbeatIntervalS: z.number().int().min(10).max(86_400).default(300),
  callTimeoutMs: z.number().int().min(500).max(120_000).default(15_000),
  /** Closes a connection after this many malformed frames in a row (ocpp-rpc maxBadMessages). */
  maxBadMessages: z.number().int().min(1).max(1000).default(10),
  /** Raw meter value records kept per session; later ones are counted, not stored. */
  maxSamplesPerSession: z.number().int().min(10).max(100_000).default(5000),
  chargers: z
    .array(chargerSchema)
    .default([])
    .superRefine((chargers, ctx) => {
      // Identities become datapoint id segments (mapping.ts chargerKey): two that map to the
      // same segment would write into each other's datapoints.
      const seen = new Map<string, string>();
      chargers.forEach((c, i) => {
        const key = chargerKey(c.id);
        const other = seen.get(key);
        if (other !== undefined)
          ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `"${c.id}" and "${other}" map to the same datapoint ids (${key}); rename one` });
        else seen.set(key, c.id);
      });
    }),
  /** Local authorization list (OCPP 1.6 §3.5): works with no upstream at all. */
  idTags: z
    .strictObject({
      allow: z.array(idTagEntry).default([]),
      block: z.array(z.string().min(1).max(20)).default([]),
      /** Accept tags on neither list (free charging); blocked tags are still refused. */
      acceptUnknown: z.boolean().default(false),
    })
    .default({ allow: [], block: [], acceptUnknown: false }),
  loadManagement: loadManagementSchema.optional(),
  /**
   * The idTag the dashboard's Start button (and a remote-start request without one) sends in
   * RemoteStartTransaction. The charger authorizes it like a card, so it must be accepted by
   * `idTags` (in `allow`, or `acceptUnknown`); unset, a remote start must name its idTag.
   */
  remoteStartIdTag: z.string().min(1).max(20).optional(),
  /**
   * No longer used: the site meter's topic comes from the gateway (`broker.prefix`,
   * `ctx.topics`). Still accepted so existing configs load; a different value is warned about.
   */
  busPrefix: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .optional(),
});

export type OcppOptions = z.output<typeof ocppOptionsSchema>;
export type ChargerConfig = OcppOptions['chargers'][number];

/**
 * Why `remoteStartIdTag` would not start anything, or undefined: a tag the local list refuses
 * would start a transaction the charger is told not to charge (OCPP 1.6 §5.11, §5.16).
 */
export function remoteStartIdTagIssue(options: Pick<OcppOptions, 'remoteStartIdTag' | 'idTags'>): string | undefined {
  const tag = options.remoteStartIdTag?.toLowerCase();
  if (tag === undefined) return undefined;
  const { allow, block, acceptUnknown } = options.idTags;
  if (block.some((b) => b.toLowerCase() === tag)) return `remoteStartIdTag "${options.remoteStartIdTag}" is in idTags.block`;
  const listed = allow.some((e) => (typeof e === 'string' ? e : e.idTag).toLowerCase() === tag);
  if (!listed && !acceptUnknown) return `remoteStartIdTag "${options.remoteStartIdTag}" must be in idTags.allow (or idTags.acceptUnknown: true)`;
  return undefined;
}
