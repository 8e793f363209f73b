import { OutpostError } from '../../core/errors.js';
import type { WireBatch } from '../../runtime/sync/codec.js';
import type { GatewayDirectory } from '../gateways.js';
import type { Logger } from '../log.js';
import { rateLimitedWarn } from '../log.js';
import type { CentralMetrics } from '../metrics.js';
import type { CentralStore, GatewayStatus, IngestLane, IngestRecords, IngestVia, InsertResult, Receipt } from '../store/contract.js';
import type { RecordColumns } from '../store/record-columns.js';
import type { ScannedBatch } from './batch-scan.js';
import { checkRecords, gatewayOfKey, type RefusedRecord } from './records.js';
import '../errors.js';

/** What ingest writes through: the store itself, or (a forwarding receiver) nothing here. */
export type IngestSink = Pick<CentralStore, 'insertReadings' | 'recordStatus' | 'recordSatellite'>;

export interface BatchResult extends InsertResult {
  key: string;
  refused: RefusedRecord[];
}

/** A batch as `IngestService.check` leaves it: what its commit needs, the records as columns. */
export interface CheckedIngest {
  gateway: string;
  via: IngestVia;
  key: string;
  lane: 'history' | 'priority';
  records: RecordColumns;
  refused: RefusedRecord[];
}

export interface IngestServiceOptions {
  sink: IngestSink;
  gateways: GatewayDirectory;
  metrics: CentralMetrics;
  log: Logger;
  now?: () => number;
}

/**
 * The one path from a decoded batch, status or satellite message to the store, whichever way
 * it came (MQTT, HTTP, the RockBLOCK webhook): the gateway must be configured and the batch
 * must be its own; records are checked; the store commits them idempotently by (gateway, seq)
 * and the caller acknowledges only once this resolves. Stateless: any number of these, in one
 * process or many, may take copies of the same batch.
 */
export class IngestService {
  private readonly warn: ReturnType<typeof rateLimitedWarn>;
  private readonly now: () => number;

  constructor(private readonly o: IngestServiceOptions) {
    this.warn = rateLimitedWarn(o.log);
    this.now = o.now ?? Date.now;
  }

  /**
   * A batch from `gateway` (the topic's or the authenticated one), checked: the gateway must be
   * configured and the batch its own. `strict`: one bad record refuses the batch (HTTP); else
   * bad records are left out, counted and logged (MQTT). A batch from `decodeIngestBatch`
   * (batch-scan.ts) may come with its records as columns already. Synchronous, and what it returns
   * holds nothing of the decoded JSON: callers keep only this while the commit runs (V8 keeps
   * an async function's locals alive across its awaits, used or not).
   */
  check(gateway: string, batch: WireBatch | ScannedBatch, via: IngestVia, strict: boolean): CheckedIngest {
    this.o.gateways.require(gateway);
    if (batch.gw !== gateway)
      throw new OutpostError('CENTRAL_BATCH_INVALID', `the batch names gateway "${String(batch.gw).slice(0, 64)}" but came from "${gateway}"`);
    if (gatewayOfKey(batch.key) !== gateway)
      throw new OutpostError('CENTRAL_BATCH_INVALID', `idempotency key "${batch.key.slice(0, 100)}" is not "${gateway}:…"`);
    if (batch.lane !== 'history' && batch.lane !== 'priority')
      throw new OutpostError('CENTRAL_BATCH_INVALID', `lane ${JSON.stringify(batch.lane)} is not "history" or "priority"`);
    const lane: IngestLane = batch.lane;
    // Scanned records are all valid (batch-scan.ts); parsed ones are checked here.
    const { records, refused } = 'columns' in batch ? { records: batch.columns, refused: [] } : checkRecords(batch, strict);
    if (refused.length > 0) {
      this.o.metrics.records.inc({ via, lane, result: 'refused' }, refused.length);
      this.warn(
        `refused:${gateway}:${via}`,
        { gateway, via, key: batch.key, refused: refused.length, first: refused[0] },
        'records refused and left out of the batch (invalid)',
      );
    }
    return { gateway, via, key: batch.key, lane, records, refused };
  }

