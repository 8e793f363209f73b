import sparkplugPayload from 'sparkplug-payload';
import type { OutboxRecord, PointRecord } from '../../storage/store.js';
import type { Value } from '../../core/datapoint.js';

/**
 * Sparkplug B (Eclipse Sparkplug 3.0.0, namespace `spBv1.0`) state of one edge node: what
 * the host has been told, turned into topics and protobuf payloads. Pure: the MQTT side
 * (QoS, will, bdSeq persistence, ordering) is `sparkplug-edge.ts`.
 *
 * Mapping: a datapoint `plant.meter1.power` is metric `meter1/power` of device `plant`
 * (DBIRTH/DDATA); an id without a dot is a node metric (NBIRTH/NDATA).
 *
 * Section numbers below are those of the 3.0.0 specification; the bracketed ids are its
 * normative statements (`tck-id-…`).
 */
const spb = sparkplugPayload.get('spBv1.0')!;

type MetricType = 'Double' | 'Boolean' | 'String' | 'Int64';
interface Known {
  type: MetricType;
  value: Value;
  /** Measurement time of `value`: the newest the host has been told in this session. */
  t: number;
  /** The type is a placeholder: only nulls were seen so far, which say nothing about it. */
  untyped?: boolean;
}

export interface SparkplugMessage {
  topic: string;
  payload: Buffer;
  kind: 'NBIRTH' | 'NDEATH' | 'DBIRTH' | 'NDATA' | 'DDATA';
}

const REBIRTH_METRIC = 'Node Control/Rebirth';

/** Largest bdSeq and seq; both wrap to 0 after it (§6.4.19 NBIRTH, §6.4.21 NDATA). */
export const SEQ_MODULUS = 256;

function splitId(id: string): { device: string | undefined; metric: string } {
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
  // A metric keeps the type of its birth (§6.4.6 Metric, datatype); a reading of another type cannot be sent as it.
  if (type === 'Double') return typeof v === 'number' ? v : null;
  return typeof v === 'boolean' ? v : null;
}

/** `bdSeq` metric of NBIRTH and NDEATH: datatype INT64 ([tck-id-message-flow-edge-node-birth-publish-will-message-payload-bdSeq]). */
function bdSeqMetric(bdSeq: number) {
  return { name: 'bdSeq', type: 'Int64' as const, value: bdSeq };
}

export class SparkplugSession {
  /** bdSeq of the current MQTT session: the one in the will of its CONNECT (`sparkplug-bdseq.ts`). */
  bdSeq = 0;
  /** Message sequence (§6.4.19, §6.4.21): NBIRTH is 0, every later message +1, wraps after 255. */
  private seq = 0;
  private readonly node = new Map<string, Known>();
  private readonly devices = new Map<string, Map<string, Known>>();
  /** Devices whose DBIRTH went out since the last NBIRTH. */
  private readonly born = new Set<string>();
  /** False until the first NBIRTH of an MQTT session: nothing else may go out before it (§5.4). */
  private nodeBorn = false;

  constructor(
    readonly groupId: string,
    readonly edgeNodeId: string,
    private readonly now: () => number,
  ) {}

  topic(kind: SparkplugMessage['kind'] | 'NCMD', device?: string): string {
    return `spBv1.0/${this.groupId}/${kind}/${this.edgeNodeId}${device === undefined ? '' : `/${device}`}`;
  }

  /** NDEATH for the will of the next CONNECT (and the clean stop): bdSeq only, no seq ([tck-id-payloads-ndeath-seq]). */
  death(bdSeq = this.bdSeq): SparkplugMessage {
    const payload = spb.encodePayload({ timestamp: this.now(), metrics: [bdSeqMetric(bdSeq)] });
    return { topic: this.topic('NDEATH'), payload: Buffer.from(payload), kind: 'NDEATH' };
  }

  /** The MQTT session ended: the next one starts with an NBIRTH. */
  ended(): void {
    this.nodeBorn = false;
    this.born.clear();
  }

  /**
   * Current values (from storage), so that births carry every known metric with its current
   * value ([tck-id-operational-behavior-data-publish-nbirth-values], [-dbirth-values]) —
   * after a restart too, not only the metrics seen since. A value older than what the host
   * was already told is ignored. Followed by `birth()`, which declares what changed.
   */
  learn(values: readonly PointRecord[]): void {
    for (const r of values) {
      const { device, metric } = splitId(r.id);
      const table = device === undefined ? this.node : this.deviceTable(device);
      const prev = table.get(metric);
      if (prev && r.t < prev.t) continue;
      table.set(metric, this.next(prev, r));
    }
  }

  /**
   * The birth sequence: NBIRTH (seq 0, bdSeq of this session, `Node Control/Rebirth` false)
   * then one DBIRTH per known device, before any data (§6.4.19, §6.4.20
   * [tck-id-payloads-dbirth-order]). After connect and on a rebirth request (§5.17 Commands).
   */
  birth(): SparkplugMessage[] {
    this.seq = 0;
    this.born.clear();
    this.nodeBorn = true;
    const metrics = [
      bdSeqMetric(this.bdSeq),
      { name: REBIRTH_METRIC, type: 'Boolean' as const, value: false },
      ...[...this.node].map(([name, k]) => metricOf(name, k)),
    ];
    const out: SparkplugMessage[] = [
      { topic: this.topic('NBIRTH'), payload: Buffer.from(spb.encodePayload({ timestamp: this.now(), seq: 0, metrics })), kind: 'NBIRTH' },
    ];
    for (const device of this.devices.keys()) out.push(this.deviceBirth(device));
    return out;
  }

