import { defineErrors, type CodesOf } from '../../core/errors.js';

/** Errors of the command API and router (central/commands). */
export const commandErrors = defineErrors({
  COMMAND_INVALID: { status: 400, retryable: false, message: 'the command request is invalid' },
  COMMAND_UNKNOWN: { status: 404, retryable: false, message: 'no such command' },
  COMMAND_NO_TARGET: { status: 404, retryable: false, message: 'the target names no configured gateway' },
  COMMAND_SEND_FAILED: { status: 502, retryable: true, message: 'a link did not take the command' },
});

declare module '../../core/errors.js' {
  interface ErrorCatalogue extends CodesOf<typeof commandErrors> {}
}