  /** Commits a checked batch; resolves once it is durable (the caller acknowledges only then). */
  async commit(checked: CheckedIngest): Promise<BatchResult> {
    const { gateway, via, key, lane, records, refused } = checked;
    const result = await this.insert(gateway, records, { via, lane, key, at: this.now() });
    return { key, ...result, refused };
  }

  /** Readings decoded from elsewhere (the satellite), with their receipt. */
  async insert(gateway: string, records: IngestRecords, receipt: Receipt): Promise<InsertResult> {
    const started = process.hrtime.bigint();
    const result = await this.o.sink.insertReadings(gateway, records, receipt);
    this.o.metrics.commitSeconds.observe({ via: receipt.via }, Number(process.hrtime.bigint() - started) / 1e9);
    if (result.stored) this.o.metrics.records.inc({ via: receipt.via, lane: receipt.lane, result: 'stored' }, result.stored);
    if (result.duplicates) this.o.metrics.records.inc({ via: receipt.via, lane: receipt.lane, result: 'duplicate' }, result.duplicates);
    return result;
  }

  /** A status message (MQTT `<root>/status`) or document (HTTP `outpost-status/1`). */
  async status(gateway: string, raw: unknown, via: IngestVia): Promise<GatewayStatus> {
    this.o.gateways.require(gateway);
    const status = parseStatus(gateway, raw, via, this.now());
    await this.o.sink.recordStatus(gateway, status);
    return status;
  }
}

/**
 * The gateway's status, from either channel: MQTT `{"state":"online"|"offline","gatewayId",
 * "session"?,"since"?,"t"?,"storage"?}` (runtime/sync/mqtt-link.ts) or HTTP `{"format":"outpost-status/1",
 * "gw","storage"}` (runtime/sync/http-status.ts).
 */
export function parseStatus(gateway: string, raw: unknown, via: IngestVia, at: number): GatewayStatus {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new OutpostError('CENTRAL_BATCH_INVALID', 'a status is a JSON object');
  const doc = raw as Record<string, unknown>;
  const named = doc.gw ?? doc.gatewayId;
  if (named !== undefined && named !== gateway)
    throw new OutpostError('CENTRAL_BATCH_INVALID', `the status names gateway "${String(named).slice(0, 64)}" but came from "${gateway}"`);
  if (doc.format !== undefined && doc.format !== 'outpost-status/1')
    throw new OutpostError('CENTRAL_BATCH_INVALID', `status format ${JSON.stringify(doc.format)} is not outpost-status/1`);
  const status: GatewayStatus = { at, via };
  if (doc.state !== undefined) {
    if (doc.state !== 'online' && doc.state !== 'offline') throw new OutpostError('CENTRAL_BATCH_INVALID', 'status "state" is "online" or "offline"');
    status.state = doc.state;
  }
  if (doc.session !== undefined) {
    // The MQTT connection the state belongs to: the store keeps the newest session's (store/contract.ts GatewayStatus).
    if (typeof doc.session !== 'number' || !Number.isSafeInteger(doc.session) || doc.session < 0)
      throw new OutpostError('CENTRAL_BATCH_INVALID', 'status "session" is a whole number ≥ 0 (epoch ms of the connection)');
    if (status.state === undefined) throw new OutpostError('CENTRAL_BATCH_INVALID', 'a status with a "session" carries "state"');
    status.session = doc.session;
  }
  if (typeof doc.since === 'number' && Number.isSafeInteger(doc.since)) status.since = doc.since;
  else if (status.state === 'offline' && typeof doc.t === 'number' && Number.isSafeInteger(doc.t)) status.since = doc.t;
  if (doc.storage !== undefined) {
    const s = doc.storage as Record<string, unknown> | null;
    if (s === null || typeof s !== 'object' || typeof s.state !== 'string')
      throw new OutpostError('CENTRAL_BATCH_INVALID', 'status "storage" is {state, error?, since?}');
    status.storage = {
      state: s.state.slice(0, 32),
      ...(typeof s.error === 'string' ? { error: s.error.slice(0, 500) } : {}),
      ...(typeof s.since === 'number' ? { since: s.since } : {}),
    };
  }
  if (status.state === undefined && status.storage === undefined) throw new OutpostError('CENTRAL_BATCH_INVALID', 'a status carries "state" or "storage"');
  return status;
}
