import { join } from 'node:path';
import { OutpostError } from '../../core/errors.js';
import { DATAPOINT_ID } from '../../core/datapoint.js';
import type { Value } from '../../core/datapoint.js';
import { LevelStore } from '../../storage/level/level-store.js';
import type { PointRecord } from '../../storage/store.js';
import { SeqDeduper } from '../../runtime/sync/codec.js';
import { GATEWAY_ID } from '../ids.js';
import '../errors.js';
import { KeyedLock } from './keyed-lock.js';
import { LevelCommandQueue } from './level-commands.js';
import { mergeStatus, settleLastSeen } from './status-order.js';
import { internalSeries, parseSeries, readingSeries, satelliteKey } from './series.js';
import {
  typeOfValue,
  type AggregatePoint,
  type AggregateQuery,
  type CentralDatapoint,
  type CentralStore,
  type CommandAck,
  type CommandBody,
  type CommandFilter,
  type CommandRef,
  type CommandSend,
  type EnqueueOptions,
  type GatewayCommand,
  type GatewayState,
  type GatewayStatus,
  type IngestRecord,
  type IngestRecords,
  type InsertResult,
  type QueuedCommand,
  type RangeQuery,
  type Receipt,
  type SatelliteMessage,
  type SatelliteUsage,
  type StoreHealth,
  type StoredValue,
} from './contract.js';
import { recordsOf } from './record-columns.js';

/** Largest time a key of the engine holds (storage/level/db.ts MAX_TIME). */
const MAX_TIME = 999_999_999_999_999;
/** Seqs further apart than this are looked up with separate range reads (few marks decoded per lookup). */
const CLUSTER_GAP = 256;

export interface LevelCentralStoreOptions {
  /** The central's data dir; the database is `<dataDir>/db`. */
  dataDir: string;
  /** fsync every commit (default true): acknowledged means durable. */
  sync?: boolean;
  /** Datapoints of the fleet whose newest chunks stay in memory (`level.cacheDatapoints`; LevelStoreOptions.tailCacheDatapoints). */
  cacheDatapoints?: number;
}

/**
 * The embedded central store: one LevelStore (our engine, storage/level) holding every
 * gateway's readings as series `<gateway>/<datapoint>` and what central keeps of each gateway
 * in internal series (series.ts). One process owns it (LevelDB's LOCK); more receivers
 * forward to that process (central/ingest/forward.ts).
 *
 * Dedupe by (gateway, seq): every stored seq is a mark `$seq/<gw>` written in the same atomic
 * commit as its reading. Lookups: seqs stored since open are in memory (a `SeqDeduper`, memory
 * O(gaps)); a seq at or below the highest mark found at open is looked up on disk (one range
 * read per cluster of nearby seqs), so a backlog arriving in order costs no read at all.
 */
export class LevelCentralStore implements CentralStore {
  readonly kind = 'level';
  private readonly store: LevelStore;
  private readonly lock = new KeyedLock();
  /** Seqs stored since open, per gateway. */
  private readonly seen = new SeqDeduper();
  /** Per gateway, the highest seq stored before open (-1: none): lower seqs need a disk lookup. */
  private readonly floor = new Map<string, number>();
  /** Datapoint ids per gateway (from the series at open, then from inserts). */
  private readonly index = new Map<string, Set<string>>();
  /** Gateways with any series. */
  private readonly known = new Set<string>();
  /** The command queues (`$cmd/<gw>`, level-commands.ts). */
  private readonly commands: LevelCommandQueue;

  constructor(options: LevelCentralStoreOptions) {
    this.store = new LevelStore({ path: join(options.dataDir, 'db'), sync: options.sync ?? true, tailCacheDatapoints: options.cacheDatapoints });
    this.commands = new LevelCommandQueue(this.store, this.lock, this.known);
  }

  async open(): Promise<void> {
    await this.store.open();
    for (const series of await this.store.seriesIds()) {
      const p = parseSeries(series);
      if (!p) continue;
      this.known.add(p.gateway);
      if (p.kind === 'reading') this.datapointSet(p.gateway).add(p.id);
      if (p.kind === 'seq') this.floor.set(p.gateway, this.store.latest(series)?.t ?? -1);
    }
  }

