import { ACKED_KEY, HIGH, SEQ_KEY, outboxKey, outboxSeq } from './keys.js';
import { decodeOutbox, type OutboxRow } from './outbox-codec.js';
import { TEXT, text, type BatchOp, type DbValue, type StoreDb, type WriteOps } from './db.js';
import { OutpostError } from '../../core/errors.js';
import type { OutboxRecord } from '../store.js';

/**
 * The outbox (storage/DESIGN.md "Outbox"): every commit's records under `o!<first seq>`, the
 * marks `x!seq` (last number on disk) and `x!acked` (acknowledged upstream), reads for the
 * sync drain and acknowledgements. Commits write their records (storage/level/commit.ts) and
 * take numbers from `preparedSeq`.
 */
export class OutboxLog {
  /** The last outbox sequence number on disk. */
  seq = 0;
  /** The last outbox sequence number taken by a prepared commit (seq: the last one on disk). */
  preparedSeq = 0;
  /** Highest sequence number acknowledged upstream. */
  acked = 0;
  constructor(
    private readonly level: StoreDb,
    private readonly batchWrite: WriteOps,
    private readonly sync: boolean,
  ) {}

  /** Reads the marks at open. */
  async load(): Promise<void> {
    const seq = await this.level.get(SEQ_KEY, TEXT);
    this.seq = seq === undefined ? 0 : Number(text(seq));
    this.preparedSeq = this.seq;
    const acked = await this.level.get(ACKED_KEY, TEXT);
    this.acked = acked === undefined ? 0 : Number(text(acked));
  }

  /** Re-reads the marks after a restore or a reopen (never lowered). */
  async reload(): Promise<void> {
    const seq = await this.level.get(SEQ_KEY, TEXT);
    if (seq !== undefined) this.seq = Math.max(this.seq, Number(text(seq)));
    this.preparedSeq = Math.max(this.preparedSeq, this.seq);
    const acked = await this.level.get(ACKED_KEY, TEXT);
    if (acked !== undefined) this.acked = Math.max(this.acked, Number(text(acked)));
  }

  /**
   * Outbox records are stored one commit per key: `o!<first seq>` → the commit's records
   * (storage/level/outbox-codec.ts), record i having seq first + i (commits take consecutive
   * ranges, so a commit's last seq is the next key's first - 1). Databases written before
   * hold JSON rows, or one record per key; all are read.
   */
  async read(afterSeq: number, limit: number): Promise<OutboxRecord[]> {
    const out: OutboxRecord[] = [];
    const start = Math.max(0, afterSeq, this.acked) + 1;
    if (limit <= 0 || start > this.seq) return out;
    // The commit holding `start` is the last key at or below it.
    let from = outboxKey(start);
    const holder = await this.level.keys({ gte: 'o!', lte: from, reverse: true, limit: 1 }).all();
    if (holder.length > 0) from = holder[0]!;
    const it = this.level.iterator({ gte: from, lt: 'o!' + HIGH });
    try {
      while (out.length < limit) {
        const entries = await it.nextv(64);
        if (entries.length === 0) break;
        for (const [key, value] of entries) {
          const first = outboxSeq(key);
          const rows = this.outboxRows(key, value);
          for (let i = Math.max(0, start - first); i < rows.length && out.length < limit; i++) {
            const [id, t, v, q] = rows[i]!;
            out.push(q ? { seq: first + i, id, t, v, q } : { seq: first + i, id, t, v });
          }
          if (out.length >= limit) break;
        }
      }
    } finally {
      await it.close();
    }
    return out;
  }

  /** The last decoded outbox commit: a drain reads one commit in several slices. */
  private outboxCache: { key: string; rows: OutboxRow[] } | undefined;

  private outboxRows(key: string, value: DbValue): OutboxRow[] {
    if (this.outboxCache?.key === key) return this.outboxCache.rows;
    const rows = decodeOutbox(value);
    this.outboxCache = { key, rows };
    return rows;
  }

  async ack(uptoSeq: number): Promise<number> {
    if (!Number.isSafeInteger(uptoSeq) || uptoSeq < 0) throw new OutpostError('BAD_REQUEST', `outbox sequence must be a non-negative integer, got ${uptoSeq}`);
    const upto = Math.min(uptoSeq, this.seq);
    if (upto <= this.acked) return 0;
    // Commits starting at or below upto + 1: every one but the last ends before the next
    // one's first seq, so it is wholly acknowledged; the last one is wholly acknowledged
    // only when it is the newest commit and upto reached the high-water mark. A commit
    // acknowledged in part stays on disk; reads skip its acknowledged records.
    const ops: BatchOp[] = [];
    let previous: string | undefined;
    for await (const key of this.level.keys({ gte: 'o!', lte: outboxKey(upto + 1) })) {
      if (previous !== undefined) ops.push({ type: 'del', key: previous });
      previous = key;
      if (ops.length >= 10_000) await this.batchWrite(ops.splice(0), false);
    }
    if (previous !== undefined && upto >= this.seq && outboxSeq(previous) <= upto) ops.push({ type: 'del', key: previous });
    ops.push({ type: 'put', key: ACKED_KEY, value: String(upto) });
    await this.batchWrite(ops, this.sync);
    const acknowledged = upto - this.acked;
    this.acked = upto;
    this.outboxCache = undefined;
    return acknowledged;
  }
}
