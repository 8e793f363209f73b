import { Level } from 'level';
import { mkdir } from 'node:fs/promises';
import { OutpostError } from '../runtime/errors.js';
import { DatapointSchema, type Datapoint } from '../runtime/datapoints/model.js';
import { GroupCommit } from './group-commit.js';
import { HIGH, SEQ_KEY, metaKey, outboxKey, outboxSeq, pointKey, pointPrefix, pointTime } from './keys.js';
import {
  DEFAULT_QUERY_LIMIT,
  MAX_QUERY_LIMIT,
  decodeValue,
  encodeValue,
  isNewer,
  type OutboxRecord,
  type PointRecord,
  type RangeQuery,
  type Store,
  type StoreStats,
  type StoredValue,
} from './store.js';

export interface LevelStoreOptions {
  path: string;
  /** fsync every group commit (default true): acknowledged means durable. */
  sync?: boolean;
  /** Points per group commit at most. */
  maxBatch?: number;
  /** Points waiting for a commit at most; writers beyond wait (bounded memory). */
  maxPending?: number;
}

type BatchOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

export class LevelStore implements Store {
  private db: Level<string, string>;
  private readonly latestById = new Map<string, StoredValue>();
  private readonly writer: GroupCommit<PointRecord>;
  private seq = 0;
  private error: string | undefined;
  private closed = true;

  constructor(private readonly options: LevelStoreOptions) {
    this.db = new Level<string, string>(options.path, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    this.writer = new GroupCommit<PointRecord>({
      commit: (items) => this.commit(items),
      maxBatch: options.maxBatch ?? 5000,
      maxPending: options.maxPending ?? 100_000,
    });
  }

  async open(): Promise<void> {
    await mkdir(this.options.path, { recursive: true });
    try {
      await this.db.open();
    } catch (err) {
      throw new OutpostError('STORAGE_OPEN_FAILED', `cannot open LevelDB at ${this.options.path}: ${(err as Error).message}`, { cause: err });
    }
    this.closed = false;
    const seq = await this.db.get(SEQ_KEY);
    this.seq = seq === undefined ? 0 : Number(seq);
    for (const dp of await this.listDatapoints()) {
      const [last] = await this.query(dp.id, { order: 'desc', limit: 1 });
      if (last) this.latestById.set(dp.id, last);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.writer.flush();
    this.closed = true;
    await this.db.close();
  }

  async write(points: readonly PointRecord[]): Promise<void> {
    if (this.closed) throw new OutpostError('STORAGE_CLOSED');
    if (points.length === 0) return;
    await this.writer.add(points);
  }

  private async commit(points: PointRecord[]): Promise<void> {
    const ops: BatchOp[] = [];
    let seq = this.seq;
    for (const p of points) {
      const value = encodeValue(p);
      ops.push({ type: 'put', key: pointKey(p.id, p.t), value });
      seq++;
      ops.push({ type: 'put', key: outboxKey(seq), value: JSON.stringify([p.id, p.t, p.v, ...(p.q ? [p.q] : [])]) });
    }
    ops.push({ type: 'put', key: SEQ_KEY, value: String(seq) });
    try {
      await this.db.batch(ops, { sync: this.options.sync ?? true });
    } catch (err) {
      this.error = (err as Error).message;
      throw new OutpostError('STORAGE_WRITE_FAILED', `LevelDB batch failed: ${this.error}`, { cause: err });
    }
    this.seq = seq;
    this.error = undefined;
    for (const p of points) {
      const current = this.latestById.get(p.id);
      if (isNewer(p, current)) this.latestById.set(p.id, p.q ? { t: p.t, v: p.v, q: p.q } : { t: p.t, v: p.v });
    }
  }

  async query(id: string, range: RangeQuery = {}): Promise<StoredValue[]> {
    const limit = Math.min(range.limit ?? DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT);
    const prefix = pointPrefix(id);
    const gte = range.from === undefined ? prefix : pointKey(id, Math.max(0, range.from));
    const lte = range.to === undefined ? prefix + HIGH : pointKey(id, range.to);
    const out: StoredValue[] = [];
    for await (const [key, value] of this.db.iterator({ gte, lte, limit, reverse: range.order === 'desc' })) {
      out.push(decodeValue(pointTime(key), value));
    }
    return out;
  }

  latest(id: string): StoredValue | undefined {
    return this.latestById.get(id);
  }

  async putDatapoint(dp: Datapoint): Promise<void> {
    await this.db.put(metaKey(dp.id), JSON.stringify(dp), { sync: this.options.sync ?? true });
  }

  async listDatapoints(): Promise<Datapoint[]> {
    const out: Datapoint[] = [];
    for await (const value of this.db.values({ gte: 'm!', lt: 'm!' + HIGH })) {
      const parsed = DatapointSchema.safeParse(JSON.parse(value));
      if (parsed.success) out.push(parsed.data);
    }
    return out;
  }

  async readOutbox(afterSeq: number, limit: number): Promise<OutboxRecord[]> {
    const out: OutboxRecord[] = [];
    for await (const [key, value] of this.db.iterator({ gt: outboxKey(afterSeq), lt: 'o!' + HIGH, limit })) {
      const [id, t, v, q] = JSON.parse(value) as [string, number, StoredValue['v'], ('stale' | 'bad')?];
      out.push(q ? { seq: outboxSeq(key), id, t, v, q } : { seq: outboxSeq(key), id, t, v });
    }
    return out;
  }

  stats(): StoreStats {
    return {
      pending: this.writer.pending,
      written: this.writer.written,
      commits: this.writer.commits,
      lastSeq: this.seq,
      ...(this.error ? { error: this.error } : {}),
    };
  }
}
