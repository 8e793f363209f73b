import { z } from 'zod';
import { splitCsvLine, trimTrailingEmpty } from './csv.js';
import { ZoneConverter } from './localtime.js';
import { CellReader, DEFAULT_GAP_TOKENS, RowClock, fileError, type ParserStats, type ReportParser, type ReportSink } from './report.js';
import { compileTimestampFormat, type SlashDateOrder, type TimestampParser } from './timestamps.js';

const column = z.union([z.string().min(1), z.number().int().min(0)]);

/**
 * ALC WebCTRL trend CSV layout. WebCTRL has no single export format (trend graph export,
 * report export, third-party scripts), so the columns and the timestamp format are data.
 * Default: first line is the header, first column the timestamp (`auto`: ISO 8601 or
 * `M/D/YYYY h:mm[:ss] [AM|PM]`), every other column one point named by its header.
 */
export const alcOptionsSchema = z.strictObject({
  /** `wide`: one column per point; `long`: one row per reading (timestamp, point, value). */
  layout: z.enum(['wide', 'long']).default('wide'),
  delimiter: z.enum([',', ';', '\t']).default(','),
  /** Lines before the header row (report titles). */
  skipLines: z.number().int().min(0).max(1000).default(0),
  /** Timestamp column: header name (case-insensitive) or 0-based index. */
  timestampColumn: column.default(0),
  /** Separate time-of-day column, joined to the date column with a space before parsing. */
  timeColumn: column.optional(),
  /** Tokens YYYY YY M MM D DD H HH h hh mm ss SSS A, or auto / iso / epoch-ms / epoch-s. */
  timestampFormat: z.string().min(1).default('auto'),
  /** Long layout only. */
  pointColumn: column.default('Point'),
  valueColumn: column.default('Value'),
  /** `21,5` instead of `21.5` (European Excel); use with `delimiter: ';'`. */
  decimalComma: z.boolean().default(false),
  gapTokens: z.array(z.string().min(1)).default([...DEFAULT_GAP_TOKENS, '#N/A', '?']),
});

export type AlcOptions = z.output<typeof alcOptionsSchema>;

/** One line of a WebCTRL points list export (shared/samples/alc-webctrl-points-list.csv). */
export interface AlcPointInfo {
  location: string;
  controlProgram: string;
  name: string;
  ioType: string;
}

const POINTS_LIST_HEADER = ['location', 'control program', 'name', 'type'];

/**
 * ALC WebCTRL CSV. A trend export yields samples; a *points list* export (header
 * `"Location","Control Program","Name","Type",...`) carries no readings and is read as a
 * catalogue instead: it gives trend columns their location, control program and I/O type.
 */
export class AlcParser implements ReportParser {
  readonly stats: ParserStats = { rows: 0, dstSkippedRows: 0, dstRepeatedRows: 0 };
  /** Filled when the file is a points list. */
  readonly catalogue: AlcPointInfo[] = [];
  private mode: 'header' | 'wide' | 'long' | 'points-list' = 'header';
  private width = 0;
  private tsCol = 0;
  private timeCol: number | undefined;
  private pointCol = 0;
  private valueCol = 0;
  /** Wide: column → sink point index (-1 for the time columns). */
  private columns: number[] = [];
  private names: string[] = [];
  /** Long: point name → sink index. */
  private readonly longPoints = new Map<string, number>();
  private lastLongPoint: string | undefined;
  private readonly parseTime: TimestampParser;
  private readonly cells: CellReader;
  private clock: RowClock;
  private readonly zone: ZoneConverter;
  private sawData = false;
  /** The format as error messages name it. */
  private readonly formatLabel: string;

