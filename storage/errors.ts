import { defineErrors, type CodesOf } from '../core/errors.js';

/**
 * Storage's error codes (core/errors.ts explains catalogues). A module that throws one of them
 * imports this file, so the definition is registered before it is needed. Other layers throw
 * the same codes for files of their own (sync cursors, state files) and import it too.
 */
const storageErrors = defineErrors({
  STORAGE_WRITE_FAILED: { status: 503, retryable: true, message: 'storage write failed' },
  STORAGE_CLOSED: { status: 503, retryable: true, message: 'storage is closed' },
  STORAGE_OPEN_FAILED: { status: 500, retryable: false, message: 'storage could not be opened' },
  STORAGE_IN_USE: { status: 409, retryable: true, message: 'storage is in use by a running gateway' },
  STORAGE_CORRUPT: { status: 500, retryable: false, message: 'storage is damaged and needs repair' },
  BACKUP_INVALID: { status: 400, retryable: false, message: 'backup file is invalid' },
  RESTORE_BUSY: { status: 409, retryable: true, message: 'a restore is already running' },
});

declare module '../core/errors.js' {
  interface ErrorCatalogue extends CodesOf<typeof storageErrors> {}
}
