import type { StatusSchema } from '../../runtime/adapter.js';
import type { StatusFieldsOf } from '../../runtime/status-schema.js';
import type { PointError, SourceCounters } from './journal.js';
import type { Format } from './config.js';

/** The status `info` of a `bms-files` source (index.ts `publishStatus`). */
export interface BmsFilesStatusInfo {
  format: Format;
  timezone: string;
  dropDir: string | null;
  uploadPath: string | null;
  files: number;
  rows: number;
  points: number;
  gaps: number;
  failures: number;
  lastImport: SourceCounters['lastImport'] | null;
  lastFailure: SourceCounters['lastFailure'] | null;
  /** Uploaded files spooled and waiting. */
  queued: number;
  /** The file being imported now. */
  importing: string | null;
  unmappedPoints: string[];
  pointErrors: PointError[];
  dstSkippedRows: number;
  dstRepeatedRows: number;
  /** ALC WebCTRL only: points known from the points lists. */
  catalogue?: number;
}

const lastImportFields: StatusFieldsOf<NonNullable<SourceCounters['lastImport']>> = {
  file: { label: 'File' },
  at: { label: 'Imported', format: 'time' },
  rows: { label: 'Rows', format: 'count' },
  points: { label: 'Points', format: 'count' },
  gaps: { label: 'Gaps', format: 'count' },
  ms: { label: 'Took', format: 'duration' },
};

const lastFailureFields: StatusFieldsOf<NonNullable<SourceCounters['lastFailure']>> = {
  file: { label: 'File' },
  at: { label: 'Refused', format: 'time' },
  reason: { label: 'Reason' },
};

const pointErrorFields: StatusFieldsOf<PointError> = {
  name: { label: 'Point' },
  error: { label: 'Error in the export' },
};

const fields: StatusFieldsOf<BmsFilesStatusInfo> = {
  format: { label: 'Format', enum: { 'siemens-insight': 'Siemens Insight trend report', 'alc-webctrl': 'ALC WebCTRL trend export' } },
  timezone: { label: 'Time zone of the files' },
  dropDir: { label: 'Drop folder' },
  uploadPath: { label: 'Upload route' },
  importing: { label: 'Importing now' },
  queued: { label: 'Uploads waiting', format: 'count' },
  files: { label: 'Files imported', format: 'count' },
  rows: { label: 'Rows', format: 'count' },
  points: { label: 'Points stored', format: 'count' },
  gaps: { label: 'Gaps', format: 'count', help: '"No Data" / "Data Loss" cells, stored as bad readings' },
  failures: { label: 'Files refused', format: 'count', warnAbove: 0 },
  lastImport: { label: 'Last import', format: 'fields', fields: lastImportFields },
  lastFailure: { label: 'Last refusal', format: 'fields', fields: lastFailureFields },
  unmappedPoints: { label: 'Unmapped points', format: 'list', help: 'Columns no rule maps (unknownPoints: skip); the first 50' },
  pointErrors: { label: 'Point errors', format: 'rows', fields: pointErrorFields },
  dstSkippedRows: { label: 'Rows in the spring DST gap', format: 'count' },
  dstRepeatedRows: { label: 'Rows in the repeated autumn hour', format: 'count' },
  catalogue: { label: 'Points-list entries', format: 'count' },
};

export const bmsFilesStatusSchema: StatusSchema = { fields };
