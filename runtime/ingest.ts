import type { PublishPacket } from 'aedes';
import { plainAddress } from './net.js';
import { OutpostError, toOutpostError } from '../core/errors.js';
import { warnOnce, type Logger } from './log.js';
import type { Clock } from '../core/clock.js';
import type { Store } from '../storage/store.js';
import type { Metrics } from './metrics.js';
import type { Bus, PublishingClient } from './bus.js';
import type { Topics } from './topics.js';
import { type DatapointRegistry, EXTERNAL_OWNERS } from './datapoints/registry.js';
import {
  DATAPOINT_ID,
  DatapointSchema,
  parseValuePayload,
  validatePoint,
  validateValue,
  type Datapoint,
  type SetpointRequest,
  type Value,
  type ValueMessage,
} from '../core/datapoint.js';
import { ReadingTimes } from './datapoints/stamps.js';
import { actorText, toSource, type CommandSource } from './audit/actor.js';
import type { AuditSink } from './audit/entry.js';
import { formatZodError } from '../core/zod-error.js';

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
  /** The audit trail: every setpoint, from any source, with its outcome. */
  audit?: AuditSink;
}

/** The values of a setpoint request as the audit trail keeps them (a bare value is `{v}`). */
function setpointDetails(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return { v: body };
  const { v, min, max, expires } = body as Record<string, unknown>;
  return Object.fromEntries(Object.entries({ v, min, max, expires }).filter(([, x]) => x !== undefined));
}

/**
 * The one path every reading takes: validate against the datapoint, store durably,
 * then publish (retained only if it is the newest). Also the publish guard for MQTT
 * clients, which runs before the broker acknowledges a publication.
 */
/**
 * QoS 0 readings accepted and not yet durable, at most. QoS 0 promises no acknowledgement,
 * so its routing does not wait for the fsync; beyond this many, it does, and the publishing
 * connection is no longer read (back-pressure instead of a queue).
 */
const MAX_UNCONFIRMED_QOS0 = 10_000;
/**
 * QoS 0 readings go to storage together, every QOS0_FLUSH_MS or QOS0_BATCH readings: a commit
 * costs per datapoint (its newest raw chunk and four rollup buckets rewritten), so one commit
 * of ten readings per datapoint costs about what one of a single reading does.
 */
const QOS0_FLUSH_MS = 50;
const QOS0_BATCH = 2_000;

export class Ingest {
  /** Problems of a kind (QoS 0 write failures by code, refusals by client and code) are logged once. */
  private readonly logOnce = warnOnce(() => this.o.log, { max: 10_000 });
  /** Times for readings sent without one, and which reading of a datapoint is the newest. */
  private readonly times = new ReadingTimes();
  /** Auto-registrations under way: a burst of first values to a new datapoint shares one. */
  private readonly registering = new Map<string, Promise<Datapoint>>();
  private unconfirmedQos0 = 0;
  private qos0Batch: Array<{ id: string } & ValueMessage> = [];
  private qos0Timer: NodeJS.Timeout | undefined;
  /** Writes of QoS 0 batches under way (flush waits for them). */
  private readonly qos0Writes = new Set<Promise<void>>();
  private readonly mqttIn;
  private readonly mqttStored;

  constructor(private readonly o: IngestOptions) {
    this.mqttIn = o.metrics.messagesIn.labels({ adapter: 'mqtt' });
    this.mqttStored = o.metrics.pointsStored.labels({ adapter: 'mqtt' });
  }

  /** A deleted datapoint: what is remembered of its reading times goes (its next reading starts afresh). */
  forget(id: string): void {
    this.times.forget(id);
  }

  /** Hands buffered QoS 0 readings to storage and waits until every one is written (or failed). */
  async flush(): Promise<void> {
    this.flushQos0();
    await Promise.all(this.qos0Writes);
  }

