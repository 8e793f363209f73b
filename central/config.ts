import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { OutpostError } from '../core/errors.js';
import { DATAPOINT_ID } from '../core/datapoint.js';
import { formatIssueLines, issueLines, type IssueLine } from '../core/zod-error.js';
import { applyEnvOverrides } from './config-env.js';
import './errors.js';
import { GATEWAY_ID } from './ids.js';
import { trustedProxiesSchema, webAuthSchema } from './web/config.js';
import { commandsSchema, gatewayDownlinkSchema } from './commands/config.js';

const TOKEN_HASH = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex> from `outpost hash-token`');
const SECRET_MIN = 16;

/** A gateway's HTTP credentials: the same `auth` as its `http` sync link (runtime/sync/config.ts). */
const gatewayAuthSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('hmac'),
    secret: z.string().min(SECRET_MIN, `an HMAC secret has at least ${SECRET_MIN} characters`).optional(),
    secretFile: z.string().min(1).optional(),
  }),
  z.strictObject({
    type: z.literal('bearer'),
    /** sha256 hash of the link's token (`outpost hash-token`): the token itself is not kept here. */
    tokenHash: TOKEN_HASH,
  }),
]);

/**
 * The gateway's Iridium codec table: paste the `datapoints:` and `timeResolutionMs` of its
 * `iridium` adapter (adapters/iridium/README.md). Order is the wire contract: append only.
 */
const iridiumSchema = z.strictObject({
  /** The modem's IMEI, as the RockBLOCK webhook names it. */
  imei: z.string().regex(/^\d{15}$/, 'expected the 15-digit IMEI of the modem'),
  timeResolutionMs: z.number().int().min(1).max(3_600_000).default(1000),
  datapoints: z
    .array(
      z.strictObject({
        id: z.string().regex(DATAPOINT_ID, 'datapoint id must match [a-z0-9_.-]{1,128}'),
        decimals: z.number().int().min(0).max(9).default(0),
        type: z.enum(['number', 'boolean']).default('number'),
        // Accepted so the adapter's list can be pasted as it is; they mean nothing here.
        forward: z.boolean().optional(),
        alarm: z.boolean().optional(),
      }),
    )
    .min(1)
    .max(1000),
});

const gatewaySchema = z.strictObject({
  id: z.string().regex(GATEWAY_ID, 'expected the gateway id: lower-case letters, digits, - or _ (max 64)'),
  name: z.string().min(1).max(200).optional(),
  tags: z
    .array(z.string().regex(/^[a-z0-9_.-]{1,64}$/))
    .max(32)
    .default([]),
  location: z.strictObject({ lat: z.number().min(-90).max(90), lon: z.number().min(-180).max(180) }).optional(),
  /** Credentials of its `http` sync link; without them the HTTP ingest refuses the gateway. */
  auth: gatewayAuthSchema.optional(),
  iridium: iridiumSchema.optional(),
  /** How commands reach it (central/commands/config.ts). */
  downlink: gatewayDownlinkSchema.optional(),
});

const tlsSchema = z.strictObject({
  caFile: z.string().min(1).optional(),
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  rejectUnauthorized: z.boolean().default(true),
  servername: z.string().min(1).optional(),
});