  close(): Promise<void> {
    return this.store.close();
  }

  health(): StoreHealth {
    if (!this.store.readOnly) return { state: 'ok' };
    const error = this.store.stats().error;
    return error === undefined ? { state: 'read-only' } : { state: 'read-only', error };
  }

  async insertReadings(gateway: string, given: IngestRecords, receipt: Receipt): Promise<InsertResult> {
    checkGateway(gateway);
    const records = recordsOf(given);
    for (const r of records) checkRecord(r);
    return this.lock.run(gateway, async () => {
      const { fresh, duplicates } = await this.split(gateway, records);
      const points: PointRecord[] = [];
      for (const r of fresh)
        points.push(r.q ? { id: readingSeries(gateway, r.id), t: r.t, v: r.v, q: r.q } : { id: readingSeries(gateway, r.id), t: r.t, v: r.v });
      const marks = internalSeries('seq', gateway);
      for (const r of fresh) if (r.seq !== undefined) points.push({ id: marks, t: r.seq, v: null });
      const rx: Record<string, Value> = { via: receipt.via, lane: receipt.lane, stored: fresh.length, duplicates };
      if (receipt.key !== undefined) rx.key = receipt.key;
      points.push({ id: internalSeries('rx', gateway), t: receipt.at, v: rx });
      if (receipt.satellite) points.push(satellitePoint(gateway, receipt.satellite));
      await this.store.write(points, { outbox: false });
      // Durable: only now are the seqs "stored" for the next lookup.
      this.seen.accept(
        gateway,
        fresh.filter((r) => r.seq !== undefined).map((r) => ({ seq: r.seq!, id: r.id, t: r.t, v: r.v })),
      );
      this.known.add(gateway);
      const ids = this.datapointSet(gateway);
      for (const r of fresh) ids.add(r.id);
      return { stored: fresh.length, duplicates };
    });
  }

  /** The records of a batch not stored before (first copy of a seq within the batch too). */
  private async split(gateway: string, records: readonly IngestRecord[]): Promise<{ fresh: IngestRecord[]; duplicates: number }> {
    const ranges = this.seen.ranges(gateway);
    const floor = this.floor.get(gateway) ?? -1;
    const inBatch = new Set<number>();
    const toLookUp: number[] = [];
    const candidates: IngestRecord[] = [];
    let duplicates = 0;
    for (const r of records) {
      if (r.seq === undefined) {
        candidates.push(r);
        continue;
      }
      if (inBatch.has(r.seq) || inRanges(ranges, r.seq)) {
        duplicates++;
        continue;
      }
      inBatch.add(r.seq);
      candidates.push(r);
      if (r.seq <= floor) toLookUp.push(r.seq);
    }
    const onDisk = await this.storedSeqs(gateway, toLookUp);
    const fresh: IngestRecord[] = [];
    for (const r of candidates) {
      if (r.seq !== undefined && onDisk.has(r.seq)) duplicates++;
      else fresh.push(r);
    }
    return { fresh, duplicates };
  }

  /** Of `seqs`, those with a mark on disk: one range read per cluster of nearby seqs. */
  private async storedSeqs(gateway: string, seqs: number[]): Promise<Set<number>> {
    const found = new Set<number>();
    if (seqs.length === 0) return found;
    const sorted = [...seqs].sort((a, b) => a - b);
    const marks = internalSeries('seq', gateway);
    let lo = sorted[0]!;
    let hi = lo;
    const read = async (from: number, to: number): Promise<void> => {
      for (const m of await this.store.query(marks, { from, to, limit: to - from + 1 })) found.add(m.t);
    };
    for (const s of sorted.slice(1)) {
      if (s - hi > CLUSTER_GAP) {
        await read(lo, hi);
        lo = s;
      }
      hi = s;
    }
    await read(lo, hi);
    return found;
  }