  /** A value from an adapter (or the REST API, or a virtual setpoint). */
  async accept(adapter: string, id: string, raw: { v: unknown; t?: number; q?: unknown }): Promise<ValueMessage> {
    const now = this.o.clock.now();
    const dp = this.o.registry.get(id);
    if (!dp) throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${id}": register it before publishing values`);
    this.o.metrics.messagesIn.inc({ adapter });
    const msg = validateValue(dp, { v: raw.v, t: raw.t ?? this.times.stamp(id, now), q: raw.q }, now);
    const newest = this.isNewest(id, msg.t, now);
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
    for (const [id, r] of newestById) if (this.isNewest(id, r.t, now)) messages.push([id, r.q ? { v: r.v, t: r.t, q: r.q } : { v: r.v, t: r.t }]);
    await this.o.store.write(records);
    this.o.metrics.pointsStored.inc({ adapter }, records.length);
    for (const [id, msg] of messages) await this.o.bus.publish(this.o.topics.value(id), JSON.stringify(msg), { retain: true });
    return records.length;
  }

  /** Is a reading at `t` the datapoint's newest (stored or on its way)? Only that one is retained. */
  private isNewest(id: string, t: number, now: number): boolean {
    return this.times.observe(id, t, now, this.o.store.latest(id)?.t);
  }

  /**
   * Publish guard for MQTT clients (see Bus.guard). Returns nothing when the publication may
   * be routed at once (a QoS 0 reading), a promise when it waits (a durable write, a new
   * datapoint's registration): most readings then cost no promise at all.
   */
  readonly guard = (client: PublishingClient, packet: PublishPacket): Promise<void> | undefined => {
    const { topics } = this.o;
    if (!topics.isGatewayOwned(packet.topic)) return undefined;
    const parsed = topics.parseDatapointTopic(packet.topic);
    try {
      if (!parsed) throw new OutpostError('TOPIC_PROTECTED', `${packet.topic} is published by the gateway only`);
      // A registered id is a valid one: the pattern is checked for the others only.
      const dp = this.o.registry.get(parsed.id);
      if (!dp && !DATAPOINT_ID.test(parsed.id)) throw new OutpostError('DP_INVALID', `"${parsed.id}" is not a valid datapoint id ([a-z0-9_.-])`);
      let pending: Promise<void> | undefined;
      switch (parsed.kind) {
        case 'value':
          pending = this.guardValue(parsed.id, dp, packet);
          break;
        case 'set':
          this.guardSetpoint(client, parsed.id, packet);
          break;
        case 'meta':
          pending = this.guardMeta(parsed.id, packet);
          break;
        default:
          throw new OutpostError('TOPIC_PROTECTED', `${packet.topic} is published by the gateway only`);
      }
      return pending?.catch((err: unknown) => this.refuse(client, packet, parsed.id, err));
    } catch (err) {
      this.refuse(client, packet, parsed?.id, err);
      return undefined;
    }
  };

  /**
   * A publication the guard refused: moved to the error topic, or, when storage failed,
   * thrown so the client is disconnected without PUBACK (it keeps the message, sends it again).
   */
  private refuse(client: PublishingClient, packet: PublishPacket, id: string | undefined, err: unknown): void {
    const e = toOutpostError(err);
    if (e.code === 'STORAGE_WRITE_FAILED' || e.code === 'STORAGE_CLOSED') throw e;
    this.reject(client, packet, id, e);
  }

  /** Datapoints auto-registered from MQTT so far (owner `mqtt`), counted once then kept up to date. */
  private autoCount: number | undefined;

  private autoRegistered(): number {
    this.autoCount ??= this.o.registry.list().filter((dp) => dp.adapter === 'mqtt').length;
    return this.autoCount;
  }

  private guardValue(id: string, dp: Datapoint | undefined, packet: PublishPacket): Promise<void> | undefined {
    const raw = parseValuePayload(packet.payload as Buffer);
    if (!dp) return this.autoRegister(id, raw.v).then((registered) => this.storeValue(registered, raw, packet));
    return this.storeValue(dp, raw, packet);
  }

