import sparkplugPayload from 'sparkplug-payload';
import type { OutboxRecord } from '../../storage/store.js';
import type { Value } from '../datapoints/model.js';

/**
 * Sparkplug B (Eclipse Sparkplug 3.0, namespace `spBv1.0`) session of one edge node.
 * Pure: turns outbox records into topic + protobuf payloads; the MQTT link sends them.
 *
 * Mapping: a datapoint `plant.meter1.power` is metric `meter1/power` of device `plant`
 * (DBIRTH/DDATA); an id without a dot is a node metric (NBIRTH/NDATA). Births carry every
 * metric known so far with its latest value; a metric not yet born triggers a new
 * DBIRTH (or a full rebirth for node metrics) first, as §6.4.4 requires that DDATA only
 * carries metrics of the last birth.
 */
const spb = sparkplugPayload.get('spBv1.0')!;

type MetricType = 'Double' | 'Boolean' | 'String' | 'Int64';
interface Known {
  type: MetricType;
  value: Value;
  t: number;
  /** The type is a placeholder: only nulls were seen so far, which say nothing about it. */
  untyped?: boolean;
}

export interface SparkplugMessage {
  topic: string;
  payload: Buffer;
  kind: 'NBIRTH' | 'NDEATH' | 'DBIRTH' | 'NDATA' | 'DDATA';
}

export const REBIRTH_METRIC = 'Node Control/Rebirth';

export function splitId(id: string): { device: string | undefined; metric: string } {
  const dot = id.indexOf('.');
  if (dot < 0) return { device: undefined, metric: id };
  return { device: id.slice(0, dot), metric: id.slice(dot + 1).replaceAll('.', '/') };
}

function typeOf(v: Value): MetricType {
  if (typeof v === 'boolean') return 'Boolean';
  if (typeof v === 'number') return 'Double';
  return 'String';
}

function wireValue(type: MetricType, v: Value): string | number | boolean | null {
  if (v === null) return null;
  if (type === 'String') return typeof v === 'string' ? v : JSON.stringify(v);
  // A metric keeps the type of its birth (§6.4.4); a reading of another type cannot be sent as it.
  if (type === 'Double') return typeof v === 'number' ? v : null;
  return typeof v === 'boolean' ? v : null;
}

export class SparkplugSession {
  /** Birth/death sequence (§6.4.21): one per MQTT session, 0-255, the same in NDEATH and NBIRTH. */
  private bdSeq = 0;
  /** Message sequence (§6.4.19): NBIRTH is 0, every later message +1, wraps after 255. */
  private seq = 0;
  private readonly node = new Map<string, Known>();
  private readonly devices = new Map<string, Map<string, Known>>();
  private readonly born = new Set<string>();

  constructor(
    readonly groupId: string,
    readonly edgeNodeId: string,
    private readonly now: () => number,
  ) {}

  topic(kind: SparkplugMessage['kind'] | 'NCMD', device?: string): string {
    return `spBv1.0/${this.groupId}/${kind}/${this.edgeNodeId}${device === undefined ? '' : `/${device}`}`;
  }

  get currentBdSeq(): number {
    return this.bdSeq;
  }

  /** Last will of the next connection. */
  death(): SparkplugMessage {
    const payload = spb.encodePayload({ timestamp: this.now(), metrics: [{ name: 'bdSeq', type: 'UInt64', value: this.bdSeq }] });
    return { topic: this.topic('NDEATH'), payload: Buffer.from(payload), kind: 'NDEATH' };
  }

  /** The connection dropped: the next one gets the next bdSeq, and everything is born again. */
  disconnected(): void {
    this.bdSeq = (this.bdSeq + 1) % 256;
    this.born.clear();
  }

