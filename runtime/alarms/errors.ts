import { defineErrors, type CodesOf } from '../../core/errors.js';

/**
 * The alarms feature's error codes (core/errors.ts explains catalogues). A module that throws
 * one of them imports this file, so the definition is registered before it is needed.
 */
export const alarmErrors = defineErrors({
  ALARM_UNKNOWN: { status: 404, retryable: false, message: 'no such alarm' },
  ALARM_ACKNOWLEDGED: { status: 409, retryable: false, message: 'the alarm is already acknowledged' },
  ALARM_NOT_RAISED: { status: 409, retryable: false, message: 'the alarm has not been raised since it was last acknowledged' },
  ALARM_OWNED: { status: 409, retryable: false, message: 'the alarm id belongs to a configured rule' },
  ALARM_INVALID: { status: 400, retryable: false, message: 'the alarm request is malformed' },
  ALARM_LIMIT: { status: 429, retryable: false, message: 'too many alarms raised from flows' },
});

declare module '../../core/errors.js' {
  interface ErrorCatalogue extends CodesOf<typeof alarmErrors> {}
}
