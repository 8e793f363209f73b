import { z } from 'zod';

/**
 * The `flows:` section of the Outpost config (Node-RED embedding). Disabled by default:
 * Node-RED costs ~70 MB of RSS, which a 1 GB Raspberry Pi site may want for something else.
 */
export const FlowsConfigSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /**
     * Key that encrypts credentials stored in flows (flows_cred.json). Required when enabled:
     * without it Node-RED generates a key and stores it beside the credentials it protects.
     * Use `OUTPOST_FLOWS_CREDENTIALSECRET` or `credentialSecretFile` to keep it out of the YAML.
     */
    credentialSecret: z.string().min(16, 'expected at least 16 characters (e.g. `openssl rand -hex 32`)').optional(),
    /** File holding the credential secret (first line), e.g. a Docker/systemd secret. */
    credentialSecretFile: z.string().min(1).optional(),
    /**
     * Flows deployed from this file at every start (fleet roll-out). Editor deploys still work
     * but are replaced by the file on the next start.
     */
    flowFile: z.string().min(1).optional(),
    /** Seed the shipped demo flows (flows/default-flows.json) when no flows exist yet. */
    defaultFlows: z.boolean().default(false),
    /** Serve the editor at /flows; false runs flows headless (admin API stays up for export/deploy). */
    editor: z.boolean().default(true),
    /** Node-RED core node types (file names without .js, e.g. "90-exec") left unloaded to save memory or forbid them. */
    excludeNodes: z.array(z.string().min(1)).default([]),
    /** Node-RED log level forwarded to the Outpost log. */
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  })
  .prefault({});

export type FlowsConfig = z.output<typeof FlowsConfigSchema>;