  /** NBIRTH then a DBIRTH per known device: after connect and on a Rebirth request (§6.4.13). */
  birth(): SparkplugMessage[] {
    this.seq = 0;
    this.born.clear();
    const t = this.now();
    const metrics = [
      { name: 'bdSeq', type: 'UInt64' as const, value: this.bdSeq },
      { name: REBIRTH_METRIC, type: 'Boolean' as const, value: false },
      ...[...this.node].map(([name, k]) => this.metric(name, k)),
    ];
    const out: SparkplugMessage[] = [{ topic: this.topic('NBIRTH'), payload: Buffer.from(spb.encodePayload({ timestamp: t, seq: 0, metrics })), kind: 'NBIRTH' }];
    for (const device of this.devices.keys()) out.push(this.deviceBirth(device));
    return out;
  }

  /**
   * Messages for a batch: births needed first, then one NDATA and one DDATA per
   * device. `body` of each data payload carries the batch's idempotency key.
   */
  encode(records: readonly OutboxRecord[], key: string): SparkplugMessage[] {
    const out: SparkplugMessage[] = [];
    const nodeData: Array<[string, Known]> = [];
    const deviceData = new Map<string, Array<[string, Known]>>();
    let nodeRebirth = false;
    const newDevices = new Set<string>();
    for (const r of records) {
      const { device, metric } = splitId(r.id);
      const table = device === undefined ? this.node : this.deviceTable(device);
      const prev = table.get(metric);
      // A metric first seen with a null reading gets its real type (and a new BIRTH, which
      // is where Sparkplug declares types, §6.4.6) with its first real value.
      const retype = prev?.untyped === true && r.v !== null;
      const type = prev && !retype ? prev.type : typeOf(r.v);
      const known: Known = { type, value: r.v, t: r.t, ...((prev?.untyped && !retype) || (!prev && r.v === null) ? { untyped: true } : {}) };
      if (!prev || (retype && type !== prev.type)) {
        if (device === undefined) nodeRebirth = true;
        else newDevices.add(device);
      }
      table.set(metric, known);
      if (device === undefined) nodeData.push([metric, known]);
      else {
        let list = deviceData.get(device);
        if (!list) deviceData.set(device, (list = []));
        list.push([metric, known]);
      }
    }
    if (nodeRebirth) out.push(...this.birth());
    for (const device of deviceData.keys()) if (!this.born.has(device) || newDevices.has(device)) out.push(this.deviceBirth(device));
    const body = Buffer.from(key);
    if (nodeData.length) {
      out.push({ topic: this.topic('NDATA'), payload: Buffer.from(spb.encodePayload({ timestamp: this.now(), seq: this.nextSeq(), body, metrics: nodeData.map(([n, k]) => this.metric(n, k)) })), kind: 'NDATA' });
    }
    for (const [device, list] of deviceData) {
      out.push({
        topic: this.topic('DDATA', device),
        payload: Buffer.from(spb.encodePayload({ timestamp: this.now(), seq: this.nextSeq(), body, metrics: list.map(([n, k]) => this.metric(n, k)) })),
        kind: 'DDATA',
      });
    }
    return out;
  }

  /** True when an NCMD payload asks for a rebirth (`Node Control/Rebirth` = true). */
  static isRebirthRequest(payload: Buffer): boolean {
    const decoded = spb.decodePayload(payload);
    return (decoded.metrics ?? []).some((m) => m.name === REBIRTH_METRIC && m.value === true);
  }

  private deviceTable(device: string): Map<string, Known> {
    let table = this.devices.get(device);
    if (!table) this.devices.set(device, (table = new Map()));
    return table;
  }

  private deviceBirth(device: string): SparkplugMessage {
    this.born.add(device);
    const metrics = [...(this.devices.get(device) ?? [])].map(([n, k]) => this.metric(n, k));
    return { topic: this.topic('DBIRTH', device), payload: Buffer.from(spb.encodePayload({ timestamp: this.now(), seq: this.nextSeq(), metrics })), kind: 'DBIRTH' };
  }

  private metric(name: string, k: Known) {
    const value = wireValue(k.type, k.value);
    return value === null ? { name, type: k.type, value: null, isNull: true, timestamp: k.t } : { name, type: k.type, value, timestamp: k.t };
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) % 256;
    return this.seq;
  }
}

export const sparkplugCodec = spb;
