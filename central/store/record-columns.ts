import type { Value } from '../../core/datapoint.js';
import type { IngestRecord } from './contract.js';

type Quality = NonNullable<IngestRecord['q']>;
/** `quality` column codes: 0 none, then these. */
const QUALITIES: readonly (Quality | undefined)[] = [undefined, 'stale', 'bad'];

/** Datapoint ids held at most by the intern table (a fleet's datapoints; cleared past it). */
const MAX_INTERNED_IDS = 250_000;
const interned = new Map<string, string>();

/**
 * One string per datapoint id for the whole process. V8's JSON.parse makes a new string for
 * every value longer than 10 characters, so without this each record in flight would keep its
 * own copy of its id alive until its commit.
 */
export function internId(id: string): string {
  const known = interned.get(id);
  if (known !== undefined) return known;
  if (interned.size >= MAX_INTERNED_IDS) interned.clear();
  interned.set(id, id);
  return id;
}

/**
 * A batch's records as columns: seq, time and numeric value of every record in one
 * `Float64Array`, the ids in one array of shared strings, qualities and non-numeric values
 * only when there are any. Why: a receiver holds the records of every message in flight until
 * their commit (16 connections × 16 messages × 100 records in the bench), 200–400 ms. As
 * objects (a JSON array, an `IngestRecord`, an id string and boxed doubles each) they filled
 * V8's young generation with survivors, and each scavenge copied them all: 8–33 ms pauses of
 * the event loop while PostgreSQL waited in the transaction (bench/README.md, "Binary COPY, and
 * what still couples the two processes"). As columns a batch is a handful of objects.
 */
export class RecordColumns {
  private constructor(
    readonly length: number,
    /** Record i's seq (NaN: none), t and numeric value (NaN: see `others`) at 3i, 3i + 1, 3i + 2. */
    private readonly numbers: Float64Array,
    private readonly idList: readonly string[],
    private readonly qualities: Uint8Array | undefined,
    /** Values that are not numbers (strings, booleans, JSON, null), by record index. */
    private readonly others: ReadonlyMap<number, Value> | undefined,
  ) {}

  static from(records: readonly IngestRecord[]): RecordColumns {
    const out = new RecordColumnsBuilder(records.length);
    for (const r of records) out.push(r.seq, r.id, r.t, r.v, r.q);
    return out.build();
  }

  /** Packs what the builder collected (its arrays are shared, not copied). */
  static of(length: number, numbers: Float64Array, ids: string[], qualities: Uint8Array | undefined, others: Map<number, Value> | undefined): RecordColumns {
    return new RecordColumns(length, numbers, ids, qualities, others);
  }

  seq(i: number): number | undefined {
    const seq = this.numbers[3 * i]!;
    return Number.isNaN(seq) ? undefined : seq;
  }

  id(i: number): string {
    return this.idList[i]!;
  }

  t(i: number): number {
    return this.numbers[3 * i + 1]!;
  }

  /** The value when it is a number, else NaN (a stored number is always finite: records.ts refuses the rest). */
  number(i: number): number {
    return this.numbers[3 * i + 2]!;
  }

  value(i: number): Value {
    const n = this.numbers[3 * i + 2]!;
    return Number.isNaN(n) ? (this.others?.get(i) ?? null) : n;
  }

  quality(i: number): Quality | undefined {
    return this.qualities === undefined ? undefined : QUALITIES[this.qualities[i]!];
  }

  /** Whether every record has a seq. */
  get allHaveSeqs(): boolean {
    for (let i = 0; i < this.length; i++) if (Number.isNaN(this.numbers[3 * i]!)) return false;
    return true;
  }

  record(i: number): IngestRecord {
    const seq = this.seq(i);
    const q = this.quality(i);
    const r: IngestRecord = { id: this.id(i), t: this.t(i), v: this.value(i) };
    if (seq !== undefined) r.seq = seq;
    if (q !== undefined) r.q = q;
    return r;
  }

  /** As objects, for a store that keeps them (the embedded one). */
  toRecords(): IngestRecord[] {
    return Array.from({ length: this.length }, (_, i) => this.record(i));
  }
}

/** Collects records into `RecordColumns`; `capacity` is the most it will take. */
export class RecordColumnsBuilder {
  private readonly numbers: Float64Array;
  private readonly ids: string[] = [];
  private qualities: Uint8Array | undefined;
  private others: Map<number, Value> | undefined;
  private n = 0;

  constructor(private readonly capacity: number) {
    this.numbers = new Float64Array(3 * capacity);
  }

  push(seq: number | undefined, id: string, t: number, v: Value, q?: Quality): void {
    if (this.n >= this.capacity) throw new RangeError(`more than ${this.capacity} records`);
    const quality = q === undefined ? 0 : QUALITIES.indexOf(q);
    if (quality < 0) throw new RangeError(`quality ${JSON.stringify(q)} is not "stale" or "bad"`);
    const i = this.n++;
    this.numbers[3 * i] = seq ?? Number.NaN;
    this.numbers[3 * i + 1] = t;
    if (typeof v === 'number' && !Number.isNaN(v)) this.numbers[3 * i + 2] = v;
    else {
      this.numbers[3 * i + 2] = Number.NaN;
      (this.others ??= new Map()).set(i, v);
    }
    this.ids.push(internId(id));
    if (q !== undefined) {
      this.qualities ??= new Uint8Array(this.capacity);
      this.qualities[i] = quality;
    }
  }

  build(): RecordColumns {
    return RecordColumns.of(this.n, this.numbers, this.ids, this.qualities, this.others);
  }
}

/** How a store is handed records: objects (tests, the satellite) or columns (the MQTT and HTTP ingest). */
export type IngestRecords = readonly IngestRecord[] | RecordColumns;

export const columnsOf = (records: IngestRecords): RecordColumns => (records instanceof RecordColumns ? records : RecordColumns.from(records));
export const recordsOf = (records: IngestRecords): readonly IngestRecord[] => (records instanceof RecordColumns ? records.toRecords() : records);