  /** Validates, stamps and stores (or queues, at QoS 0) a client's reading; rewrites the packet to the stored message. */
  private storeValue(dp: Datapoint, raw: { v: unknown; t?: unknown; q?: unknown }, packet: PublishPacket): Promise<void> | undefined {
    const id = dp.id;
    if (!EXTERNAL_OWNERS.has(dp.adapter)) {
      throw new OutpostError('TOPIC_PROTECTED', `datapoint ${id} belongs to adapter "${dp.adapter}"; MQTT clients may not publish its values`);
    }
    if (dp.adapter === 'virtual' && dp.kind === 'actuator') {
      // No device reports this actuator's state: its value is the last accepted setpoint.
      throw new OutpostError('TOPIC_PROTECTED', `datapoint ${id} is a virtual actuator: its value is its last accepted setpoint; publish on .../set`);
    }
    this.mqttInPending++;
    const now = this.o.clock.now();
    const t = raw.t ?? this.times.stamp(id, now);
    // The reading as stored: the object built here when it is valid as it came (a number), else normalised.
    const point = validatePoint(dp, raw.q === undefined ? { id, v: raw.v, t } : { id, v: raw.v, t, q: raw.q }, now);
    packet.retain = this.isNewest(id, point.t, now);
    // What subscribers get: the stored message (for a number, the text JSON.stringify would give).
    packet.payload = Buffer.from(
      point.q === undefined && typeof point.v === 'number'
        ? `{"v":${point.v},"t":${point.t}}`
        : JSON.stringify(point.q ? { v: point.v, t: point.t, q: point.q } : { v: point.v, t: point.t }),
    );
    if (packet.qos > 0 || this.unconfirmedQos0 >= MAX_UNCONFIRMED_QOS0 || this.o.store.readOnly) {
      // Acknowledged means durable: the PUBACK (or PUBREC) waits for the fsync.
      return this.writeDurably(point);
    }
    this.unconfirmedQos0++;
    this.qos0Batch.push(point);
    if (this.qos0Batch.length >= QOS0_BATCH) this.flushQos0();
    else this.qos0Timer ??= setTimeout(() => this.flushQos0(), QOS0_FLUSH_MS);
    return undefined;
  }

  /** MQTT readings counted since the counter was last updated (once per batch, not per message). */
  private mqttInPending = 0;

  private countMqttIn(): void {
    if (this.mqttInPending === 0) return;
    this.mqttIn.inc(this.mqttInPending);
    this.mqttInPending = 0;
  }

  /**
   * Writes a reading and resolves once it is durable. The readings of one turn (the packets of
   * one socket read, all guarded in the same turn) share one write: one promise for all.
   */
  private writeDurably(point: { id: string } & ValueMessage): Promise<void> {
    if (this.turnBatch) {
      this.turnBatch.points.push(point);
      return this.turnBatch.written;
    }
    const points = [point];
    const written = Promise.resolve().then(async () => {
      this.turnBatch = undefined;
      this.countMqttIn();
      await this.o.store.write(points);
      this.mqttStored.inc(points.length);
    });
    this.turnBatch = { points, written };
    return written;
  }

  private turnBatch: { points: Array<{ id: string } & ValueMessage>; written: Promise<void> } | undefined;

  private flushQos0(): void {
    clearTimeout(this.qos0Timer);
    this.qos0Timer = undefined;
    this.countMqttIn();
    const points = this.qos0Batch;
    if (points.length === 0) return;
    this.qos0Batch = [];
    const written: Promise<void> = this.o.store.write(points).then(
      () => {
        this.unconfirmedQos0 -= points.length;
        this.mqttStored.inc(points.length);
        this.qos0Writes.delete(written);
      },
      (err: unknown) => {
        this.unconfirmedQos0 -= points.length;
        this.qos0Writes.delete(written);
        this.lostQos0(points, toOutpostError(err));
      },
    );
    this.qos0Writes.add(written);
  }

  /** QoS 0 readings whose write failed after they were routed (storage raised its alarm too). */
  private lostQos0(points: ReadonlyArray<{ id: string }>, err: OutpostError): void {
    this.o.metrics.errors.inc({ adapter: 'mqtt', code: err.code }, points.length);
    const key = `qos0|${err.code}`;
    this.logOnce(
      key,
      { readings: points.length, first: points[0]?.id, code: err.code, reason: err.message },
      'QoS 0 readings not stored (further ones are counted, not logged)',
    );
  }

