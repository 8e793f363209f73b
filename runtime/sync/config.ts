import { z } from 'zod';

const tlsSchema = z
  .strictObject({
    /** PEM file of the CA that signed the broker's certificate (omit to use the system CAs). */
    caFile: z.string().min(1).optional(),
    /** PEM client certificate and key for mutual TLS. */
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    /** Only for test benches: never disable verification on a real site. */
    rejectUnauthorized: z.boolean().default(true),
    /** Name to verify instead of the URL's host (certificate issued for a DNS name, URL by IP). */
    servername: z.string().optional(),
  })
  .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), 'certFile and keyFile go together');

const common = {
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'expected lower-case letters, digits, - or _ (max 32)'),
  role: z.enum(['primary', 'fallback']).default('primary'),
  /** Records per batch (the scheduler also honours the link's own limit). */
  batchRecords: z.number().int().min(1).max(50_000).default(2000),
  /** Batches sent but not yet acknowledged, at most. */
  window: z.number().int().min(1).max(256).default(16),
  /** Bandwidth cap in payload bytes per second (0 = none). */
  maxBytesPerSecond: z.number().int().min(0).default(0),
  /** How long to wait for PUBACK / HTTP response before the batch counts as failed. */
  ackTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
  /** gzip level of batches: 1 is fast and already shrinks JSON by ~5x. */
  gzipLevel: z.number().int().min(1).max(9).default(1),
};

