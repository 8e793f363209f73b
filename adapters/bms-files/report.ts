import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { pickInstant, type ZoneConverter } from './localtime.js';
import type { WallTime } from './timestamps.js';

/** A column/point of an export, as the BMS names it. */
export interface SourcePoint {
  /** BMS point name used for mapping, e.g. `EV.RM102.V`. */
  name: string;
  /** What the export says about the point (trend definition, location, …). */
  meta?: Record<string, unknown>;
  /** The export's own error for this point (Insight `Error: ...` trend definition). */
  error?: string;
}

/** Receives what a parser finds, row by row; calls are synchronous and in file order. */
export interface ReportSink {
  /** A point is known (before its first sample). */
  point(index: number, point: SourcePoint): void;
  /** A data row starts at time `t` (epoch ms UTC). */
  row(line: number, t: number): void;
  /** `v: null` is a gap the BMS reported (`No Data`, `Data Loss`). */
  sample(index: number, v: number | null): void;
  rowEnd(line: number): void;
}

/** One parser instance per file: feed lines in order, then call `end`. */
export interface ReportParser {
  line(text: string, line: number, sink: ReportSink): void;
  /** Throws if the file ended early (no trailer, no header). */
  end(lastLine: number): void;
  /** The format ends with a trailer (Insight `End of Report`), so a complete file is known by it. */
  readonly endsWithTrailer?: boolean;
  readonly stats: ParserStats;
}

export interface ParserStats {
  rows: number;
  /** Rows whose local time does not exist (spring DST gap): skipped, see localtime.ts. */
  dstSkippedRows: number;
  /** Rows in the repeated autumn hour that were placed in standard time. */
  dstRepeatedRows: number;
}

/** The coded error for a defect at a line; the message is what `.error.txt` shows. */
export function fileError(line: number, reason: string): OutpostError {
  return new OutpostError('BMS_FILE_INVALID', line > 0 ? `line ${line}: ${reason}` : reason, { details: { line, reason } });
}

/** Gap tokens written by Insight (and commonly by ALC): a missing reading, never a zero. */
export const DEFAULT_GAP_TOKENS = ['No Data', 'Data Loss'];

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const GROUPED = /^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$/;

/**
 * Reads one value cell: number (leading/trailing blanks allowed, Excel thousands
 * separators accepted), ON/OFF and configured state words → numbers, gap tokens → null,
 * empty → undefined (no reading at this time, e.g. a COV point in a wide ALC export).
 * Anything else is `NaN` and the caller reports the line.
 */
export class CellReader {
  private readonly states = new Map<string, number>();
  private readonly gaps = new Set<string>();

  constructor(options: { states?: Record<string, number>; gapTokens?: readonly string[]; decimalComma?: boolean } = {}) {
    for (const [k, v] of Object.entries({ ON: 1, OFF: 0, ...options.states })) this.states.set(k.toUpperCase(), v);
    for (const g of options.gapTokens ?? DEFAULT_GAP_TOKENS) this.gaps.add(g.toUpperCase());
    this.decimalComma = options.decimalComma ?? false;
  }

  private readonly decimalComma: boolean;

  read(cell: string): number | null | undefined {
    // Fast path, what exports write nearly always: a plain number, maybe padded with spaces
    // (the same grammar as NUMBER, without a regular expression or a trimmed copy).
    if (!this.decimalComma) {
      let from = 0;
      let to = cell.length;
      while (from < to && cell.charCodeAt(from) === 32) from++;
      while (to > from && cell.charCodeAt(to - 1) === 32) to--;
      if (from === to) return undefined;
      if (isPlainNumber(cell, from, to)) return Number(from === 0 && to === cell.length ? cell : cell.slice(from, to));
    }
    let s = cell.trim();
    if (s.length === 0) return undefined;
    if (this.decimalComma) s = s.replace(/\./g, '').replace(',', '.');
    if (NUMBER.test(s)) return Number(s);
    if (GROUPED.test(s)) return Number(s.replace(/,/g, ''));
    const upper = s.toUpperCase();
    const state = this.states.get(upper);
    if (state !== undefined) return state;
    if (this.gaps.has(upper)) return null;
    return NaN;
  }
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;

/** `s[from, to)` matches NUMBER: sign, digits with an optional point (a digit on either side), optional exponent. */
function isPlainNumber(s: string, from: number, to: number): boolean {
  let i = from;
  let c = s.charCodeAt(i);
  if (c === 43 || c === 45) c = s.charCodeAt(++i); // + -
  let digits = 0;
  while (i < to && isDigit(c)) {
    digits++;
    c = s.charCodeAt(++i);
  }
  if (i < to && c === 46) {
    c = s.charCodeAt(++i); // .
    while (i < to && isDigit(c)) {
      digits++;
      c = s.charCodeAt(++i);
    }
  }
  if (digits === 0) return false;
  if (i < to && (c === 101 || c === 69)) {
    c = s.charCodeAt(++i); // e E
    if (i < to && (c === 43 || c === 45)) c = s.charCodeAt(++i);
    let exponent = 0;
    while (i < to && isDigit(c)) {
      exponent++;
      c = s.charCodeAt(++i);
    }
    if (exponent === 0) return false;
  }
  return i === to;
}

/** Turns wall times into instants in file order (the DST rule lives in localtime.ts). */
export class RowClock {
  private previous: number | undefined;

  constructor(
    private readonly zone: ZoneConverter,
    private readonly stats: ParserStats,
  ) {}

  /** Returns undefined for a local time that does not exist (row to skip). */
  instant(w: WallTime): number | undefined {
    if (w.offsetMs !== undefined) {
      const t = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second, w.ms) - w.offsetMs;
      this.previous = t;
      return t;
    }
    const r = this.zone.resolve(w.year, w.month, w.day, w.hour, w.minute, w.second, w.ms);
    const t = pickInstant(r, this.previous);
    if (t === undefined) {
      this.stats.dstSkippedRows++;
      return undefined;
    }
    if (r.kind === 'ambiguous' && t === r.later) this.stats.dstRepeatedRows++;
    this.previous = t;
    return t;
  }
}
