import { z } from 'zod';

/** Links a command may take, in the gateway's order of preference (contract.ts `CommandLink`). */
export const COMMAND_LINKS = ['mqtt', 'http', 'iridium'] as const;

/**
 * `gateways[].downlink` in central.yaml: how commands reach this gateway.
 *
 *   downlink:
 *     links: [mqtt, http, iridium]      # order of preference; the first one up is used
 *     mqttSecret: …                      # the secret of its MQTT link's `downlinkAuth` (default: `auth.secret`, the link secret)
 *     mqttSecretFile: /etc/outpost-central/site-042.cmd
 *     topicRoot: sites/site-042          # its MQTT link's topicRoot (default: ingest.mqtt.topicRoot with the id)
 *     mt: { secret: <hex>, commands: [mailbox_check, send_now] }   # its iridium adapter's `mt:` block, pasted
 */
export const gatewayDownlinkSchema = z.strictObject({
  links: z
    .array(z.enum(COMMAND_LINKS))
    .min(1)
    .max(3)
    .refine((l) => new Set(l).size === l.length, 'each link once')
    .default(['http']),
  mqttSecret: z.string().min(16, 'a command secret has at least 16 characters').optional(),
  mqttSecretFile: z.string().min(1).optional(),
  topicRoot: z
    .string()
    .regex(/^[^#+]+$/, 'a topic root without + or #')
    .optional(),
  mt: z
    .strictObject({
      secret: z.string().regex(/^([0-9a-fA-F]{2}){16,64}$/, "hex, 16..64 bytes (the adapter's mt.secret)"),
      commands: z.array(z.string().min(1)).default([]),
    })
    .optional(),
});

/**
 * `commands:` in central.yaml: the router's timing and the RockBLOCK MT API.
 */
export const commandsSchema = z
  .strictObject({
    /** A command not delivered in this long expires (the request's `expiresAt` overrides it). */
    defaultTtlSeconds: z
      .number()
      .int()
      .min(60)
      .max(30 * 86_400)
      .default(86_400),
    /** How often the router looks for commands to send, resend and expire. */
    tickSeconds: z.number().int().min(1).max(3600).default(5),
    /** A command sent over MQTT without an ack after this is sent again (same requestId), on the first link up. */
    resendAfterSeconds: z.number().int().min(1).max(86_400).default(120),
    /** The gateway is on satellite when no other of its links was heard from for this long. */
    satelliteAfterSeconds: z
      .number()
      .int()
      .min(10)
      .max(30 * 86_400)
      .default(900),
    /** MQTT share group of the ack subscription (`$share/<group>/<root>/ack`). */
    ackGroup: z
      .string()
      .regex(/^[^/#+]+$/)
      .default('outpost-central-acks'),
    rockblock: z
      .strictObject({
        /** Rock7's MT API (tests point it at a local fake). */
        url: z.string().url().default('https://rockblock.rock7.com/rockblock/MT'),
        username: z.string().min(1),
        password: z.string().min(1).optional(),
        passwordFile: z.string().min(1).optional(),
        timeoutMs: z.number().int().min(100).max(120_000).default(30_000),
      })
      .refine((r) => r.password !== undefined || r.passwordFile !== undefined, 'password or passwordFile')
      .optional(),
  })
  .prefault({});

export type GatewayDownlinkConfig = z.infer<typeof gatewayDownlinkSchema>;
export type CommandsConfig = z.infer<typeof commandsSchema>;
