import type { PublishPacket } from 'aedes';
import { OutpostError, toOutpostError } from './errors.js';
import type { Logger } from './log.js';
import type { Clock } from './clock.js';
import type { Store } from '../storage/store.js';
import type { Metrics } from './metrics.js';
import type { Bus, PublishingClient } from './bus.js';
import { Topics } from './topics.js';
import { DatapointRegistry, EXTERNAL_OWNERS } from './datapoints/registry.js';
import { DATAPOINT_ID, DatapointSchema, parseValuePayload, validatePoint, validateValue, type Datapoint, type Value, type ValueMessage } from './datapoints/model.js';

export interface IngestOptions {
  store: Store;
  registry: DatapointRegistry;
  bus: Bus;
  topics: Topics;
  metrics: Metrics;
  log: Logger;
  clock: Clock;
  unknownDatapoints: 'register' | 'refuse';
  /** Datapoints MQTT clients may create by publishing (each costs memory and disk); beyond, refused. */
  maxAutoDatapoints?: number;
}

/**
 * The one path every reading takes: validate against the datapoint, store durably,
 * then publish (retained only if it is the newest). Also the publish guard for MQTT
 * clients, which runs before the broker acknowledges a publication.
 */
export class Ingest {
  private readonly warned = new Set<string>();

  constructor(private readonly o: IngestOptions) {}

  /** A value from an adapter (or the REST API, or a virtual setpoint). */
  async accept(adapter: string, id: string, raw: { v: unknown; t?: number; q?: unknown }): Promise<ValueMessage> {
    const now = this.o.clock.now();
    const dp = this.o.registry.get(id);
    if (!dp) throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${id}": register it before publishing values`);
    this.o.metrics.messagesIn.inc({ adapter });
    const msg = validateValue(dp, { v: raw.v, t: raw.t ?? now, q: raw.q }, now);
    const newest = this.isNewest(id, msg.t);
    await this.o.store.write([{ id, ...msg }]);
    this.o.metrics.pointsStored.inc({ adapter });
    await this.o.bus.publish(this.o.topics.value(id), JSON.stringify(msg), { retain: newest });
    return msg;
  }

  /** Many points in one durable write; only each datapoint's newest goes on the bus. */
  async acceptMany(adapter: string, points: ReadonlyArray<{ id: string; v: Value; t: number; q?: 'stale' | 'bad' }>): Promise<number> {
    const now = this.o.clock.now();
    const records = new Array<{ id: string } & ValueMessage>(points.length);
    // Each datapoint's newest point of the batch (the last of equal times), published below
    // when it is also newer than what is stored.
    const newestById = new Map<string, { id: string } & ValueMessage>();
    for (let i = 0; i < points.length; i++) {
      const p = points[i]!;
      const dp = this.o.registry.get(p.id);
      if (!dp) throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${p.id}": register it before publishing values`);
      const r = (records[i] = validatePoint(dp, p, now));
      const cur = newestById.get(r.id);
      if (!cur || r.t >= cur.t) newestById.set(r.id, r);
    }
    this.o.metrics.messagesIn.inc({ adapter }, records.length);
    const messages: Array<[string, ValueMessage]> = [];
    for (const [id, r] of newestById) if (this.isNewest(id, r.t)) messages.push([id, r.q ? { v: r.v, t: r.t, q: r.q } : { v: r.v, t: r.t }]);
    await this.o.store.write(records);
    this.o.metrics.pointsStored.inc({ adapter }, records.length);
    for (const [id, msg] of messages) await this.o.bus.publish(this.o.topics.value(id), JSON.stringify(msg), { retain: true });
    return records.length;
  }

  private isNewest(id: string, t: number): boolean {
    const latest = this.o.store.latest(id);
    return latest === undefined || t >= latest.t;
  }

  /** Publish guard for MQTT clients (see Bus.guard). */
  readonly guard = async (client: PublishingClient, packet: PublishPacket): Promise<void> => {
    const { topics } = this.o;
    if (!topics.isGatewayOwned(packet.topic)) return;
    const parsed = topics.parseDatapointTopic(packet.topic);
    try {
      if (!parsed) throw new OutpostError('TOPIC_PROTECTED', `${packet.topic} is published by the gateway only`);
      if (!DATAPOINT_ID.test(parsed.id)) throw new OutpostError('DP_INVALID', `"${parsed.id}" is not a valid datapoint id ([a-z0-9_.-])`);
      switch (parsed.kind) {
        case 'value':
          return await this.guardValue(parsed.id, packet);
        case 'set':
          return this.guardSetpoint(client, parsed.id, packet);
        case 'meta':
          return await this.guardMeta(parsed.id, packet);
        default:
          throw new OutpostError('TOPIC_PROTECTED', `${packet.topic} is published by the gateway only`);
      }
    } catch (err) {
      const e = toOutpostError(err);
      // Never acknowledge what could not be stored: the error disconnects the client
      // without PUBACK, so it keeps the message and sends it again.
      if (e.code === 'STORAGE_WRITE_FAILED' || e.code === 'STORAGE_CLOSED') throw e;
      this.reject(client, packet, parsed?.id, e);
    }
  };

  /** Datapoints auto-registered from MQTT so far (owner `mqtt`), counted once then kept up to date. */
  private autoCount: number | undefined;

  private autoRegistered(): number {
    this.autoCount ??= this.o.registry.list().filter((dp) => dp.adapter === 'mqtt').length;
    return this.autoCount;
  }