  /**
   * `dateOrder`: the order of slash dates under `timestampFormat: auto`, as decided for this
   * file beforehand (date-order.ts `decideDateOrder`); without it month first, as before.
   */
  constructor(
    private readonly o: AlcOptions,
    timeZone: string,
    states: Record<string, number> = {},
    extra: { dateOrder?: SlashDateOrder } = {},
  ) {
    this.parseTime = compileTimestampFormat(o.timestampFormat, extra.dateOrder);
    this.formatLabel = o.timestampFormat === 'auto' && extra.dateOrder === 'DMY' ? 'auto, day first (D/M/YYYY)' : o.timestampFormat;
    this.cells = new CellReader({ states: { ACTIVE: 1, INACTIVE: 0, TRUE: 1, FALSE: 0, ...states }, gapTokens: o.gapTokens, decimalComma: o.decimalComma });
    this.zone = new ZoneConverter(timeZone);
    this.clock = new RowClock(this.zone, this.stats);
  }

  get isPointsList(): boolean {
    return this.mode === 'points-list';
  }

  line(text: string, line: number, sink: ReportSink): void {
    if (line <= this.o.skipLines) return;
    if (text.trim() === '') return;
    if (text.includes('\u0000')) throw fileError(line, 'binary data (NUL bytes): not a CSV export');
    const raw = splitCsvLine(text, this.o.delimiter);
    if (!raw) throw fileError(line, 'unterminated quote (truncated row?)');
    if (this.mode === 'header') return this.header(trimTrailingEmpty(raw), line, sink);
    const fields = raw.length > this.width ? trimTrailingEmpty(raw, this.width) : raw;
    if (fields.length !== this.width) throw fileError(line, `expected ${this.width} columns like the header, found ${fields.length}`);
    this.sawData = true;
    if (this.mode === 'points-list') {
      this.catalogue.push({ location: fields[0]!.trim(), controlProgram: fields[1]!.trim(), name: fields[2]!.trim(), ioType: fields[3]!.trim() });
      if (this.catalogue.length > 200_000) throw fileError(line, 'points list longer than 200000 entries');
      return;
    }
    const stamp = this.timeCol === undefined ? fields[this.tsCol]! : `${fields[this.tsCol]!.trim()} ${fields[this.timeCol]!.trim()}`;
    const wall = this.parseTime(stamp);
    if (!wall) throw fileError(line, `unparseable timestamp ${JSON.stringify(stamp.slice(0, 60))} (timestampFormat: ${this.formatLabel})`);
    if (this.mode === 'long') return this.longRow(fields, line, wall, sink);
    const t = this.clock.instant(wall);
    if (t === undefined) return;
    sink.row(line, t);
    for (let c = 0; c < fields.length; c++) {
      const index = this.columns[c]!;
      if (index < 0) continue;
      const v = this.cells.read(fields[c]!);
      if (v === undefined) continue;
      if (Number.isNaN(v))
        throw fileError(
          line,
          `column ${c + 1} (${this.names[c]}): cannot read ${JSON.stringify(fields[c]!.slice(0, 40))} as a number, a state or a gap marker`,
        );
      sink.sample(index, v);
    }
    this.stats.rows++;
    sink.rowEnd(line);
  }

  private longRow(fields: string[], line: number, wall: NonNullable<ReturnType<TimestampParser>>, sink: ReportSink): void {
    const name = fields[this.pointCol]!.trim();
    if (!name) throw fileError(line, 'empty point name');
    // Long exports are usually sorted by point, then time: the DST file-order rule applies per point.
    if (name !== this.lastLongPoint) {
      this.clock = new RowClock(this.zone, this.stats);
      this.lastLongPoint = name;
    }
    let index = this.longPoints.get(name);
    if (index === undefined) {
      if (this.longPoints.size >= 100_000) throw fileError(line, 'more than 100000 distinct points');
      index = this.longPoints.size;
      this.longPoints.set(name, index);
      sink.point(index, { name });
    }
    const t = this.clock.instant(wall);
    if (t === undefined) return;
    const cell = fields[this.valueCol]!;
    const v = this.cells.read(cell);
    if (Number.isNaN(v)) throw fileError(line, `cannot read ${JSON.stringify(cell.slice(0, 40))} as a number, a state or a gap marker`);
    sink.row(line, t);
    if (v !== undefined) sink.sample(index, v);
    this.stats.rows++;
    sink.rowEnd(line);
  }