  async recordStatus(gateway: string, status: GatewayStatus): Promise<void> {
    checkGateway(gateway);
    // Read, merge, write under the gateway's lock: two receivers committing a will and the
    // next online at once both see the other's (contract.ts `GatewayStatus`).
    // (A key of its own: status commits do not wait for the gateway's readings.)
    await this.lock.run(`${gateway}\u0000status`, async () => {
      const series = internalSeries('status', gateway);
      const current = this.store.latest(series);
      const merged = mergeStatus(current?.v as unknown as GatewayStatus | undefined, status);
      if (!merged) return;
      // Never behind the current point, or latest() would not show it.
      const t = Math.max(merged.at, current?.t ?? 0);
      await this.store.write([{ id: series, t, v: merged as unknown as Value }], { outbox: false });
    });
    this.known.add(gateway);
  }

  async recordSatellite(gateway: string, message: SatelliteMessage): Promise<void> {
    checkGateway(gateway);
    await this.store.write([satellitePoint(gateway, message)], { outbox: false });
    this.known.add(gateway);
  }

  async gatewayStates(): Promise<GatewayState[]> {
    return [...this.known].sort().map((id) => this.stateOf(id));
  }

  async gatewayState(gateway: string): Promise<GatewayState | undefined> {
    return this.known.has(gateway) ? this.stateOf(gateway) : undefined;
  }

  private stateOf(id: string): GatewayState {
    const state: GatewayState = { id };
    const rx = this.store.latest(internalSeries('rx', id));
    const status = this.store.latest(internalSeries('status', id));
    const sat = this.store.latest(internalSeries('sat', id));
    if (rx) {
      const r = rx.v as { via: GatewayState['lastVia'] & string; lane: 'history'; key?: string; stored: number; duplicates: number };
      state.lastReceipt = { at: rx.t, via: r.via, lane: r.lane, stored: r.stored, duplicates: r.duplicates, ...(r.key !== undefined ? { key: r.key } : {}) };
    }
    if (status) state.status = status.v as unknown as GatewayStatus;
    if (sat) state.satellite = sat.v as unknown as SatelliteMessage;
    return settleLastSeen(state);
  }

  async satelliteUsage(gateway: string, from: number, to: number): Promise<SatelliteUsage> {
    const usage: SatelliteUsage = { messages: 0, bytes: 0, credits: 0 };
    if (!this.known.has(gateway)) return usage;
    const series = internalSeries('sat', gateway);
    let after = Math.max(0, from);
    const upTo = Math.min(to, MAX_TIME);
    // Bounded pages: a month of messages is a few thousand at most, but read them in slices anyway.
    for (;;) {
      const page = await this.store.query(series, { from: after, to: upTo, limit: 10_000 });
      for (const m of page) {
        const msg = m.v as unknown as SatelliteMessage;
        usage.messages++;
        usage.bytes += msg.bytes;
        usage.credits += msg.credits;
      }
      if (page.length < 10_000) return usage;
      after = page[page.length - 1]!.t + 1;
    }
  }

  async datapoints(gateway?: string): Promise<CentralDatapoint[]> {
    const gateways = gateway === undefined ? [...this.index.keys()].sort() : [gateway];
    const out: CentralDatapoint[] = [];
    for (const gw of gateways) {
      for (const id of [...(this.index.get(gw) ?? [])].sort()) {
        const latest = this.store.latest(readingSeries(gw, id));
        out.push({ gateway: gw, id, type: typeOfValue(latest?.v), ...(latest ? { latest } : {}) });
      }
    }
    return out;
  }

  async latest(gateway: string, id: string): Promise<StoredValue | undefined> {
    return this.store.latest(readingSeries(gateway, id));
  }

  query(gateway: string, id: string, range?: RangeQuery): Promise<StoredValue[]> {
    return this.store.query(readingSeries(gateway, id), range);
  }

  queryAggregate(gateway: string, id: string, query: AggregateQuery): Promise<AggregatePoint[]> {
    return this.store.queryAggregate(readingSeries(gateway, id), query);
  }