export const mqttLinkSchema = z
  .strictObject({
    ...common,
    type: z.literal('mqtt'),
    /** mqtt://host:1883 or mqtts://host:8883 */
    url: z.string().regex(/^(mqtt|mqtts|tcp|tls|ssl|ws|wss):\/\//, 'expected mqtt://, mqtts://, ws:// or wss:// URL'),
    clientId: z.string().min(1).max(128).optional(),
    username: z.string().min(1).optional(),
    /** Literal password, or `passwordFile` to keep it out of the YAML. */
    password: z.string().optional(),
    passwordFile: z.string().min(1).optional(),
    tls: tlsSchema.optional(),
    /** Topic root; `<gatewayId>` is replaced. Data goes to `<root>/data`, commands come on `<root>/cmd/#`. */
    topicRoot: z.string().min(1).default('sites/<gatewayId>'),
    keepaliveSeconds: z.number().int().min(5).max(3600).default(30),
    reconnectMs: z.number().int().min(100).max(600_000).default(2000),
    /** Payload format: Outpost JSON batches, or Sparkplug B (spBv1.0) for SCADA hosts. */
    format: z.enum(['json', 'sparkplug']).default('json'),
    sparkplug: z
      .strictObject({
        groupId: z
          .string()
          .regex(/^[^/+#]+$/, 'no /, + or # in a Sparkplug group id')
          .default('outpost'),
        /** Defaults to the gateway id. */
        edgeNodeId: z
          .string()
          .regex(/^[^/+#]+$/, 'no /, + or # in a Sparkplug edge node id')
          .optional(),
      })
      .prefault({}),
    /** Subscribe to `<root>/cmd/#` for setpoints and commands from upstream. */
    downlink: z.boolean().default(true),
    /**
     * Who may give commands on `<root>/cmd/#` (runtime/sync/command-auth.ts): HMAC-SHA256 with this
     * link's secret over `<t>.<body>`, as the HTTP link signs, in a JSON envelope
     * `{"t","sig","body"}`; commands older than `maxAgeMs` or more than `maxSkewMs` in the future
     * are refused. `none` accepts unsigned commands from anyone who may publish there. Omitted:
     * every command is refused (SYNC_COMMAND_UNSIGNED) until one of the two is configured.
     */
    downlinkAuth: z
      .union([
        z.literal('none'),
        z
          .strictObject({
            secret: z.string().min(16).optional(),
            secretFile: z.string().min(1).optional(),
            maxAgeMs: z
              .number()
              .int()
              .min(1000)
              .max(7 * 24 * 3600_000)
              .default(300_000),
            maxSkewMs: z.number().int().min(0).max(3_600_000).default(60_000),
          })
          .refine((a) => (a.secret === undefined) !== (a.secretFile === undefined), 'give secret or secretFile (one of them)'),
      ])
      .optional(),
  })
  .refine((l) => !(l.password !== undefined && l.passwordFile !== undefined), 'give password or passwordFile, not both');

export const httpLinkSchema = z.strictObject({
  ...common,
  type: z.literal('http'),
  /** Batches are POSTed here. */
  url: z.string().regex(/^https?:\/\//, 'expected http:// or https:// URL'),
  auth: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('none') }),
      z.strictObject({ type: z.literal('bearer'), token: z.string().min(1).optional(), tokenFile: z.string().min(1).optional() }),
      /** HMAC-SHA256 of `<timestamp>.<body>` in `x-outpost-signature`, timestamp in `x-outpost-timestamp`. */
      z.strictObject({ type: z.literal('hmac'), secret: z.string().min(16).optional(), secretFile: z.string().min(1).optional() }),
    ])
    .default({ type: 'none' }),
  tls: tlsSchema.optional(),
  /** A link counts as down after this many consecutive failures (transport errors, 5xx). */
  downAfterFailures: z.number().int().min(1).max(100).default(1),
  /**
   * Concurrent POSTs. 1 keeps records in order per datapoint at the receiver: with more,
   * a retried batch can land after a later one (the server handles requests in any
   * order). Raise it only for a receiver that orders by sequence number.
   */
  window: z.number().int().min(1).max(64).default(1),
  /**
   * HTTP poll downlink: when present, `GET <url>/downlink?after=<cursor>&limit=<limit>` every
   * `intervalMs` (signed like the uplink), results posted to `<url>/downlink/ack`.
   */
  downlink: z
    .strictObject({
      /** Base URL of the downlink API; defaults to the link's `url`. */
      url: z
        .string()
        .regex(/^https?:\/\//, 'expected http:// or https:// URL')
        .optional(),
      intervalMs: z.number().int().min(50).max(3_600_000).default(10_000),
      /** Commands asked for per poll. */
      limit: z.number().int().min(1).max(500).default(20),
      /** Longest wait between polls after consecutive errors (exponential backoff with jitter). */
      maxBackoffMs: z.number().int().min(50).max(3_600_000).default(300_000),
    })
    .optional(),
});

/**
 * The Iridium SBD modem of an `iridium` adapter as the metered fallback link: priority
 * data (alarms, then latest values) in the adapter's compact codec, within its credit
 * budget; MT commands go through the downlink and are acknowledged in a small MO message.
 */
export const iridiumLinkSchema = z.strictObject({
  name: common.name,
  /** A satellite link only ever carries priority data while the primaries are down. */
  role: z.literal('fallback').default('fallback'),
  type: z.literal('iridium'),
  /** Id of the `iridium` adapter instance (its `id:` under `adapters:`). */
  adapter: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'expected the id of an iridium adapter'),
  /**
   * Largest message sent (bytes, ≤ 340 = the 9602/9603 MO limit). Billing is per started
   * 50 bytes: 100 caps every message at 2 credits.
   */
  messageBytes: z.number().int().min(20).max(340).default(340),
  /** Route authenticated MT setpoints through the sync downlink and acknowledge them over the modem. */
  downlink: z.boolean().default(true),
  maxBytesPerSecond: common.maxBytesPerSecond,
});

/** A link implemented in-process by code (tests). */
const customLinkSchema = z.strictObject({
  name: common.name,
  role: common.role,
  type: z.literal('custom'),
  batchRecords: common.batchRecords,
  window: z.number().int().min(1).max(256).default(1),
  maxBytesPerSecond: common.maxBytesPerSecond,
});

const linkSchema = z.discriminatedUnion('type', [mqttLinkSchema, httpLinkSchema, iridiumLinkSchema, customLinkSchema]);

/** The `sync:` section of the gateway configuration. */
export const syncSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** Tried in order: the first primary that is up carries the history. */
    links: z.array(linkSchema).default([]),
    /** How often to look for new outbox records when idle. */
    pollMs: z.number().int().min(10).max(60_000).default(200),
    /** Acknowledged records are deleted from the outbox in bulk at most this often (the cursor file moves on every ack). */
    releaseIntervalMs: z.number().int().min(0).max(600_000).default(2000),
    backoff: z
      .strictObject({
        initialMs: z.number().int().min(10).max(600_000).default(1000),
        maxMs: z.number().int().min(10).max(3_600_000).default(60_000),
      })
      .prefault({}),
    /** Live lane: while the backlog is deeper than this many records, latest values go out first on `<root>/live`. */
    live: z
      .strictObject({
        enabled: z.boolean().default(true),
        thresholdRecords: z.number().int().min(1).default(10_000),
        intervalMs: z.number().int().min(100).default(10_000),
        /** Records scanned at the tail of the outbox to pick latest values and alarms. */
        scanRecords: z.number().int().min(100).max(1_000_000).default(5_000),
      })
      .prefault({}),
    fallback: z
      .strictObject({
        /** Switch to fallback links once every primary has been down this long. */
        afterMs: z.number().int().min(0).default(300_000),
        /** How often to send a priority batch over a fallback link. */
        intervalMs: z.number().int().min(100).default(900_000),
        /** Datapoint id globs (README, Patterns: `*`, `?`) that are alarms: always first. Records with q bad/stale count too. */
        alarms: z.array(z.string().min(1)).default(['*.alarm', '*.alarm.*', 'alarm.*']),
      })
      .prefault({}),
    /** Publishes gateway.sync.* datapoints (backlog, age, rate) at this interval; 0 = off. */
    datapointsIntervalMs: z.number().int().min(0).default(60_000),
    /** Downlink requests remembered to answer a redelivered command without applying it twice. */
    downlinkMemory: z.number().int().min(10).max(100_000).default(1000),
    /**
     * Configuration pushed by the central side (`config` downlink command, remote-config.ts).
     * Off by default. `restart`: an accepted config restarts the gateway at once (exit 75 for
     * the service manager); otherwise it applies at the next start. `allowSecurity`: it may
     * change security-sensitive keys (auth, listeners, link URLs and secrets, file paths;
     * runtime/config/remote-policy.ts), which are refused otherwise.
     */
    remoteConfig: z
      .strictObject({
        enabled: z.boolean().default(false),
        restart: z.boolean().default(false),
        allowSecurity: z.boolean().default(false),
      })
      .prefault({}),
  })
  .superRefine((s, ctx) => {
    const names = new Set<string>();
    s.links.forEach((l, i) => {
      if (names.has(l.name)) ctx.addIssue({ code: 'custom', path: ['links', i, 'name'], message: `duplicate link name "${l.name}"` });
      names.add(l.name);
    });
    if (s.enabled && !s.links.some((l) => l.role === 'primary'))
      ctx.addIssue({ code: 'custom', path: ['links'], message: 'sync is enabled but no primary link is configured' });
    if (s.backoff.initialMs > s.backoff.maxMs) ctx.addIssue({ code: 'custom', path: ['backoff', 'initialMs'], message: 'initialMs must not exceed maxMs' });
  });

export type SyncConfig = z.output<typeof syncSchema>;
export type LinkConfig = z.output<typeof linkSchema>;
export type MqttLinkConfig = z.output<typeof mqttLinkSchema>;
export type HttpLinkConfig = z.output<typeof httpLinkSchema>;
export type CustomLinkConfig = z.output<typeof customLinkSchema>;
export type IridiumLinkConfig = z.output<typeof iridiumLinkSchema>;
