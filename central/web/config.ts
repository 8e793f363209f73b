import { z } from 'zod';
import { authCommonShape, trustedProxiesSchema } from '../../runtime/auth/config-schema.js';

/**
 * The `auth:` section of central.yaml: the web UI's users, sessions and login throttles. The
 * same keys and defaults as the gateway's `auth:` (runtime/config/schema.ts), less what central
 * has no use for: no `loopback` role (nobody is trusted by address), no admin or delegated
 * paths (central's are fixed: central/web/security.ts).
 */
export const webAuthSchema = z.strictObject(authCommonShape).prefault({});

/** `http.trustedProxies`, as the gateway's. */
export { trustedProxiesSchema };
