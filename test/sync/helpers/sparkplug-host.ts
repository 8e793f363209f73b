import mqtt, { type MqttClient } from 'mqtt';
import { sparkplugCodec } from '../../../runtime/sync/sparkplug.js';
import type { Teardown } from '../../helpers/teardown.js';

type Payload = ReturnType<typeof sparkplugCodec.decodePayload>;
type Metric = NonNullable<Payload['metrics']>[number];

export interface HostMessage {
  topic: string;
  kind: string;
  node: string;
  device: string | undefined;
  /** QoS of delivery: the host subscribes at 1, so this is the QoS the edge node published with. */
  qos: number;
  retain: boolean;
  p: Payload;
}

export interface Reading {
  device: string | undefined;
  metric: string;
  t: number;
  v: unknown;
  historical: boolean;
}

interface NodeSession {
  bdSeq: number;
  online: boolean;
  seq: number;
  nodeMetrics: Set<string>;
  /** Metric names of each device's DBIRTH since the last NBIRTH. */
  devices: Map<string, Set<string>>;
  /** `name:type` of each device's DBIRTH since the last NBIRTH. */
  declared: Map<string, Set<string>>;
}

const num = (v: unknown): number => Number(v as number);
const metricKey = (device: string | undefined, metric: string): string => `${device ?? ''}:${metric}`;

/**
 * A Sparkplug B host application as a test sees it: subscribed to `spBv1.0/#` (and, to
 * catch side channels, `sites/#`), decodes every message with `sparkplug-payload` and checks
 * the edge node's side of the 3.0.0 rules as they arrive. Every breach goes to `violations`.
 */
export class SparkplugHost {
  readonly messages: HostMessage[] = [];
  /** Messages outside the Sparkplug namespace (a JSON side channel a host never reads). */
  readonly sideChannel: string[] = [];
  readonly violations: string[] = [];
  /** bdSeq of every NBIRTH / NDEATH, in arrival order. */
  readonly births: number[] = [];
  readonly deaths: Array<{ bdSeq: number; qos: number }> = [];
  /** Every metric value of NDATA/DDATA. */
  readonly readings: Reading[] = [];
  /** The host's current value per metric: births and live (not historical) data. */
  readonly current = new Map<string, { t: number; v: unknown }>();
  private session: NodeSession | undefined;

  private constructor(
    private readonly client: MqttClient,
    readonly groupId: string,
    readonly edgeNodeId: string,
  ) {}

  static async connect(t: Teardown, url: string, groupId: string, edgeNodeId: string): Promise<SparkplugHost> {
    const client = await mqtt.connectAsync(url, { clientId: `scada-host-${process.pid}`, clean: true, reconnectPeriod: 200 });
    t.teardown(() => client.endAsync(true));
    const host = new SparkplugHost(client, groupId, edgeNodeId);
    client.on('message', (topic, payload, packet) => host.handle(topic, payload, packet.qos, packet.retain));
    await client.subscribeAsync(['spBv1.0/#', 'sites/#'], { qos: 1 });
    return host;
  }

  /** Current value of `device`/`metric` (device undefined: a node metric). */
  valueOf(device: string | undefined, metric: string): { t: number; v: unknown } | undefined {
    return this.current.get(metricKey(device, metric));
  }

