// What the lines of a backup mean: `BackupReader` checks header, definitions, points and the
// trailer (counts, sha256) line by line. Separate so verify and restore (backup-restore.ts)
// share one checker, and the checks can be read apart from the streaming around them.
import { createHash } from 'node:crypto';
import { isOutpostError } from '../core/errors.js';
import { DATAPOINT_ID, DatapointSchema, coerceValue, type Datapoint, type Value } from '../core/datapoint.js';
import type { PointRecord } from './store.js';
import { BACKUP_FORMAT, BACKUP_VERSION, type BackupHeader, type BackupSummary } from './backup-format.js';
import { invalid, type Line } from './backup-lines.js';

/** Datapoint definitions one backup may hold (their types are kept in memory to check points). */
const MAX_DATAPOINTS = 200_000;

type Parsed = { kind: 'datapoint'; dp: Datapoint } | { kind: 'point'; point: PointRecord } | { kind: 'end' };

function isObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

/**
 * Checks a backup line by line: header first, definitions, points, the trailer last with
 * counts and the sha256 of everything before it. Errors name the line.
 */
export class BackupReader {
  header: BackupHeader | undefined;
  private readonly hash = createHash('sha256');
  private readonly types = new Map<string, Datapoint['type']>();
  private datapoints = 0;
  private points = 0;
  private lines = 0;
  private seenPoints = false;
  private ended = false;
  sha256 = '';

  accept(line: Line): Parsed | undefined {
    if (this.ended) throw invalid(line.n, 'data after the trailer line');
    if (!line.raw.length || line.raw[line.raw.length - 1] !== 0x0a) {
      // The trailer is the only line that may miss its newline; anything else is a cut-off file.
      if (!/^\{"end":/.test(line.text)) throw invalid(line.n, 'the file ends in the middle of a line (truncated)');
    }
    let obj: unknown;
    try {
      obj = JSON.parse(line.text);
    } catch {
      if (line.n === 1) throw invalid(1, `not an Outpost backup (the first line must be the header {"format":"${BACKUP_FORMAT}",…})`);
      throw invalid(line.n, line.text.trim() === '' ? 'empty line' : 'not valid JSON');
    }
    if (!isObject(obj)) throw invalid(line.n, 'expected a JSON object');
    if (line.n === 1) {
      this.header = parseHeader(obj, line.n);
      this.count(line);
      return undefined;
    }
    if ('end' in obj) {
      this.checkTrailer(obj, line.n);
      this.ended = true;
      return { kind: 'end' };
    }
    if ('datapoint' in obj) {
      if (this.seenPoints) throw invalid(line.n, 'datapoint definitions must come before the points');
      if (Object.keys(obj).length !== 1) throw invalid(line.n, 'a definition line has only the "datapoint" field');
      const parsed = DatapointSchema.safeParse(obj.datapoint);
      if (!parsed.success)
        throw invalid(
          line.n,
          `datapoint definition is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'datapoint'}: ${i.message}`).join('; ')}`,
        );
      if (this.types.has(parsed.data.id)) throw invalid(line.n, `datapoint ${parsed.data.id} is defined twice`);
      if (this.types.size >= MAX_DATAPOINTS) throw invalid(line.n, `more than ${MAX_DATAPOINTS} datapoint definitions`);
      this.types.set(parsed.data.id, parsed.data.type);
      this.datapoints++;
      this.count(line);
      return { kind: 'datapoint', dp: parsed.data };
    }
    const point = parsePoint(obj, line.n, this.types);
    this.seenPoints = true;
    this.points++;
    this.count(line);
    return { kind: 'point', point };
  }

  /** Called at the end of the input. */
  finish(lastLine: number): void {
    if (!this.header) throw invalid(1, 'the file is empty');
    if (!this.ended) throw invalid(lastLine + 1, `the file ends after line ${lastLine} without the trailer line: it is truncated`);
  }

  summary(): BackupSummary {
    const h = this.header!;
    return {
      gateway: h.gateway,
      createdAt: h.createdAt,
      from: h.from,
      to: h.to,
      datapoints: this.datapoints,
      points: this.points,
      lines: this.lines,
      sha256: this.sha256,
    };
  }

  private count(line: Line): void {
    this.lines++;
    this.hash.update(line.raw);
  }

  private checkTrailer(obj: Record<string, unknown>, n: number): void {
    if (obj.end !== BACKUP_FORMAT) throw invalid(n, `trailer must have "end": "${BACKUP_FORMAT}"`);
    this.sha256 = this.hash.digest('hex');
    for (const [name, have] of [
      ['datapoints', this.datapoints],
      ['points', this.points],
      ['lines', this.lines],
    ] as const) {
      if (obj[name] !== have) throw invalid(n, `trailer says ${String(obj[name])} ${name}, the file has ${have}: lines are missing or added`);
    }
    if (obj.sha256 !== this.sha256)
      throw invalid(
        n,
        `checksum mismatch: the trailer says sha256 ${String(obj.sha256)}, the lines before it hash to ${this.sha256} (the file was changed or damaged)`,
      );
  }
}

function parseHeader(obj: Record<string, unknown>, n: number): BackupHeader {
  if (obj.format !== BACKUP_FORMAT) throw invalid(n, `not an Outpost backup (the first line must be the header {"format":"${BACKUP_FORMAT}",…})`);
  if (obj.version !== BACKUP_VERSION)
    throw invalid(n, `backup format version ${JSON.stringify(obj.version)} is not supported (this Outpost reads version ${BACKUP_VERSION})`);
  if (typeof obj.gateway !== 'string') throw invalid(n, 'header: "gateway" must be a string');
  if (typeof obj.createdAt !== 'number' || !Number.isSafeInteger(obj.createdAt)) throw invalid(n, 'header: "createdAt" must be epoch milliseconds');
  const bound = (v: unknown, name: string): number | null => {
    if (v === null || v === undefined) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalid(n, `header: "${name}" must be epoch milliseconds or null`);
    return v;
  };
  return {
    format: BACKUP_FORMAT,
    version: BACKUP_VERSION,
    gateway: obj.gateway,
    createdAt: obj.createdAt,
    from: bound(obj.from, 'from'),
    to: bound(obj.to, 'to'),
  };
}

function parsePoint(obj: Record<string, unknown>, n: number, types: ReadonlyMap<string, Datapoint['type']>): PointRecord {
  const extra = Object.keys(obj).filter((k) => k !== 'id' && k !== 't' && k !== 'v' && k !== 'q');
  if (extra.length > 0) throw invalid(n, `unknown field(s) ${extra.join(', ')} (a point line is {"id","t","v","q"?})`);
  const { id, t, q } = obj;
  if (typeof id !== 'string' || !DATAPOINT_ID.test(id)) throw invalid(n, 'point: "id" must be a datapoint id ([a-z0-9_.-]{1,128})');
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) throw invalid(n, `point ${id}: "t" must be epoch milliseconds ≥ 0`);
  if (!('v' in obj)) throw invalid(n, `point ${id}: "v" is missing`);
  if (q !== undefined && q !== 'stale' && q !== 'bad') throw invalid(n, `point ${id}: "q" must be "stale" or "bad" when present`);
  let v = obj.v as Value;
  const type = types.get(id);
  if (v !== null && type) {
    try {
      v = coerceValue({ id, type }, v);
    } catch (err) {
      if (!isOutpostError(err)) throw err;
      throw invalid(n, err.message);
    }
  }
  return q ? { id, t, v, q } : { id, t, v };
}
