import { createReadStream } from 'node:fs';
import type { AlcOptions } from './alc-webctrl.js';
import { splitCsvLine } from './csv.js';
import { readLines } from './lines.js';
import { fileError } from './report.js';
import type { SlashDateOrder } from './timestamps.js';

/**
 * What a file's slash dates say about their order: `MDY` (a second field over 12 somewhere,
 * e.g. `5/13/2024`, or only dates that read the same either way such as `5/5/2024`), `DMY`
 * (a first field over 12, `13/5/2024`), `ambiguous` (every date could be either, e.g. only
 * `05/11/2024`: May 11 or 5 November), `n/a` (no slash dates: ISO 8601, epoch, points list).
 */
export type DateOrder = SlashDateOrder | 'ambiguous' | 'n/a';

/** Where the dates are: Insight rows start with them; ALC has them in its timestamp column. */
export type DateOrderSource =
  | { format: 'siemens-insight' }
  | { format: 'alc-webctrl'; alc: Pick<AlcOptions, 'skipLines' | 'delimiter' | 'timestampColumn' | 'timeColumn' | 'timestampFormat'> };

/** A date cell as found, for messages. */
export interface DateSeen {
  line: number;
  /** The date, e.g. `05/11/2024`. */
  text: string;
  /** The whole timestamp (with the time column, if separate), at most 40 characters. */
  stamp: string;
}

export interface DateOrderEvidence {
  order: DateOrder;
  /** Slash dates looked at. */
  dates: number;
  /** First date whose first field is over 12 (day first). */
  dayFirst?: DateSeen;
  /** First date whose second field is over 12 (month first). */
  monthFirst?: DateSeen;
  /** First date that reads differently in the two orders (both fields 1–12 and unequal). */
  ambiguous?: DateSeen;
}

/** `M/D/YYYY` or `D/M/YYYY` at the start of a cell (opening quote and blanks allowed); the time may follow. */
const SLASH_DATE = /^\s*"?\s*(\d{1,2})\/(\d{1,2})\/(\d{4})(?!\d)/;

const POINTS_LIST = /^\s*"?location"?\s*[,;\t]\s*"?control program"?/i;

/**
 * Reads the date cells of a whole export (only those: the heading's `Date Range:` and the
 * like are not rows) and collects the evidence. Every row is looked at, so a file that mixes
 * both orders (an M/D export re-saved by Excel under a day-first locale converts only the
 * dates it can read as D/M and leaves `12/26/2017` as text) is seen as such.
 */
export async function scanDateOrder(lines: AsyncIterable<string>, source: DateOrderSource, signal?: AbortSignal): Promise<DateOrderEvidence> {
  const ev: DateOrderEvidence = { order: 'n/a', dates: 0 };
  const alc = source.format === 'alc-webctrl' ? source.alc : undefined;
  /** ALC: column of the timestamp once the header is read; -1 before it. */
  let column = alc ? -1 : 0;
  let timeColumn: number | undefined;
  let lineNo = 0;
  for await (const text of lines) {
    lineNo++;
    if (signal?.aborted) throw signal.reason ?? new Error('aborted');
    if (alc && column < 0) {
      if (lineNo <= alc.skipLines || text.trim() === '') continue;
      // A points list has no readings; a header without the column is the parser's to report.
      if (POINTS_LIST.test(text)) break;
      column = headerColumn(text, alc.delimiter, alc.timestampColumn);
      if (column < 0) break;
      if (alc.timeColumn !== undefined) timeColumn = headerColumn(text, alc.delimiter, alc.timeColumn);
      continue;
    }
    let cell: string | undefined = text;
    let fields: string[] | undefined;
    if (column > 0 || timeColumn !== undefined) {
      fields = splitCsvLine(text, alc!.delimiter);
      cell = fields?.[column];
    }
    const m = cell === undefined ? null : SLASH_DATE.exec(cell);
    if (!m) continue;
    const a = Number(m[1]);
    const b = Number(m[2]);
    // 0, over 31, or both over 12 is no date at all: the parser refuses that row.
    if (a < 1 || b < 1 || a > 31 || b > 31 || (a > 12 && b > 12)) continue;
    ev.dates++;
    const seen = (): DateSeen => {
      const stamp =
        fields && timeColumn !== undefined && timeColumn >= 0
          ? `${fields[column]!.trim()} ${(fields[timeColumn] ?? '').trim()}`
          : fields
            ? cell!.trim()
            : firstCell(text, alc?.delimiter ?? ',');
      return { line: lineNo, text: `${m[1]}/${m[2]}/${m[3]}`, stamp: stamp.slice(0, 40) };
    };
    if (a > 12) ev.dayFirst ??= seen();
    else if (b > 12) ev.monthFirst ??= seen();
    else if (a !== b) ev.ambiguous ??= seen();
  }
  if (ev.dayFirst && !ev.monthFirst) ev.order = 'DMY';
  else if (ev.monthFirst && !ev.dayFirst) ev.order = 'MDY';
  else if (ev.dayFirst && ev.monthFirst) ev.order = 'ambiguous';
  else if (ev.ambiguous) ev.order = 'ambiguous';
  else if (ev.dates > 0) ev.order = 'MDY'; // only dates such as 5/5/2024: the same day either way
  return ev;
}