const mqttIngestSchema = z.strictObject({
  url: z.string().regex(/^(mqtts?|wss?):\/\/./, 'expected mqtt://, mqtts://, ws:// or wss:// URL'),
  /** Stable per receiver: the broker keeps its session (and what was in flight) across restarts. */
  clientId: z.string().min(1).max(128),
  /** Shared subscription group: every receiver of one fleet uses the same. */
  group: z
    .string()
    .regex(/^[^/#+]+$/, 'a share name has no /, # or +')
    .default('outpost-central'),
  /** Topic root of the gateways' links with `+` where the gateway id stands (the links' `topicRoot`, default `sites/<gatewayId>`). */
  topicRoot: z
    .string()
    .default('sites/+')
    .refine((r) => r.split('/').filter((l) => l === '+').length === 1 && !r.includes('#'), 'exactly one "+" level (the gateway id) and no "#"'),
  protocolVersion: z.union([z.literal(4), z.literal(5)]).default(5),
  /** MQTT 5: how long the broker keeps the session of a receiver that is gone (its queued messages wait for it). */
  sessionExpirySeconds: z.number().int().min(60).max(0xffffffff).default(86_400),
  /** Connections in the share group from this process (see README). */
  connections: z.number().int().min(1).max(64).default(1),
  /** Messages each connection commits at once; their PUBACKs go in order as they commit (MQTT 5: at most receiveMaximum, 64). */
  messagesInFlight: z.number().int().min(1).max(64).default(16),
  username: z.string().optional(),
  password: z.string().optional(),
  passwordFile: z.string().min(1).optional(),
  tls: tlsSchema.optional(),
  keepaliveSeconds: z.number().int().min(5).max(3600).default(30),
  reconnectMs: z.number().int().min(100).max(600_000).default(1000),
  /** Largest payload decoded (compressed bytes; the gateway's batches are far smaller). */
  maxPayloadBytes: z
    .number()
    .int()
    .min(1024)
    .max(256 * 1024 * 1024)
    .default(16 * 1024 * 1024),
});

const rockblockSchema = z
  .strictObject({
    /** `jwt`: every POST must carry Rock7's RS256 JWT, checked with `jwt.publicKeyFile`; `none`: unsigned POSTs are taken (a test rig, or a private network only). */
    verify: z.enum(['jwt', 'none']).default('jwt'),
    jwt: z.strictObject({ publicKeyFile: z.string().min(1) }).optional(),
    /** Refuse a JWT issued longer ago than this (0: no limit; Rock7 retries deliveries for a while). */
    maxAgeSeconds: z.number().int().min(0).default(0),
  })
  .refine((r) => r.verify !== 'jwt' || r.jwt !== undefined, {
    message: 'verify: jwt needs jwt.publicKeyFile (the Rock7 public key), or set verify: none',
    path: ['jwt'],
  });

export const centralSchema = z
  .strictObject({
    /** This process's name: logs, metrics. */
    id: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/)
      .default('central'),
    /** Where the embedded store keeps its database (`database: level`). */
    dataDir: z.string().min(1).default('./central-data'),
    /** With `database: level`. */
    level: z
      .strictObject({
        /**
         * Datapoints of the fleet whose newest chunks the embedded store keeps in memory, a few
         * KB each. Above it nearly every reading reads its chunk back from disk: 100,000
         * datapoints took 3,468 readings/s with the gateway's 20,000 and 22,713/s with 120,000
         * (bench/README.md "Central ingest"). A central is no 1 GB gateway: 200,000 by default.
         */
        cacheDatapoints: z.number().int().min(1000).max(10_000_000).default(200_000),
      })
      .prefault({}),
    /**
     * `level`: the embedded store in `dataDir`, one process. `http(s)://…`: this process is a
     * receiver only, and forwards what it takes to the central at that URL (which owns the
     * store). `postgres://user@host:5432/db`: PostgreSQL (store/postgres.ts), shared by any
     * number of central processes. Its password: in the URL, in `postgres.passwordFile`, or the
     * whole URL from the environment (`OUTPOST_CENTRAL_DATABASE`); it is never logged.
     */
    database: z.string().min(1).default('level'),
    /** With `database: http(s)://…`: the token this receiver forwards with (its hash in the owner's `ingest.http.receiverTokens`). */
    forward: z.strictObject({ token: z.string().min(24).optional(), tokenFile: z.string().min(1).optional() }).optional(),
    /** With `database: postgres://…`. */
    postgres: z
      .strictObject({
        /** A file holding the database password (trimmed), rather than the URL (node-postgres also reads PGPASSWORD and ~/.pgpass). */
        passwordFile: z.string().min(1).optional(),
        /** Connections this process opens at most. */
        poolSize: z.number().int().min(1).max(1000).default(10),
        /** Insert transactions in flight at most; batches arriving meanwhile are committed together in the next (group commit). */
        commitConcurrency: z.number().int().min(1).max(64).default(2),
        /** Records per insert transaction at most. */
        commitMaxRecords: z.number().int().min(100).max(100_000).default(10_000),
        /** How often the rollups (1 min … 1 d) are brought up to date; aggregates are exact in between. */
        rollupRefreshSeconds: z.number().int().min(1).max(86_400).default(60),
        /** How long one statement of a write may take; a transaction silent for twice that has its connection dropped. */
        writeTimeoutSeconds: z.number().int().min(1).max(3600).default(60),
      })
      .prefault({}),
    log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'), pretty: z.boolean().optional() }).prefault({}),
    http: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8090),
        /** sha256 hashes of API tokens (`outpost hash-token`): read the API and /metrics. */
        tokens: z.array(TOKEN_HASH).default([]),
        /** Largest request body (compressed), ingest included. */
        maxBodyBytes: z
          .number()
          .int()
          .min(1024)
          .max(256 * 1024 * 1024)
          .default(16 * 1024 * 1024),
        /** Proxies whose X-Forwarded-* headers name the client (web UI origin checks, login throttles); none by default. */
        trustedProxies: trustedProxiesSchema,
      })
      .prefault({}),
    /** The web UI's users, sessions and login throttles (central/web/config.ts). */
    auth: webAuthSchema,
    ingest: z
      .strictObject({
        http: z
          .strictObject({
            /** An HMAC-signed request whose `x-outpost-timestamp` is further from our clock than this is refused. */
            maxSkewSeconds: z.number().int().min(1).default(300),
            /** Ingest requests handled at once; more get 503 with Retry-After. */
            maxInflight: z.number().int().min(1).max(10_000).default(64),
            /** Largest batch after decompression (a gzip bomb stops here). */
            maxBatchBytes: z
              .number()
              .int()
              .min(1024)
              .max(1024 * 1024 * 1024)
              .default(64 * 1024 * 1024),
            /** sha256 hashes of the tokens receivers (`database: http://…`) forward with. */
            receiverTokens: z.array(TOKEN_HASH).default([]),
          })
          .prefault({}),
        mqtt: mqttIngestSchema.optional(),
        rockblock: rockblockSchema.optional(),
      })
      .prefault({}),
    fleet: z
      .strictObject({
        /** A gateway silent this long is shown offline (its MQTT will says so sooner). */
        offlineAfterSeconds: z.number().int().min(10).default(900),
      })
      .prefault({}),
    gateways: z.array(gatewaySchema).max(100_000).default([]),
    /** The command router (central/commands/config.ts). */
    commands: commandsSchema,
  })
  .superRefine((c, ctx) => {
    const seen = new Map<string, number>();
    const imeis = new Map<string, number>();
    c.gateways.forEach((g, i) => {
      if (seen.has(g.id))
        ctx.addIssue({ code: 'custom', path: ['gateways', i, 'id'], message: `gateway "${g.id}" is listed twice (first at gateways.${seen.get(g.id)})` });
      seen.set(g.id, i);
      if (g.auth?.type === 'hmac' && !g.auth.secret === !g.auth.secretFile)
        ctx.addIssue({ code: 'custom', path: ['gateways', i, 'auth'], message: 'hmac needs exactly one of secret or secretFile' });
      if (g.iridium) {
        const known = imeis.get(g.iridium.imei);
        if (known !== undefined) ctx.addIssue({ code: 'custom', path: ['gateways', i, 'iridium', 'imei'], message: `IMEI also belongs to gateways.${known}` });
        imeis.set(g.iridium.imei, i);
        const ids = new Set<string>();
        g.iridium.datapoints.forEach((d, k) => {
          if (ids.has(d.id)) ctx.addIssue({ code: 'custom', path: ['gateways', i, 'iridium', 'datapoints', k, 'id'], message: `"${d.id}" is listed twice` });
          ids.add(d.id);
        });
      }
    });
    const kind = databaseKind(c.database);
    if (kind === 'unknown') ctx.addIssue({ code: 'custom', path: ['database'], message: 'expected level, http(s)://<central> or postgres://…' });
    if (kind === 'forward' && !c.forward?.token === !c.forward?.tokenFile)
      ctx.addIssue({
        code: 'custom',
        path: ['forward'],
        message: 'a receiver forwarding to another central needs exactly one of forward.token or forward.tokenFile',
      });
    if (kind === 'postgres') {
      const problem = postgresUrlProblem(c.database);
      if (problem) ctx.addIssue({ code: 'custom', path: ['database'], message: problem });
      else if (c.postgres.passwordFile && new URL(c.database).password)
        ctx.addIssue({ code: 'custom', path: ['postgres', 'passwordFile'], message: 'the database URL carries a password already: give it in one place' });
    }
    if (kind === 'forward' && !c.ingest.mqtt)
      ctx.addIssue({ code: 'custom', path: ['ingest', 'mqtt'], message: 'a forwarding receiver takes MQTT: configure ingest.mqtt' });
  });