  private header(fields: string[], line: number, sink: ReportSink): void {
    const names = fields.map((f) => f.trim());
    const lower = names.map((n) => n.toLowerCase());
    this.width = names.length;
    if (POINTS_LIST_HEADER.every((h, i) => lower[i] === h)) {
      this.mode = 'points-list';
      return;
    }
    const find = (col: string | number, what: string): number => {
      const i = typeof col === 'number' ? col : lower.indexOf(col.toLowerCase());
      if (i < 0 || i >= names.length)
        throw fileError(
          line,
          `${what} column ${JSON.stringify(col)} is not in the header (${names
            .slice(0, 8)
            .map((n) => JSON.stringify(n))
            .join(', ')}…); check skipLines and the column settings`,
        );
      return i;
    };
    this.tsCol = find(this.o.timestampColumn, 'timestamp');
    this.timeCol = this.o.timeColumn === undefined ? undefined : find(this.o.timeColumn, 'time');
    if (this.o.layout === 'long') {
      this.pointCol = find(this.o.pointColumn, 'point');
      this.valueCol = find(this.o.valueColumn, 'value');
      this.mode = 'long';
      return;
    }
    if (names.length < 2) throw fileError(line, 'header has no point columns: not an ALC trend export (or wrong delimiter)');
    const seen = new Set<string>();
    let next = 0;
    this.names = names;
    this.columns = names.map((name, c) => {
      if (c === this.tsCol || c === this.timeCol) return -1;
      if (!name) throw fileError(line, `column ${c + 1} has an empty header`);
      if (seen.has(name)) throw fileError(line, `column "${name}" appears twice`);
      seen.add(name);
      const index = next++;
      sink.point(index, { name });
      return index;
    });
    this.mode = 'wide';
  }

  end(lastLine: number): void {
    if (this.mode === 'header') throw fileError(0, 'empty file: no header row');
    if (!this.sawData && this.mode !== 'points-list') throw fileError(lastLine, 'no data rows after the header');
  }
}

/** Looks up points-list metadata for a trend column header. */
export class AlcCatalogue {
  private readonly byKey = new Map<string, AlcPointInfo>();
  private readonly byName = new Map<string, AlcPointInfo | null>();
  private readonly list: AlcPointInfo[] = [];

  constructor(entries: readonly AlcPointInfo[] = []) {
    this.add(entries);
  }

  get size(): number {
    return this.list.length;
  }

  entries(): readonly AlcPointInfo[] {
    return this.list;
  }

  add(entries: readonly AlcPointInfo[]): void {
    for (const e of entries) {
      const key = norm(`${e.location}/${e.controlProgram}/${e.name}`);
      // The sample lists some points twice (same location, program and name): keep one.
      if (this.byKey.has(key)) continue;
      this.byKey.set(key, e);
      this.list.push(e);
      const short = norm(`${e.controlProgram}/${e.name}`);
      if (!this.byKey.has(short)) this.byKey.set(short, e);
      const n = norm(e.name);
      // A bare name is only a key when it is unique across the site.
      const prev = this.byName.get(n);
      this.byName.set(n, prev === undefined ? e : prev && prev.controlProgram === e.controlProgram && prev.location === e.location ? prev : null);
    }
  }

  /** Accepts `Location/Program/Name`, `Program/Name` (also with ` / ` or `:` separators) or a unique `Name`. */
  lookup(header: string): AlcPointInfo | undefined {
    const h = norm(header);
    return this.byKey.get(h) ?? this.byName.get(h) ?? undefined;
  }
}

function norm(s: string): string {
  return s
    .trim()
    .toLowerCase()
    .replace(/\s*[/:]\s*/g, '/');
}