function firstCell(text: string, delimiter: string): string {
  return (splitCsvLine(text, delimiter)?.[0] ?? text).trim();
}

function headerColumn(text: string, delimiter: string, col: string | number): number {
  const names = (splitCsvLine(text, delimiter) ?? []).map((f) => f.trim().toLowerCase());
  const i = typeof col === 'number' ? col : names.indexOf(col.toLowerCase());
  return i >= 0 && i < names.length ? i : -1;
}

/**
 * The order of day and month in the slash dates of the file at `path` (streamed, in any
 * encoding `readLines` reads). A file whose dates contradict each other (`13/5/2024` and
 * `5/13/2024`) is refused: no single order reads it.
 */
export async function detectDateOrder(path: string, source: DateOrderSource, signal?: AbortSignal): Promise<DateOrder> {
  const ev = await scanFile(path, source, signal);
  if (ev.dayFirst && ev.monthFirst) throw contradiction(ev.dayFirst, ev.monthFirst);
  return ev.order;
}

/**
 * What the importer calls before parsing a file (before pass 1): the date order to give the
 * parser, or undefined when the format decides by itself. Refuses (BMS_FILE_INVALID):
 * - dates that contradict each other (both orders in one file);
 * - ALC with `timestampFormat: auto` whose every date could be either order: guessing
 *   month first stored 05/11/2024 as May 11 with no warning; the operator must say;
 * - Siemens Insight dates that prove day first: Insight writes M/D/YYYY (its report format
 *   is fixed, see siemens-insight.ts), so such a file was re-saved under another locale and
 *   its dates are not Insight's.
 * An explicit ALC `timestampFormat` states its order; the file is not read.
 */
export async function decideDateOrder(path: string, source: DateOrderSource, signal?: AbortSignal): Promise<SlashDateOrder | undefined> {
  if (source.format === 'alc-webctrl' && source.alc.timestampFormat !== 'auto') return undefined;
  const ev = await scanFile(path, source, signal);
  if (ev.dayFirst && ev.monthFirst) throw contradiction(ev.dayFirst, ev.monthFirst);
  if (source.format === 'siemens-insight') {
    if (ev.order === 'DMY') {
      const d = ev.dayFirst!;
      throw fileError(
        d.line,
        `date ${d.text} has the day first (${d.text.split('/')[0]} is no month), but Siemens Insight writes M/D/YYYY: the report was re-saved with day-first dates (Excel under another locale?); export it again from Insight`,
      );
    }
    return undefined;
  }
  if (ev.order === 'ambiguous') {
    const a = ev.ambiguous!;
    const [first, second, year] = a.text.split('/').map(Number) as [number, number, number];
    const md = new Date(Date.UTC(year, first - 1, second)).toLocaleDateString('en-US', { month: 'long', day: 'numeric', timeZone: 'UTC' });
    const dm = new Date(Date.UTC(year, second - 1, first)).toLocaleDateString('en-GB', { month: 'long', day: 'numeric', timeZone: 'UTC' });
    throw fileError(
      0,
      `dates such as ${a.text} (line ${a.line}) could be ${md} or ${dm}, and no date in the file has a day over 12 to tell; set alc.timestampFormat to "${formatFor('M/D/YYYY', a.stamp)}" or "${formatFor('D/M/YYYY', a.stamp)}"`,
    );
  }
  return ev.order === 'DMY' ? 'DMY' : ev.order === 'MDY' ? 'MDY' : undefined;
}

/** The explicit format that reads `stamp` with the given date part (seconds and AM/PM as in the file). */
export function formatFor(date: 'M/D/YYYY' | 'D/M/YYYY', stamp: string): string {
  const time = stamp.replace(/^\s*"?\s*\d{1,2}\/\d{1,2}\/\d{4}/, '');
  const twelve = /\d\s*[AaPp][Mm]\b/.test(time);
  const seconds = /\d:\d{2}:\d{2}/.test(time);
  return `${date} ${twelve ? 'h' : 'H'}:mm${seconds ? ':ss' : ''}${twelve ? ' A' : ''}`;
}

async function scanFile(path: string, source: DateOrderSource, signal?: AbortSignal): Promise<DateOrderEvidence> {
  const stream = createReadStream(path, { highWaterMark: 256 * 1024 });
  try {
    return await scanDateOrder(readLines(stream), source, signal);
  } finally {
    stream.destroy();
  }
}

function contradiction(dayFirst: DateSeen, monthFirst: DateSeen): Error {
  const [early, late] = dayFirst.line < monthFirst.line ? [dayFirst, monthFirst] : [monthFirst, dayFirst];
  const how = (d: DateSeen): string => (d === dayFirst ? 'day first' : 'month first');
  return fileError(
    late.line,
    `dates disagree on the order of day and month: ${early.text} (line ${early.line}) has the ${how(early)}, ${late.text} the ${how(late)}; the file mixes two date formats (re-saved by Excel under another locale?)`,
  );
}
