import { defineErrors, type CodesOf } from '../../core/errors.js';

/**
 * The OCPP adapter's error codes (core/errors.ts explains catalogues). A module that throws
 * one of them imports this file, so the definition is registered before it is needed.
 */
export const chargerErrors = defineErrors({
  CHARGER_OFFLINE: { status: 503, retryable: true, message: 'charger is not connected' },
  CHARGER_CALL_FAILED: { status: 502, retryable: true, message: 'charger did not answer the OCPP call' },
  CHARGER_REJECTED: { status: 409, retryable: false, message: 'charger rejected the OCPP call' },
});

declare module '../../core/errors.js' {
  interface ErrorCatalogue extends CodesOf<typeof chargerErrors> {}
}
