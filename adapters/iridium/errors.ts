import { defineErrors, type CodesOf } from '../../core/errors.js';
import '../../runtime/sync/errors.js';

/**
 * The Iridium adapter's error codes (core/errors.ts explains catalogues). A module that throws
 * one of them imports this file. The three codes the sync service's satellite link throws as
 * well (IRIDIUM_MO_SIZE, IRIDIUM_BUDGET, IRIDIUM_CODEC) belong to the satellite contract and
 * live with it in runtime/sync/errors.ts (sync never imports an adapter); this file loads them.
 */
export const iridiumErrors = defineErrors({
  IRIDIUM_TIMEOUT: { status: 504, retryable: true, message: 'Iridium modem did not answer in time' },
  IRIDIUM_PROTOCOL: { status: 502, retryable: true, message: 'Iridium modem sent an unexpected response' },
  IRIDIUM_CHECKSUM: { status: 502, retryable: true, message: 'Iridium SBD checksum mismatch' },
  IRIDIUM_SESSION_FAILED: { status: 503, retryable: true, message: 'Iridium SBD session failed' },
  IRIDIUM_ACCOUNT: { status: 503, retryable: false, message: 'Iridium access denied (account or modem locked)' },
  IRIDIUM_QUEUE_FULL: { status: 503, retryable: true, message: 'Iridium send queue is full' },
  IRIDIUM_MT_REFUSED: { status: 403, retryable: false, message: 'Iridium MT message refused (forged, replayed or malformed)' },
});

declare module '../../core/errors.js' {
  interface ErrorCatalogue extends CodesOf<typeof iridiumErrors> {}
}
