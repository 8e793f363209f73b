import { Readable } from 'node:stream';
import { readLines } from '../../../adapters/bms-files/lines.js';
import type { ReportParser, SourcePoint } from '../../../adapters/bms-files/report.js';
import { insightReportLines, type InsightReportOptions } from '../../../adapters/bms-files/simulator.js';

export const FIXTURES = new URL('./fixtures/', import.meta.url).pathname;

export interface Parsed {
  points: SourcePoint[];
  rows: Array<{ line: number; t: number; values: Map<number, number | null> }>;
}

/** Feeds `input` through the real line splitter in chunks of `chunkSize` bytes, as a file stream would. */
export async function parseAll(parser: ReportParser, input: string | Buffer, chunkSize = 4096): Promise<Parsed> {
  const buf = typeof input === 'string' ? Buffer.from(input) : input;
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunkSize) chunks.push(buf.subarray(i, i + chunkSize));
  const out: Parsed = { points: [], rows: [] };
  let current: Parsed['rows'][number] | undefined;
  let n = 0;
  for await (const line of readLines(Readable.from(chunks))) {
    n++;
    parser.line(line, n, {
      point: (i, p) => (out.points[i] = p),
      row: (l, t) => (current = { line: l, t, values: new Map() }),
      sample: (i, v) => current!.values.set(i, v),
      rowEnd: () => out.rows.push(current!),
    });
  }
  parser.end(n);
  return out;
}

export function reportText(o: InsightReportOptions): string {
  return [...insightReportLines(o)].join(o.eol ?? '\r\n') + (o.eol ?? '\r\n');
}
