import { defineErrors, type CodesOf } from '../core/errors.js';

/**
 * Outpost Central's error codes (core/errors.ts explains catalogues). The HTTP status is what
 * the ingest and API answer with; the gateway's HTTP link reads it (runtime/sync/http-link.ts):
 * 401/403/404 put the link down (credentials, unknown gateway: nothing a record can fix), any
 * other 4xx refuses the batch's records (the link isolates the bad one), 5xx/429/503 are
 * retried. Every module that throws one of these codes imports this file.
 */
export const centralErrors = defineErrors({
  CENTRAL_GATEWAY_UNKNOWN: { status: 403, retryable: false, message: 'the gateway is not configured on this central (gateways: in central.yaml)' },
  CENTRAL_AUTH_FAILED: { status: 401, retryable: false, message: 'gateway credentials missing or wrong (bearer token or HMAC signature)' },
  CENTRAL_BATCH_INVALID: { status: 400, retryable: false, message: 'the batch is not a format 1 JSON batch (gzip or plain)' },
  CENTRAL_RECORD_INVALID: { status: 422, retryable: false, message: 'a record of the batch is invalid' },
  CENTRAL_SATELLITE_INVALID: { status: 400, retryable: false, message: 'the satellite message cannot be decoded with the gateway datapoint table' },
  CENTRAL_BUSY: { status: 503, retryable: true, message: 'central is busy: retry later' },
  CENTRAL_FORWARD_FAILED: { status: 503, retryable: true, message: 'the central that owns the store did not take the batch' },
  CENTRAL_STORE_UNAVAILABLE: { status: 503, retryable: true, message: 'the database cannot be reached: retry later' },
  CENTRAL_CONFIG: { status: 400, retryable: false, message: 'central configuration is invalid' },
});

declare module '../core/errors.js' {
  interface ErrorCatalogue extends CodesOf<typeof centralErrors> {}
}
