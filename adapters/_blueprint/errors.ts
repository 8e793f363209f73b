import { defineErrors, type CodesOf } from '../../core/errors.js';

/**
 * This adapter's error codes (core/errors.ts explains catalogues). Name them after the
 * adapter, keep the strings stable (operators and dashboards match on them), and say whether
 * the same request may succeed later: a start that throws a non-retryable code is not retried
 * by the host (the adapter shows `failed` with the message until the gateway restarts).
 * Every module that throws one of these codes imports this file.
 */
export const blueprintErrors = defineErrors({
  BLUEPRINT_DEVICE_TIMEOUT: { status: 504, retryable: true, message: 'blueprint device did not answer in time' },
  BLUEPRINT_SETTING_INVALID: { status: 400, retryable: false, message: 'blueprint device setting is invalid' },
});

declare module '../../core/errors.js' {
  interface ErrorCatalogue extends CodesOf<typeof blueprintErrors> {}
}
