import { splitCsvLine, trimTrailingEmpty } from './csv.js';
import { ZoneConverter } from './localtime.js';
import { CellReader, RowClock, fileError, type ParserStats, type ReportParser, type ReportSink, type SourcePoint } from './report.js';
import { parseInsightDateTime } from './timestamps.js';

export interface InsightOptions {
  timeZone: string;
  /** Extra state words → numbers (ON/OFF are built in), e.g. `{ OCC: 1, UNOCC: 0 }`. */
  states?: Record<string, number>;
  gapTokens?: readonly string[];
}

type Phase = 'start' | 'key' | 'data' | 'done';

/**
 * Siemens Insight (APOGEE) "Trend Interval Report" CSV, as in
 * shared/samples/siemens-insight-trend-interval.csv:
 *
 * ```
 * "Key            Name:Suffix                                Trend Definitions Used"
 * "Point_1:","EV.CUH2.V","","5 minutes"          ← key block: Point_n, name, suffix, trend definition
 * "Point_99:","EV.RM208.RT","","Trend COV (3.000)"   (the definition may read `Error: ...`)
 * "Time Interval:","15 Minutes"                  ← report settings
 * "Date Range:","12/26/2017 00:00:00 - 1/2/2018 23:59:59"
 * "Report Timings:","All Hours"
 * ""
 * "<>Date","Time","Point_1","Point_2",...        ← column header
 * "12/26/2017","00:00:00","2.42"," -2.41","ON","No Data","Data Loss",...
 * " ******************************** End of Report *********************************"
 * ```
 * Dates are M/D/YYYY, times 24 h local (the sample, including its `Date Range:` setting;
 * the format this adapter documents), so the order is fixed here rather than guessed. A
 * file whose dates prove day first (a first field over 12) is not as Insight wrote it and is
 * refused (date-order.ts `decideDateOrder` before any row is read, and here at that row).
 * Excel re-saves drop the quotes and pad short rows with empty fields; both are accepted.
 * A missing trailer means the file was truncated.
 */
export class InsightParser implements ReportParser {
  /** `End of Report` closes every complete report. */
  readonly endsWithTrailer = true;
  readonly stats: ParserStats = { rows: 0, dstSkippedRows: 0, dstRepeatedRows: 0 };
  /** Report settings (`Time Interval`, `Date Range`, `Report Timings`). */
  readonly settings: Record<string, string> = {};
  /** Key block by `Point_n` label. */
  private readonly key = new Map<string, SourcePoint>();
  private phase: Phase = 'start';
  /** Column index (from 2) → point index in the sink, -1 for a column without a key entry. */
  private columns: number[] = [];
  /** `Point_n label and name` per column, for error messages. */
  private labels: string[] = [];
  private width = 0;
  private readonly cells: CellReader;
  private readonly clock: RowClock;

  constructor(options: InsightOptions) {
    this.cells = new CellReader({ states: options.states, gapTokens: options.gapTokens });
    this.clock = new RowClock(new ZoneConverter(options.timeZone), this.stats);
  }

  line(text: string, line: number, sink: ReportSink): void {
    if (this.phase === 'done') return;
    if (this.phase === 'data') return this.dataLine(text, line, sink);
    if (text.trim() === '' || text.trim() === '""') return;
    if (text.includes('\u0000')) throw fileError(line, 'binary data (NUL bytes): not a Siemens Insight trend report');
    const fields = splitCsvLine(text);
    if (!fields) throw fileError(line, 'unterminated quote');
    const first = fields[0]!.trim();
    if (this.phase === 'start') {
      if (!/^Key\b/.test(first))
        throw fileError(
          line,
          `not a Siemens Insight trend interval report: expected the "Key  Name:Suffix  Trend Definitions Used" heading, found ${quote(text)}`,
        );
      this.phase = 'key';
      return;
    }
    const pointKey = /^(Point_\d+):$/.exec(first);
    if (pointKey) return this.keyLine(pointKey[1]!, trimTrailingEmpty(fields, 1), line);
    if (first === '<>Date' || first === 'Date') return this.header(trimTrailingEmpty(fields), line, sink);
    const setting = /^([A-Za-z ]+):$/.exec(first);
    if (setting) {
      this.settings[setting[1]!] = (fields[1] ?? '').trim();
      return;
    }
    throw fileError(line, `unexpected line in the report heading: ${quote(text)}`);
  }