export type CentralConfig = z.output<typeof centralSchema>;
export type GatewayConfig = CentralConfig['gateways'][number];
export type MqttIngestConfig = NonNullable<CentralConfig['ingest']['mqtt']>;
export type RockblockConfig = NonNullable<CentralConfig['ingest']['rockblock']>;

export type DatabaseKind = 'level' | 'forward' | 'postgres' | 'unknown';

export function databaseKind(database: string): DatabaseKind {
  if (database === 'level') return 'level';
  if (/^https?:\/\/./.test(database)) return 'forward';
  if (/^postgres(ql)?:\/\//.test(database)) return 'postgres';
  return 'unknown';
}

/**
 * What is wrong with a PostgreSQL URL, in words that do not repeat it (it may hold the
 * password); undefined when node-postgres can take it.
 */
function postgresUrlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a valid URL: expected postgres://user@host:5432/database (%-encode special characters of a password)';
  }
  if (!u.hostname && !u.searchParams.get('host')) return 'the URL names no host (postgres://user@host:5432/database, or ?host=/run/postgresql for a socket)';
  if (u.pathname.length > 1 && u.pathname.slice(1).includes('/')) return 'the URL path is the database name alone (postgres://user@host:5432/database)';
  return undefined;
}

/** Validates a parsed config (YAML as data); `env` applies `OUTPOST_CENTRAL_*` overrides first. */
export function validateCentralConfig(raw: unknown, options: { env?: NodeJS.ProcessEnv; source?: string } = {}): CentralConfig {
  const copy = structuredClone(raw ?? {}) as Record<string, unknown>;
  const issues: IssueLine[] = [];
  if (copy === null || typeof copy !== 'object' || Array.isArray(copy)) throw configError(options.source, [{ path: '', message: 'expected a mapping' }]);
  if (options.env) applyEnvOverrides(copy, options.env, centralSchema, issues);
  const parsed = centralSchema.safeParse(copy);
  if (!parsed.success) issues.push(...issueLines(parsed.error));
  if (issues.length > 0 || !parsed.success) throw configError(options.source, issues);
  return parsed.data;
}

export async function loadCentralConfig(path: string, env: NodeJS.ProcessEnv = process.env): Promise<CentralConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new OutpostError('CONFIG_NOT_FOUND', `${path}: cannot be read (${(err as Error).message})`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new OutpostError('CONFIG_INVALID', `${path}: not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  return validateCentralConfig(raw, { env, source: path });
}

function configError(source: string | undefined, issues: IssueLine[]): OutpostError {
  const text = formatIssueLines(issues, { separator: '\n', indent: '  ' });
  return new OutpostError('CONFIG_INVALID', `${source ?? 'central configuration'} is invalid:\n${text}`, { details: issues });
}

/** Reads a secret file (trimmed): a missing or unreadable file is a config error naming the key. */
export async function readSecretFile(path: string, key: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    throw new OutpostError('CONFIG_INVALID', `${key}: ${path} cannot be read (${(err as Error).message})`, { cause: err });
  }
}
