import { open } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { OutpostError, isOutpostError } from '../../core/errors.js';
import './errors.js';
import { importFile, type ImportOptions, type ImportResult, type ImportTarget } from './importer.js';

export type CheckOptions = Omit<ImportOptions, 'target' | 'checkpoint' | 'resume' | 'registered'> & {
  now(): number;
  /** Sees every point pass 1 would store (e.g. the retention check, before anything is stored). */
  onPoints?(points: ReadonlyArray<{ id: string; t: number }>): void;
};

/**
 * Pass 1 of an import: the whole file through the parser and the mapping with nothing stored
 * and no datapoint registered, so a file with a defect anywhere is refused whole — no rows
 * before the defect stored, no datapoints of a junk file left behind (issue 21: a refused ALC
 * file created 19 datapoints such as `alc.1730602800000`). Parsing costs a fraction of storing
 * (~3 M points/s), and memory stays bounded by one batch.
 *
 * It also tells a file that is cut off or still being written (`BMS_FILE_INCOMPLETE`) from a
 * defective one (`BMS_FILE_INVALID`):
 * - the format's trailer or header is missing at the end (Insight `End of Report`);
 * - the last line has no line break and the defect is on it, or (formats without a trailer:
 *   ALC) the last row has no line break at all — `65.0` cut to `6` parses as a number, and
 *   only the missing line break shows that the row may be cut.
 */
export async function checkFile(o: CheckOptions): Promise<ImportResult> {
  const dry: ImportTarget = {
    register: async () => undefined,
    publishValues: async (points) => {
      o.onPoints?.(points);
      return points.length;
    },
    now: o.now,
  };
  const terminated = await endsWithLineBreak(o.path);
  let result: ImportResult;
  try {
    result = await importFile({ ...o, target: dry, registered: new Set(), checkpoint: async () => undefined });
  } catch (err) {
    if (!isOutpostError(err) || err.code !== 'BMS_FILE_INVALID') throw err;
    const details = (err.details ?? {}) as { line?: number; reason?: string; atEnd?: boolean };
    if (details.atEnd) throw incomplete(details.line ?? 0, `${details.reason ?? err.message}`);
    if (!terminated && details.line !== undefined && details.line >= (await countLines(o.path))) {
      throw incomplete(details.line, `the last row is cut off (${details.reason ?? err.message}) and the file does not end with a line break`);
    }
    throw err;
  }
  if (!terminated && !o.parser.endsWithTrailer && result.rows > 0) {
    throw incomplete(result.lines, 'the last row has no line break at its end, so it may be cut off');
  }
  return result;
}

function incomplete(line: number, reason: string): OutpostError {
  return new OutpostError('BMS_FILE_INCOMPLETE', line > 0 ? `line ${line}: ${reason}` : reason, { details: { line, reason } });
}

/** True when the file's last byte ends a line (UTF-16 too: `\n\0` or `\0\n`). Empty files count as ended. */
async function endsWithLineBreak(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size === 0) return true;
    const n = Math.min(2, size);
    const buf = Buffer.alloc(n);
    await fh.read(buf, 0, n, size - n);
    const last = buf[n - 1]!;
    const isBreak = (b: number | undefined): boolean => b === 0x0a || b === 0x0d;
    return isBreak(last) || (last === 0 && n === 2 && isBreak(buf[0]));
  } finally {
    await fh.close();
  }
}

/** Lines in the file as `readLines` counts them: LF (or, with none, CR) breaks, plus an unterminated last line. */
async function countLines(path: string): Promise<number> {
  let lf = 0;
  let cr = 0;
  let last = -1;
  for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) lf++;
    for (let i = chunk.indexOf(0x0d); i !== -1; i = chunk.indexOf(0x0d, i + 1)) cr++;
    if (chunk.length > 0) last = chunk[chunk.length - 1]!;
  }
  const breaks = lf > 0 ? lf : cr;
  return breaks + (last === 0x0a || last === 0x0d || last === -1 ? 0 : 1);
}