  private async guardValue(id: string, packet: PublishPacket): Promise<void> {
    const now = this.o.clock.now();
    let dp = this.o.registry.get(id);
    const raw = parseValuePayload(packet.payload as Buffer, now);
    if (!dp) {
      if (this.o.unknownDatapoints === 'refuse') {
        throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${id}" (broker.unknownDatapoints is "refuse")`);
      }
      const max = this.o.maxAutoDatapoints ?? 10_000;
      if (this.autoRegistered() >= max) {
        throw new OutpostError('DP_LIMIT', `unknown datapoint "${id}" not registered: MQTT clients have created ${max} datapoints already (broker.maxAutoDatapoints)`);
      }
      const type = typeof raw.v === 'boolean' ? 'boolean' : typeof raw.v === 'string' ? 'string' : typeof raw.v === 'number' ? 'number' : 'json';
      dp = await this.o.registry.register({ id, adapter: 'mqtt', kind: 'sensor', type, description: 'auto-registered from MQTT' });
      this.autoCount = this.autoRegistered() + 1;
      this.o.log.info({ id, type }, 'auto-registered datapoint from MQTT');
    } else if (!EXTERNAL_OWNERS.has(dp.adapter)) {
      throw new OutpostError('TOPIC_PROTECTED', `datapoint ${id} belongs to adapter "${dp.adapter}"; MQTT clients may not publish its values`);
    }
    this.o.metrics.messagesIn.inc({ adapter: 'mqtt' });
    const msg = validateValue(dp, raw, now);
    const newest = this.isNewest(id, msg.t);
    await this.o.store.write([{ id, ...msg }]);
    this.o.metrics.pointsStored.inc({ adapter: 'mqtt' });
    packet.payload = Buffer.from(JSON.stringify(msg));
    packet.retain = newest;
  }

  private guardSetpoint(client: PublishingClient, id: string, packet: PublishPacket): void {
    let body: unknown;
    try {
      body = JSON.parse((packet.payload as Buffer).toString('utf8'));
    } catch {
      throw new OutpostError('VALUE_MALFORMED', 'setpoint payload is not JSON: expected {"v": <value>}');
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) body = { v: body };
    packet.retain = false;
    // The device write may take seconds: run it after the PUBACK and report on set/result.
    void this.setpoint(id, body, `mqtt:${client.id}`).then(
      (result) => this.o.bus.publish(this.o.topics.setResult(id), JSON.stringify({ ok: true, ...result })),
      (err: OutpostError) => this.o.bus.publish(this.o.topics.setResult(id), JSON.stringify({ ok: false, id, error: err.toJSON(), t: this.o.clock.now() })),
    );
  }

  private async guardMeta(id: string, packet: PublishPacket): Promise<void> {
    const existing = this.o.registry.get(id);
    if (existing && !EXTERNAL_OWNERS.has(existing.adapter)) {
      throw new OutpostError('TOPIC_PROTECTED', `datapoint ${id} belongs to adapter "${existing.adapter}"; its metadata is published by the gateway`);
    }
    let body: unknown;
    try {
      body = JSON.parse((packet.payload as Buffer).toString('utf8'));
    } catch {
      throw new OutpostError('DP_INVALID', 'metadata payload is not JSON');
    }
    const parsed = DatapointSchema.safeParse({ ...(body as object), id, adapter: existing?.adapter ?? 'mqtt' });
    if (!parsed.success) throw new OutpostError('DP_INVALID', parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    const dp = await this.o.registry.register(parsed.data);
    packet.payload = Buffer.from(JSON.stringify(dp));
    packet.retain = true;
  }

  /** Validates and executes a setpoint from any source; errors are OutpostErrors. */
  async setpoint(id: string, body: unknown, source: string): Promise<{ id: string; v: Value; t: number }> {
    try {
      const result = await this.o.registry.setpoint(id, body, this.o.clock.now(), async (dp: Datapoint, v: Value) => {
        await this.accept(dp.adapter, dp.id, { v });
      });
      this.o.metrics.setpoints.inc({ result: 'ok' });
      this.o.log.info({ id, v: result.v, source }, 'setpoint applied');
      return result;
    } catch (err) {
      const e = toOutpostError(err);
      this.o.metrics.setpoints.inc({ result: e.code });
      this.o.log.info({ id, source, code: e.code, reason: e.message }, 'setpoint refused');
      throw e;
    }
  }

  /**
   * Refused publications are moved to `<prefix>/dp/<id>/error` (or `.../gateway/rejected`)
   * with the reason: the client still gets its PUBACK (MQTT 3.1.1 has no negative ack),
   * nothing is stored or retained, and nothing vanishes silently. Logged once per client and code.
   */
  private reject(client: PublishingClient, packet: PublishPacket, id: string | undefined, err: OutpostError): void {
    this.o.metrics.rejected.inc({ code: err.code });
    this.o.metrics.errors.inc({ adapter: 'mqtt', code: err.code });
    const key = `${client.id}|${err.code}|${id ?? ''}`;
    if (!this.warned.has(key)) {
      if (this.warned.size > 10_000) this.warned.clear();
      this.warned.add(key);
      this.o.log.warn({ client: client.id, address: client.address, topic: packet.topic, code: err.code, reason: err.message }, 'MQTT publication refused (further ones like it are counted, not logged)');
    }
    const original = packet.topic;
    packet.topic = id && DATAPOINT_ID.test(id) ? this.o.topics.error(id) : this.o.topics.gatewayRejected();
    packet.retain = false;
    packet.payload = Buffer.from(JSON.stringify({ topic: original, client: client.id, error: err.toJSON(), t: this.o.clock.now() }));
  }
}
