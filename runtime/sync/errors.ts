import { defineErrors, type CodesOf } from '../../core/errors.js';

/**
 * The sync service's error codes (core/errors.ts explains catalogues). A module that throws
 * one of them imports this file, so the definition is registered before it is needed.
 */
export const syncErrors = defineErrors({
  SYNC_LINK_DOWN: { status: 503, retryable: true, message: 'upstream link is not connected' },
  SYNC_ACK_TIMEOUT: { status: 504, retryable: true, message: 'upstream did not acknowledge in time' },
  SYNC_THROTTLED: { status: 429, retryable: true, message: 'upstream asked to retry later' },
  SYNC_REJECTED: { status: 502, retryable: false, message: 'upstream refused the batch' },
  SYNC_LINK_REFUSED: { status: 502, retryable: true, message: 'upstream refused the request itself (authentication, URL or method), not its records' },
  SYNC_BLOCKED: { status: 502, retryable: true, message: 'upstream refuses records and they could not be isolated as single poison records' },
  SYNC_CONFIG: { status: 400, retryable: false, message: 'sync configuration is unusable (certificate, key or URL)' },
  SYNC_COMMAND_INVALID: { status: 400, retryable: false, message: 'downlink command is malformed or unknown' },
  SYNC_COMMAND_UNSIGNED: { status: 401, retryable: false, message: 'downlink command is not signed and this link takes only signed commands' },
  SYNC_COMMAND_FORGED: { status: 403, retryable: false, message: 'downlink command signature does not match the link secret' },
  SYNC_COMMAND_STALE: { status: 400, retryable: false, message: 'downlink command is too old, or dated too far in the future (clock skew)' },
  SYNC_COMMAND_SUPERSEDED: { status: 409, retryable: false, message: 'retained downlink command is not newer than the last one applied' },
});

/**
 * Codes of the satellite contract (satellite.ts): thrown by the fallback link here and by the
 * modem adapter that implements the contract (adapters/iridium/errors.ts loads this file).
 */
export const satelliteErrors = defineErrors({
  IRIDIUM_MO_SIZE: { status: 400, retryable: false, message: 'Iridium MO message size is not acceptable' },
  IRIDIUM_BUDGET: { status: 429, retryable: true, message: 'Iridium credit budget exhausted' },
  IRIDIUM_CODEC: { status: 400, retryable: false, message: 'Iridium message cannot be encoded or decoded' },
});

declare module '../../core/errors.js' {
  interface ErrorCatalogue extends CodesOf<typeof syncErrors>, CodesOf<typeof satelliteErrors> {}
}