  async countReadings(gateway: string, id?: string): Promise<number> {
    const ids = id === undefined ? [...(this.index.get(gateway) ?? [])] : [id];
    let n = 0;
    for (const dp of ids) n += (await this.store.storedPoints(readingSeries(gateway, dp))).points;
    return n;
  }

  async countSeqs(gateway: string): Promise<number> {
    return (await this.store.storedPoints(internalSeries('seq', gateway))).points;
  }

  enqueueCommand(gateway: string, command: CommandBody, options?: EnqueueOptions): Promise<QueuedCommand> {
    checkGateway(gateway);
    return this.commands.enqueue(gateway, command, options, Date.now());
  }

  commandsAfter(gateway: string, after: number, limit: number): Promise<QueuedCommand[]> {
    return this.commands.after(gateway, after, limit);
  }

  recordCommandAck(gateway: string, cursor: number, ack: CommandAck): Promise<QueuedCommand | undefined> {
    checkGateway(gateway);
    return this.commands.ack(gateway, cursor, ack);
  }

  command(gateway: string, ref: CommandRef): Promise<QueuedCommand | undefined> {
    return this.commands.get(gateway, ref);
  }

  listCommands(filter: CommandFilter): Promise<GatewayCommand[]> {
    return this.commands.list(filter);
  }

  markCommandSent(gateway: string, cursor: number, send: CommandSend): Promise<QueuedCommand | undefined> {
    checkGateway(gateway);
    return this.commands.sent(gateway, cursor, send);
  }

  expireCommands(now: number): Promise<QueuedCommand[]> {
    return this.commands.expire(now);
  }

  nextMtCounter(gateway: string, floor: number): Promise<number> {
    checkGateway(gateway);
    return this.commands.nextMtCounter(gateway, floor);
  }

  private datapointSet(gateway: string): Set<string> {
    let ids = this.index.get(gateway);
    if (!ids) this.index.set(gateway, (ids = new Set()));
    return ids;
  }
}

function satellitePoint(gateway: string, message: SatelliteMessage): PointRecord {
  return { id: internalSeries('sat', gateway), t: satelliteKey(message.transmitTime, message.momsn), v: message as unknown as Value };
}

/** Whether `seq` lies in the merged ascending ranges (binary search). */
function inRanges(ranges: ReadonlyArray<readonly [number, number]>, seq: number): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [a, b] = ranges[mid]!;
    if (seq < a) hi = mid - 1;
    else if (seq > b) lo = mid + 1;
    else return true;
  }
  return false;
}

export function checkGateway(gateway: string): void {
  if (!GATEWAY_ID.test(gateway)) throw new OutpostError('CENTRAL_RECORD_INVALID', `gateway id "${gateway}" is not [a-z0-9][a-z0-9_-]{0,63}`);
}

/** The store's own guard (ingest checks first, with the record's position): keys must stay well-formed. */
export function checkRecord(r: IngestRecord): void {
  checkRecordFields(r.id, r.t, r.seq);
  if (r.q !== undefined && r.q !== 'stale' && r.q !== 'bad')
    throw new OutpostError('CENTRAL_RECORD_INVALID', `${r.id}: quality ${JSON.stringify(r.q)} is not "stale" or "bad"`);
}

export function checkRecordFields(id: string, t: number, seq: number | undefined): void {
  if (typeof id !== 'string' || !DATAPOINT_ID.test(id)) throw new OutpostError('CENTRAL_RECORD_INVALID', `datapoint id "${id}" is not [a-z0-9_.-]{1,128}`);
  if (!Number.isSafeInteger(t) || t < 0 || t > MAX_TIME) throw new OutpostError('CENTRAL_RECORD_INVALID', `${id}: time ${t} is not epoch ms`);
  if (seq !== undefined && (!Number.isSafeInteger(seq) || seq < 0 || seq > MAX_TIME))
    throw new OutpostError('CENTRAL_RECORD_INVALID', `${id}: seq ${seq} is not a non-negative integer`);
}