  /** Sends `Node Control/Rebirth` = true (NCMD, QoS 0 per [tck-id-payloads-ncmd-qos]); `retain` only to test a misbehaving host. */
  async requestRebirth(retain = false): Promise<void> {
    const payload = sparkplugCodec.encodePayload({ timestamp: Date.now(), metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }] });
    await this.client.publishAsync(this.ncmdTopic, Buffer.from(payload), { qos: retain ? 1 : 0, retain });
  }

  /** Removes a retained NCMD from the broker. */
  async clearRetained(): Promise<void> {
    await this.client.publishAsync(this.ncmdTopic, Buffer.alloc(0), { qos: 1, retain: true });
  }

  private get ncmdTopic(): string {
    return `spBv1.0/${this.groupId}/NCMD/${this.edgeNodeId}`;
  }

  private violation(msg: string): void {
    this.violations.push(`#${this.messages.length} ${msg}`);
  }

  private handle(topic: string, payload: Buffer, qos: number, retain: boolean): void {
    if (!topic.startsWith('spBv1.0/')) {
      this.sideChannel.push(topic);
      return;
    }
    const [, group, kind, node, device] = topic.split('/');
    if (group !== this.groupId || node !== this.edgeNodeId || kind === 'NCMD' || kind === 'DCMD' || kind === 'STATE') return;
    let p: Payload;
    try {
      p = sparkplugCodec.decodePayload(payload);
    } catch (err) {
      this.violation(`${topic}: undecodable payload (${(err as Error).message})`);
      return;
    }
    this.messages.push({ topic, kind: kind!, node: node!, device, qos, retain, p });
    if (retain) this.violation(`${kind} retained`);
    if (kind === 'NDEATH') return this.onDeath(p, qos);
    // [tck-id-payloads-nbirth-qos], [-dbirth-qos], [-ndata-qos], [-ddata-qos]
    if (qos !== 0) this.violation(`${kind} published at QoS ${qos}, spec: 0`);
    if (kind === 'NBIRTH') return this.onNodeBirth(p);
    const s = this.session;
    if (!s?.online) return this.violation(`${kind} while the node is not born`);
    const expected = (s.seq + 1) % 256;
    if (num(p.seq) !== expected) this.violation(`${kind} seq ${num(p.seq)}, expected ${expected}`);
    s.seq = num(p.seq);
    if (kind === 'DBIRTH') return this.onDeviceBirth(s, device!, p);
    if (kind === 'NDATA' || kind === 'DDATA') return this.onData(s, kind, kind === 'DDATA' ? device : undefined, p);
    this.violation(`unexpected ${kind}`);
  }

  private onDeath(p: Payload, qos: number): void {
    const bd = (p.metrics ?? []).find((m) => m.name === 'bdSeq');
    if (p.seq !== undefined && p.seq !== null) this.violation('NDEATH carries a seq');
    if (!bd) return this.violation('NDEATH without bdSeq');
    const bdSeq = num(bd.value);
    this.deaths.push({ bdSeq, qos });
    if (qos !== 1) this.violation(`NDEATH at QoS ${qos}, spec: 1`);
    if (this.session && this.session.bdSeq === bdSeq) this.session.online = false;
  }

  private onNodeBirth(p: Payload): void {
    const metrics = p.metrics ?? [];
    const bd = metrics.find((m) => m.name === 'bdSeq');
    const rebirth = metrics.find((m) => m.name === 'Node Control/Rebirth');
    if (bd?.type !== 'Int64') this.violation(`NBIRTH bdSeq ${JSON.stringify(bd?.type)}, spec: Int64`);
    if (rebirth?.type !== 'Boolean' || rebirth.value !== false) this.violation('NBIRTH without Node Control/Rebirth = false');
    if (num(p.seq) !== 0) this.violation(`NBIRTH seq ${num(p.seq)}`);
    const bdSeq = num(bd?.value);
    const prev = this.session;
    if (prev) {
      // Same bdSeq: a rebirth within the session. Otherwise a new session: exactly one more.
      if (bdSeq === prev.bdSeq && !prev.online) this.violation(`NBIRTH reuses bdSeq ${bdSeq} after its NDEATH`);
      if (bdSeq !== prev.bdSeq && bdSeq !== (prev.bdSeq + 1) % 256) this.violation(`bdSeq jumped ${prev.bdSeq} → ${bdSeq}`);
    }
    this.births.push(bdSeq);
    const names = metrics.filter((m) => m.name !== 'bdSeq' && m.name !== 'Node Control/Rebirth');
    this.session = { bdSeq, online: true, seq: 0, nodeMetrics: new Set(names.map((m) => m.name!)), devices: new Map(), declared: new Map() };
    for (const m of names) this.setCurrent(undefined, m);
  }

  private onDeviceBirth(s: NodeSession, device: string, p: Payload): void {
    // A device may be born again when it gains a metric or a metric its type; not for nothing.
    const declared = new Set((p.metrics ?? []).map((m) => `${m.name}:${m.type}`));
    const before = s.declared.get(device);
    if (before && before.size === declared.size && [...declared].every((n) => before.has(n)))
      this.violation(`duplicate DBIRTH for ${device} (same metrics, no NBIRTH between)`);
    s.declared.set(device, declared);
    s.devices.set(device, new Set((p.metrics ?? []).map((m) => m.name!)));
    for (const m of p.metrics ?? []) this.setCurrent(device, m);
  }

  private onData(s: NodeSession, kind: string, device: string | undefined, p: Payload): void {
    const born = device === undefined ? s.nodeMetrics : s.devices.get(device);
    if (!born) return this.violation(`${kind} for ${device} before its DBIRTH`);
    for (const m of p.metrics ?? []) {
      if (!born.has(m.name!)) this.violation(`${kind} metric ${device ?? ''}/${m.name} not in the last birth`);
      const historical = m.isHistorical === true;
      this.readings.push({ device, metric: m.name!, t: num(m.timestamp), v: m.value, historical });
      if (historical) continue;
      const cur = this.valueOf(device, m.name!);
      // A live value older than the current one is an old value shown as current ([tck-id-operational-behavior-data-publish-dbirth-order]).
      if (cur && num(m.timestamp) < cur.t) this.violation(`${kind} ${device ?? ''}/${m.name} live value of ${num(m.timestamp)} older than current ${cur.t}`);
      this.setCurrent(device, m);
    }
  }

  private setCurrent(device: string | undefined, m: Metric): void {
    this.current.set(metricKey(device, m.name!), { t: num(m.timestamp), v: m.isNull ? null : m.value });
  }
}