  /**
   * Messages for a batch: the births it needs first, then one NDATA and one DDATA per
   * device. A reading older than the value the host already has for its metric (backlog
   * replay, a resend) goes with `is_historical` (§6.4.6 Metric) and leaves the current value
   * alone; newer readings are live, in time order per metric
   * ([tck-id-operational-behavior-data-publish-dbirth-order]). `body` carries the batch key.
   */
  encode(records: readonly OutboxRecord[], key: string): SparkplugMessage[] {
    const nodeData: Metric[] = [];
    const deviceData = new Map<string, Metric[]>();
    let nodeRebirth = !this.nodeBorn;
    const reborn = new Set<string>();
    for (const r of records) {
      const { device, metric } = splitId(r.id);
      const table = device === undefined ? this.node : this.deviceTable(device);
      const prev = table.get(metric);
      let out: Metric;
      if (prev && r.t < prev.t) {
        let type = prev.type;
        if (prev.untyped && r.v !== null) {
          // The first real value says the type, even an old one: declared in a new birth.
          type = typeOf(r.v);
          table.set(metric, { type, value: prev.value, t: prev.t });
          if (device === undefined) nodeRebirth = true;
          else reborn.add(device);
        }
        out = { ...metricOf(metric, { type, value: r.v, t: r.t }), isHistorical: true };
      } else {
        const known = this.next(prev, r);
        // A metric not in the last birth, or first typed now, needs a birth declaring it
        // ([tck-id-operational-behavior-data-publish-nbirth], [-dbirth]; datatype only in births, §6.4.6).
        if (!prev || known.type !== prev.type) {
          if (device === undefined) nodeRebirth = true;
          else reborn.add(device);
        }
        table.set(metric, known);
        out = metricOf(metric, known);
      }
      if (device === undefined) nodeData.push(out);
      else {
        let list = deviceData.get(device);
        if (!list) deviceData.set(device, (list = []));
        list.push(out);
      }
    }
    // A full rebirth already carries a DBIRTH for every device: none twice.
    const out: SparkplugMessage[] = nodeRebirth ? this.birth() : [];
    for (const device of deviceData.keys()) if (!this.born.has(device) || (!nodeRebirth && reborn.has(device))) out.push(this.deviceBirth(device));
    const body = Buffer.from(key);
    if (nodeData.length) out.push(this.data('NDATA', undefined, nodeData, body));
    for (const [device, list] of deviceData) out.push(this.data('DDATA', device, list, body));
    return out;
  }

  /** True when an NCMD payload asks for a rebirth (`Node Control/Rebirth` = true, §5.17). */
  static isRebirthRequest(payload: Buffer): boolean {
    const decoded = spb.decodePayload(payload);
    return (decoded.metrics ?? []).some((m) => m.name === REBIRTH_METRIC && m.value === true);
  }

  /** What a live reading makes of a metric: its type stays that of its birth, unless only nulls were seen. */
  private next(prev: Known | undefined, r: PointRecord): Known {
    const retype = prev?.untyped === true && r.v !== null;
    const type = prev && !retype ? prev.type : typeOf(r.v);
    const untyped = (prev?.untyped === true && !retype) || (!prev && r.v === null);
    return { type, value: r.v, t: r.t, ...(untyped ? { untyped: true } : {}) };
  }

  private deviceTable(device: string): Map<string, Known> {
    let table = this.devices.get(device);
    if (!table) this.devices.set(device, (table = new Map()));
    return table;
  }

  private deviceBirth(device: string): SparkplugMessage {
    this.born.add(device);
    const metrics = [...(this.devices.get(device) ?? [])].map(([n, k]) => metricOf(n, k));
    return {
      topic: this.topic('DBIRTH', device),
      payload: Buffer.from(spb.encodePayload({ timestamp: this.now(), seq: this.nextSeq(), metrics })),
      kind: 'DBIRTH',
    };
  }

  private data(kind: 'NDATA' | 'DDATA', device: string | undefined, metrics: Metric[], body: Buffer): SparkplugMessage {
    return { topic: this.topic(kind, device), payload: Buffer.from(spb.encodePayload({ timestamp: this.now(), seq: this.nextSeq(), body, metrics })), kind };
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) % SEQ_MODULUS;
    return this.seq;
  }
}

type Metric = ReturnType<typeof metricOf> & { isHistorical?: boolean };

function metricOf(name: string, k: Known) {
  const value = wireValue(k.type, k.value);
  return value === null ? { name, type: k.type, value: null, isNull: true, timestamp: k.t } : { name, type: k.type, value, timestamp: k.t };
}

export const sparkplugCodec = spb;
