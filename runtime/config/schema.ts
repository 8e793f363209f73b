import { z } from 'zod';
import { DatapointSchema } from '../../core/datapoint.js';
import { isPasswordHash } from '../auth/passwords.js';
import type { AdapterType } from '../adapter.js';
import { RetentionConfigSchema } from '../../storage/retention.js';
import { syncSchema } from '../sync/config.js';
import { FlowsConfigSchema } from '../../flows/config.js';
import { aclPatternProblem } from '../auth/mqtt-acl.js';
import { ROLES } from '../auth/roles.js';
import { authCommonShape, trustedProxiesSchema } from '../auth/config-schema.js';
import { timezoneSchema } from './timezone.js';
import { siteSchema } from '../site/config.js';
import { alarmsSchema } from '../alarms/config.js';

const GATEWAY_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const INSTANCE_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;

const port = z.number().int().min(0).max(65535);

/** An MQTT ACL pattern: topic filter, `*` inside a level, `%u` for the username. */
const aclPattern = z.string().superRefine((p, ctx) => {
  const problem = aclPatternProblem(p);
  if (problem) ctx.addIssue({ code: 'custom', message: `not a topic pattern: ${problem}` });
});

/** PEM certificate and key files for a TLS listener. */
const tlsFiles = z.strictObject({ certFile: z.string().min(1), keyFile: z.string().min(1) });

const timezone = timezoneSchema;

/** Core configuration; every key here is documented in outpost.example.yaml. */
export function coreSchema() {
  return z.strictObject({
    gateway: z
      .strictObject({
        id: z.string().regex(GATEWAY_ID, 'expected lower-case letters, digits, - or _ (max 64)').default('outpost'),
        name: z.string().max(128).optional(),
        timezone: timezone.default('UTC'),
      })
      .prefault({}),
    dataDir: z.string().min(1).default('./data'),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        pretty: z.boolean().optional(),
      })
      .prefault({}),
    broker: z
      .strictObject({
        prefix: z
          .string()
          .regex(/^[a-zA-Z0-9_-]+$/, 'expected a single topic level')
          .default('outpost'),
        mqtt: z.strictObject({ enabled: z.boolean().default(true), host: z.string().default('127.0.0.1'), port: port.default(1883) }).prefault({}),
        websocket: z.strictObject({ enabled: z.boolean().default(true), path: z.string().startsWith('/').default('/mqtt') }).prefault({}),
        anonymous: z.enum(['loopback', 'never']).default('loopback'),
        users: z
          .array(
            z.strictObject({
              username: z.string().min(1).max(128),
              passwordHash: z.string().refine(isPasswordHash, 'expected a hash made by `outpost hash-password` (scrypt$...)'),
              /** Topics this user may publish to / subscribe to; absent = all. */
              publish: z.array(aclPattern).max(100).optional(),
              subscribe: z.array(aclPattern).max(100).optional(),
            }),
          )
          .default([]),
        mqtts: z
          .strictObject({
            enabled: z.boolean().default(false),
            host: z.string().default('127.0.0.1'),
            port: port.default(8883),
            certFile: z.string().min(1).optional(),
            keyFile: z.string().min(1).optional(),
            /** CA bundle to verify client certificates against (optional). */
            caFile: z.string().min(1).optional(),
          })
          .refine((m) => !m.enabled || (m.certFile && m.keyFile), 'mqtts needs certFile and keyFile when enabled')
          .prefault({}),
        limits: z
          .strictObject({
            maxConnections: z.number().int().min(1).max(100_000).default(200),
            maxPacketBytes: z
              .number()
              .int()
              .min(1024)
              .max(64 * 1024 * 1024)
              .default(256 * 1024),
            maxInflight: z.number().int().min(1).max(65_535).default(100),
            drainTimeoutMs: z.number().int().min(1000).max(600_000).default(10_000),
          })
          .prefault({}),
        unknownDatapoints: z.enum(['register', 'refuse']).default('register'),
        maxAutoDatapoints: z.number().int().min(0).max(1_000_000).default(10_000),
      })
      .prefault({}),
    http: z
      .strictObject({
        host: z.string().default('127.0.0.1'),
        port: port.default(8080),
        /** sha256 hashes of API tokens accepted from non-loopback clients (`outpost hash-token`). */
        tokens: z.array(z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex> from `outpost hash-token`')).default([]),
        maxBodyBytes: z
          .number()
          .int()
          .min(1024)
          .max(16 * 1024 * 1024)
          .default(1024 * 1024),
        /** Serve HTTPS (and the dashboard's MQTT over wss) from these files. */
        tls: tlsFiles.optional(),
        /** Reverse proxies (addresses, CIDRs) whose X-Forwarded-For/-Proto/-Host are believed; none by default. */
        trustedProxies: trustedProxiesSchema,
      })
      .prefault({}),
    auth: z
      .strictObject({
        loopback: z.enum([...ROLES, 'none']).default('none'),
        ...authCommonShape,
        adminPaths: z.array(z.string().startsWith('/')).default(['/api/config', '/api/flows', '/red', '/flows']),
        delegatedPaths: z.array(z.string().startsWith('/')).default(['/upload']),
      })
      .prefault({}),
    dashboard: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
    /** What the site's datapoints are (power-flow roles, energy counters) and its tariff: runtime/site/config.ts. */
    site: siteSchema,
    /** Alarm rules (threshold, stale, adapter) and the event log's bounds: runtime/alarms/config.ts. */
    alarms: alarmsSchema,
    storage: z
      .strictObject({
        engine: z.enum(['level', 'memory']).default('level'),
        sync: z.boolean().default(true),
        maxBatch: z.number().int().min(1).max(100_000).default(10_000),
        maxPending: z.number().int().min(100).max(10_000_000).default(100_000),
        /** Bytes kept free in a file next to the database, given up to open it on a full disk (storage/level/space-reserve.ts); 0: none. */
        reserveBytes: z
          .number()
          .int()
          .min(0)
          .max(1 << 30)
          .default(8 << 20),
        retention: RetentionConfigSchema,
      })
      .prefault({}),
    sync: syncSchema.prefault({}),
    flows: FlowsConfigSchema,
    datapoints: z.array(DatapointSchema.omit({ adapter: true })).default([]),
    adapterStopTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    adapters: z.array(z.unknown()).default([]),
  });
}

export type CoreConfig = z.output<ReturnType<typeof coreSchema>>;

export interface AdapterEntry {
  id: string;
  type: string;
  enabled: boolean;
  options: Record<string, unknown>;
}

export type Config = Omit<CoreConfig, 'adapters'> & { adapters: AdapterEntry[] };

/** Schema of one adapter entry: `{ id, type, enabled?, ...options }`, options strict per type. */
export function adapterEntrySchema(type: AdapterType) {
  return type.schema.extend({
    id: z.string().regex(INSTANCE_ID, 'expected lower-case letters, digits, - or _ (max 64)'),
    type: z.literal(type.type),
    enabled: z.boolean().default(true),
  });
}