  /**
   * Registers a datapoint first seen in a value message. Single-flight: every value of a
   * burst to the new id waits for the one registration, which counts once.
   */
  private autoRegister(id: string, v: unknown): Promise<Datapoint> {
    const pending = this.registering.get(id);
    if (pending) return pending;
    if (this.o.unknownDatapoints === 'refuse') {
      throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${id}" (broker.unknownDatapoints is "refuse")`);
    }
    const max = this.o.maxAutoDatapoints ?? 10_000;
    if (this.autoRegistered() >= max) {
      throw new OutpostError(
        'DP_LIMIT',
        `unknown datapoint "${id}" not registered: MQTT clients have created ${max} datapoints already (broker.maxAutoDatapoints)`,
      );
    }
    this.autoCount = this.autoRegistered() + 1;
    const type = typeof v === 'boolean' ? 'boolean' : typeof v === 'string' ? 'string' : typeof v === 'number' ? 'number' : 'json';
    const registration = this.o.registry.register({ id, adapter: 'mqtt', kind: 'sensor', type, description: 'auto-registered from MQTT' }).then(
      (dp) => {
        this.registering.delete(id);
        this.o.log.info({ id, type }, 'auto-registered datapoint from MQTT');
        return dp;
      },
      (err: unknown) => {
        this.registering.delete(id);
        this.autoCount = this.autoRegistered() - 1;
        throw err;
      },
    );
    this.registering.set(id, registration);
    return registration;
  }