  private keyLine(label: string, fields: string[], line: number): void {
    if (this.key.has(label)) throw fileError(line, `${label} is listed twice in the key block`);
    const name = (fields[1] ?? '').trim();
    const suffix = (fields[2] ?? '').trim();
    const trend = (fields[3] ?? '').trim();
    const error = fields
      .slice(1)
      .map((f) => f.trim())
      .find((f) => /^Error\b/i.test(f));
    const point: SourcePoint = {
      // The suffix qualifies the point (`NAME:SUFFIX`); most reports leave it empty.
      name: error && error === name ? label : suffix ? `${name}:${suffix}` : name,
      meta: { ...(trend && !error ? { trendDefinition: trend } : {}), ...(suffix ? { suffix } : {}) },
    };
    if (error) point.error = error;
    if (!point.name) throw fileError(line, `${label} has no point name`);
    this.key.set(label, point);
  }

  private header(fields: string[], line: number, sink: ReportSink): void {
    if (this.key.size === 0) throw fileError(line, 'column header before any Point_n key entry');
    if ((fields[1] ?? '').trim() !== 'Time') throw fileError(line, `expected "Time" as the second column header, found ${quote(fields[1] ?? '')}`);
    const seen = new Set<string>();
    this.columns = fields.slice(2).map((f, i) => {
      const label = f.trim();
      const point = this.key.get(label);
      if (!point) throw fileError(line, `column ${i + 3} "${label}" has no entry in the Point_n key block`);
      if (seen.has(label)) throw fileError(line, `column "${label}" appears twice`);
      seen.add(label);
      sink.point(i, point);
      this.labels.push(`${label} ${point.name}`);
      return i;
    });
    this.width = fields.length;
    this.phase = 'data';
  }

  private dataLine(text: string, line: number, sink: ReportSink): void {
    const trimmed = text.trim();
    if (trimmed === '' || trimmed === '""') return;
    if (/End of Report/i.test(trimmed) && !/^"?\d/.test(trimmed)) {
      this.phase = 'done';
      return;
    }
    if (text.includes('\u0000')) throw fileError(line, 'binary data (NUL bytes) in a data row');
    const raw = splitCsvLine(text);
    if (!raw) throw fileError(line, 'unterminated quote (truncated row?)');
    const fields = raw.length > this.width ? trimTrailingEmpty(raw, this.width) : raw;
    if (fields.length !== this.width) {
      throw fileError(
        line,
        `expected ${this.width} columns (Date, Time and ${this.width - 2} points), found ${fields.length}${fields.length < this.width ? ' (truncated row?)' : ''}`,
      );
    }
    const wall = parseInsightDateTime(fields[0]!, fields[1]!);
    if (!wall) {
      // `13/11/2024`: day first, so not as Insight wrote it (re-saved under a day-first locale; date-order.ts refuses such files up front).
      const dayFirst = /^\s*(1[3-9]|2\d|3[01])\/(0?[1-9]|1[0-2])\/\d{4}\s*$/.test(fields[0]!)
        ? '; the day comes first, so the report was re-saved with day-first dates (Excel under another locale?)'
        : '';
      throw fileError(line, `unparseable date/time ${quote(fields[0]!)} ${quote(fields[1]!)} (expected M/D/YYYY and HH:MM:SS${dayFirst})`);
    }
    const t = this.clock.instant(wall);
    if (t === undefined) return; // non-existent local time (spring DST gap): see localtime.ts
    sink.row(line, t);
    for (let c = 0; c < this.columns.length; c++) {
      const cell = fields[c + 2]!;
      const v = this.cells.read(cell);
      if (v === undefined) continue;
      if (Number.isNaN(v))
        throw fileError(line, `column ${c + 3} (${this.columnLabel(c)}): cannot read ${quote(cell)} as a number, ON/OFF, a configured state or a gap marker`);
      sink.sample(this.columns[c]!, v);
    }
    this.stats.rows++;
    sink.rowEnd(line);
  }

  private columnLabel(c: number): string {
    return this.labels[c] ?? `column ${c + 3}`;
  }

  end(lastLine: number): void {
    if (this.phase === 'start') throw fileError(0, 'empty file: no Siemens Insight report heading');
    if (this.phase === 'key') throw fileError(lastLine, 'file ends before the "<>Date","Time",... column header (truncated?)');
    if (this.phase === 'data') throw fileError(lastLine, 'file ends without the "End of Report" trailer (truncated?)');
  }
}

function quote(s: string): string {
  const short = s.length > 60 ? s.slice(0, 60) + '…' : s;
  return JSON.stringify(short);
}
