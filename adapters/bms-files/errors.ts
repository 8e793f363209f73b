import { defineErrors, type CodesOf } from '../../core/errors.js';

/**
 * The BMS trend-file adapter's error codes (core/errors.ts explains catalogues). A module that
 * throws one of them imports this file, so the definition is registered before it is needed.
 */
export const bmsErrors = defineErrors({
  BMS_FILE_INVALID: { status: 400, retryable: false, message: 'building-automation export file is malformed' },
  BMS_FILE_INCOMPLETE: { status: 400, retryable: false, message: 'building-automation export file is cut off or still being written' },
  BMS_POINT_UNMAPPED: { status: 400, retryable: false, message: 'building-automation point has no datapoint mapping' },
});

declare module '../../core/errors.js' {
  interface ErrorCatalogue extends CodesOf<typeof bmsErrors> {}
}
