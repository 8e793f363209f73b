/** Gateway ids as the gateway's own config allows them (runtime/config/schema.ts `gateway.id`). */
export const GATEWAY_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;