  /**
   * A setpoint published by a client: validated before the broker routes it, so `/set`
   * subscribers (the device) only ever get a command that passed, in its validated form. A
   * refused one goes to `.../error` instead; either way the outcome is on `.../set/result`.
   */
  private guardSetpoint(client: PublishingClient, id: string, packet: PublishPacket): void {
    const source: CommandSource = {
      actor: { kind: 'mqtt', name: client.id, ...(client.username ? { username: client.username } : {}) },
      ...(client.address ? { address: plainAddress(client.address) } : {}),
    };
    const now = this.o.clock.now();
    let checked: { dp: Datapoint; request: SetpointRequest };
    let body: unknown;
    try {
      try {
        body = JSON.parse((packet.payload as Buffer).toString('utf8'));
      } catch {
        throw new OutpostError('VALUE_MALFORMED', 'setpoint payload is not JSON: expected {"v": <value>}');
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body)) body = { v: body };
      checked = this.o.registry.checkSetpoint(id, body, now);
    } catch (err) {
      this.setpointRefused(id, source, toOutpostError(err), body);
      throw err;
    }
    packet.payload = Buffer.from(JSON.stringify(checked.request));
    packet.retain = false;
    // The device write may take seconds: it runs after the PUBACK and reports on set/result.
    this.applySetpoint(checked, source, now).catch(() => undefined); // reported on set/result by applySetpoint
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
    // Raw retention is the gateway's to set (the config's `datapoints:` or an adapter), not a device's.
    const retention = (body as { retention?: unknown } | null)?.retention;
    if (retention !== undefined && JSON.stringify(retention) !== JSON.stringify(existing?.retention)) {
      throw new OutpostError('DP_INVALID', `"retention" of ${id} is not set over MQTT: use storage.retention.rules in the configuration`);
    }
    const parsed = DatapointSchema.safeParse({ ...(body as object), id, adapter: existing?.adapter ?? 'mqtt' });
    if (!parsed.success) throw new OutpostError('DP_INVALID', formatZodError(parsed.error, { root: '' }));
    const dp = await this.o.registry.register(parsed.data);
    packet.payload = Buffer.from(JSON.stringify(dp));
    packet.retain = true;
  }

  /**
   * Validates and executes a setpoint from any source but MQTT (REST, downlink, schedules,
   * adapters); errors are OutpostErrors. What passed is published on `/set` first, so a
   * device subscribed there gets it exactly as an MQTT client's setpoint. `from` names who
   * gave it: an actor (and client address) from a request, or the string form
   * (`schedule`, `upstream:<source>`, `adapter:<id>`, see runtime/audit/actor.ts).
   */
  async setpoint(id: string, body: unknown, from: string | CommandSource): Promise<{ id: string; v: Value; t: number }> {
    const now = this.o.clock.now();
    const source = toSource(from);
    let checked: { dp: Datapoint; request: SetpointRequest };
    try {
      checked = this.o.registry.checkSetpoint(id, body, now);
    } catch (err) {
      throw this.setpointRefused(id, source, toOutpostError(err), body);
    }
    await this.o.bus.publish(this.o.topics.set(id), JSON.stringify(checked.request));
    return this.applySetpoint(checked, source, now);
  }

  private async applySetpoint(
    checked: { dp: Datapoint; request: SetpointRequest },
    source: CommandSource,
    now: number,
  ): Promise<{ id: string; v: Value; t: number }> {
    try {
      const result = await this.o.registry.applySetpoint(checked.dp, checked.request, now, async (dp: Datapoint, v: Value) => {
        await this.accept(dp.adapter, dp.id, { v });
      });
      this.o.metrics.setpoints.inc({ result: 'ok' });
      this.o.log.info({ id: checked.dp.id, v: result.v, source: actorText(source.actor), address: source.address }, 'setpoint applied');
      this.o.audit?.record({
        action: 'setpoint',
        actor: source.actor,
        target: checked.dp.id,
        details: { ...setpointDetails(checked.request), v: result.v },
        outcome: 'ok',
        address: source.address,
      });
      this.publishSetResult(checked.dp.id, { ok: true, ...result });
      return result;
    } catch (err) {
      throw this.setpointRefused(checked.dp.id, source, toOutpostError(err), checked.request);
    }
  }

  /** Counts, logs, audits and reports on set/result a setpoint that was refused or failed; returns the error. */
  private setpointRefused(id: string, source: CommandSource, e: OutpostError, body: unknown): OutpostError {
    this.o.metrics.setpoints.inc({ result: e.code });
    this.o.log.info({ id, source: actorText(source.actor), address: source.address, code: e.code, reason: e.message }, 'setpoint refused');
    this.o.audit?.record({
      action: 'setpoint',
      actor: source.actor,
      target: id,
      details: setpointDetails(body),
      outcome: 'refused',
      error: { code: e.code, message: e.message },
      address: source.address,
    });
    if (DATAPOINT_ID.test(id)) this.publishSetResult(id, { ok: false, id, error: e.toJSON(), t: this.o.clock.now() });
    return e;
  }

  /** The outcome of a setpoint from any source, on `.../set/result` (not retained). */
  private publishSetResult(id: string, result: object): void {
    this.o.bus
      .publish(this.o.topics.setResult(id), JSON.stringify(result))
      .catch((err: unknown) => this.o.log.debug({ err, id }, 'set/result not published (broker closing)'));
  }

  /**
   * Refused publications are moved to `<prefix>/dp/<id>/error` (or `.../gateway/rejected`)
   * with the reason: the client still gets its PUBACK (MQTT 3.1.1 has no negative ack),
   * nothing is stored or retained, and nothing vanishes silently. Logged once per client and code.
   */
  private reject(client: PublishingClient, packet: PublishPacket, id: string | undefined, err: OutpostError): void {
    this.countMqttIn();
    this.o.metrics.rejected.inc({ code: err.code });
    this.o.metrics.errors.inc({ adapter: 'mqtt', code: err.code });
    const key = `${client.id}|${err.code}|${id ?? ''}`;
    this.logOnce(
      key,
      { client: client.id, address: client.address, topic: packet.topic, code: err.code, reason: err.message },
      'MQTT publication refused (further ones like it are counted, not logged)',
    );
    const original = packet.topic;
    packet.topic = id && DATAPOINT_ID.test(id) ? this.o.topics.error(id) : this.o.topics.gatewayRejected();
    packet.retain = false;
    packet.payload = Buffer.from(JSON.stringify({ topic: original, client: client.id, error: err.toJSON(), t: this.o.clock.now() }));
  }
}
