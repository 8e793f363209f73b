import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import type { Logger } from '../log.js';
import type { Clock } from '../../core/clock.js';
import type { MqttLinkConfig } from './config.js';
import { LinkBase, type Batch, type DownlinkAck, type Link, type StorageReport } from './link.js';
import { encodeBatch } from './codec.js';
import { resolveCommandAuth } from './command-auth.js';
import { MqttCommandGate } from './mqtt-commands.js';
import type { CommandMemory } from './command-memory.js';
import { SparkplugEdge, type CurrentValues } from './sparkplug-edge.js';

export interface MqttLinkOptions {
  config: MqttLinkConfig;
  gatewayId: string;
  log: Logger;
  clock: Clock;
  /** `<dataDir>/sync`: where Sparkplug keeps its bdSeq across restarts. */
  stateDir?: string;
  /** Current value of every known datapoint, for Sparkplug births after (re)connect. */
  current?: CurrentValues;
  /** Command requestIds remembered (durably, under `stateDir`) to answer copies instead of applying them (sync `downlinkMemory`). */
  downlinkMemory?: number;
  /** The sync service's requestId memory shared by all links (else the link keeps `commands-<name>.json` of its own). */
  commandMemory?: CommandMemory;
}

/** Topics under the configured root (`sites/<gatewayId>` by default). */
export function mqttTopics(root: string) {
  return { data: `${root}/data`, live: `${root}/live`, status: `${root}/status`, cmd: `${root}/cmd/#`, cmdPrefix: `${root}/cmd/`, ack: `${root}/ack` };
}

/**
 * MQTT link to any 3.1.1 broker. Batches are published QoS 1 and count as sent only
 * on PUBACK (MQTT 3.1.1 §4.3.2). JSON batches are gzip'd to `<root>/data`; with
 * `format: sparkplug` they become Sparkplug B NBIRTH/DBIRTH/NDATA/DDATA (`sparkplug-edge.ts`).
 * The last will marks `<root>/status` offline (retained), or is the Sparkplug NDEATH;
 * setpoints arrive on `<root>/cmd/#`.
 */
export class MqttLink extends LinkBase implements Link {
  readonly name: string;
  readonly role: Link['role'];
  readonly maxBatchRecords: number;
  private client: MqttClient | undefined;
  /** Storage state other than ok, carried on `<root>/status` (reportStorage). */
  private storage: StorageReport | undefined;
  private onlineSince = 0;
  /**
   * The connection this status belongs to: chosen before each CONNECT and named by its will and
   * by the online status it publishes, so a receiver that gets a will and the next online status
   * in either order (two members of a shared subscription) keeps the newest session's
   * (central/README.md "Status order"). Epoch ms, strictly increasing within a process.
   */
  private session = 0;
  private readonly topics: ReturnType<typeof mqttTopics>;
  private readonly pending = new Set<(err: OutpostError) => void>();
  /** Publishes go out in call order although gzip runs concurrently (order per datapoint). */
  private turn: Promise<void> = Promise.resolve();
  private readonly sparkplug: SparkplugEdge | undefined;
  /** Authentication, requestId memory and retained-command check of `<root>/cmd/#` (with `downlink`). */
  private commands: MqttCommandGate | undefined;

  constructor(private readonly o: MqttLinkOptions) {
    super();
    this.name = o.config.name;
    this.role = o.config.role;
    this.maxBatchRecords = o.config.batchRecords;
    this.topics = mqttTopics(o.config.topicRoot.replaceAll('<gatewayId>', o.gatewayId));
    if (o.config.format === 'sparkplug') {
      this.sparkplug = new SparkplugEdge({
        groupId: o.config.sparkplug.groupId,
        edgeNodeId: o.config.sparkplug.edgeNodeId ?? o.gatewayId,
        ...(o.stateDir ? { bdSeqFile: join(o.stateDir, `sparkplug-${o.config.name}.json`) } : {}),
        ...(o.current ? { current: o.current } : {}),
        linkName: o.config.name,
        ackTimeoutMs: o.config.ackTimeoutMs,
        log: o.log,
        now: () => o.clock.now(),
      });
    }
  }

  async start(): Promise<void> {
    const c = this.o.config;
    await this.sparkplug?.load();
    const options: IClientOptions = {
      clientId: c.clientId ?? `outpost-${this.o.gatewayId}-${c.name}`,
      clean: true,
      keepalive: c.keepaliveSeconds,
      reconnectPeriod: c.reconnectMs,
      connectTimeout: Math.min(30_000, c.ackTimeoutMs),
      queueQoSZero: false,
      resubscribe: true,
      will: this.sparkplug ? this.sparkplug.will() : { topic: this.topics.status, payload: this.nextSessionWill(), qos: 1, retain: true },
    };
    if (c.username !== undefined) options.username = c.username;
    if (c.password !== undefined) options.password = c.password;
    if (c.passwordFile !== undefined) options.password = (await readConfigFile(c.passwordFile, 'passwordFile')).toString('utf8').trim();
    if (c.tls) {
      if (c.tls.caFile) options.ca = await readConfigFile(c.tls.caFile, 'tls.caFile');
      if (c.tls.certFile) options.cert = await readConfigFile(c.tls.certFile, 'tls.certFile');
      if (c.tls.keyFile) options.key = await readConfigFile(c.tls.keyFile, 'tls.keyFile');
      options.rejectUnauthorized = c.tls.rejectUnauthorized;
      if (c.tls.servername) options.servername = c.tls.servername;
    }
    if (c.downlink) {
      this.commands = await MqttCommandGate.open({
        linkName: c.name,
        gatewayId: this.o.gatewayId,
        auth: await resolveCommandAuth(c),
        stateDir: this.o.stateDir,
        maxIds: this.o.downlinkMemory ?? 1000,
        ...(this.o.commandMemory ? { memory: this.o.commandMemory } : {}),
        applyTimeoutMs: c.ackTimeoutMs,
        clock: this.o.clock,
        log: this.o.log,
        apply: (cmd) =>
          new Promise((resolve, reject) => {
            if (!this.emit('command', { ...cmd, reply: resolve }))
              reject(new OutpostError('SYNC_LINK_DOWN', `link ${this.name}: nobody takes downlink commands`));
          }),
        sendAck: (ack) => this.sendAck(ack),
      });
    }
    this.setState('connecting');
    const client = mqtt.connect(c.url, options);
    this.client = client;
    this.sparkplug?.attach(client);
    client.on('connect', () => void this.onConnect(client));
    client.on('close', () => this.onClose(client));
    client.on('error', (err) => {
      this.error = err.message;
      this.o.log.debug({ link: this.name, err: err.message }, 'upstream MQTT error');
    });
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet.retain));
  }

  async stop(): Promise<void> {
    // The command being applied finishes and is acked while the connection is still there.
    await withTimeout(this.commands?.stop() ?? Promise.resolve(), 5000).catch((err: Error) =>
      this.o.log.warn({ link: this.name, err: err.message }, 'downlink command still being applied at stop'),
    );
    const client = this.client;
    this.client = undefined;
    this.failPending(new OutpostError('SYNC_LINK_DOWN', `link ${this.name} stopped`));
    if (client) {
      // A clean stop says "offline" itself: the will only fires on an unexpected loss.
      if (client.connected) {
        const offline = this.sparkplug
          ? this.sparkplug.death()
          : {
              topic: this.topics.status,
              payload: Buffer.from(JSON.stringify({ state: 'offline', gatewayId: this.o.gatewayId, session: this.session, t: this.o.clock.now() })),
            };
        await withTimeout(client.publishAsync(offline.topic, offline.payload, { qos: 1, retain: !this.sparkplug }), 2000).catch((err: Error) =>
          this.o.log.debug({ link: this.name, err: err.message }, 'offline status not published on stop'),
        );
      }
      await withTimeout(client.endAsync(), 3000).catch(() => client.end(true));
    }
    this.setState('stopped');
  }

  send(batch: Batch): Promise<number> {
    const client = this.client;
    if (!client || this.current !== 'up') return Promise.reject(new OutpostError('SYNC_LINK_DOWN', `link ${this.name} is ${this.current}`));
    // Sparkplug: both lanes as NDATA/DDATA; a host reads nothing else (no JSON side channel).
    if (this.sparkplug) return this.sparkplug.send(batch);
    const topic = batch.lane === 'priority' ? this.topics.live : this.topics.data;
    const encoded = encodeBatch(batch, this.o.config.gzipLevel);
    return this.inTurn(async () => [{ topic, payload: await encoded }]);
  }

  async sendAck(ack: DownlinkAck): Promise<void> {
    const client = this.client;
    // Connected is enough: a retained command arrives right after SUBACK, before the link is `up`.
    if (!client?.connected) throw new OutpostError('SYNC_LINK_DOWN', `link ${this.name} is ${this.current}`);
    await this.publish(client, this.topics.ack, Buffer.from(JSON.stringify(ack)));
  }

  /** Encodes (possibly concurrently) but publishes strictly in call order. */
  private inTurn(encode: () => Promise<Array<{ topic: string; payload: Buffer }>>): Promise<number> {
    const previous = this.turn;
    let release!: () => void;
    this.turn = new Promise<void>((r) => (release = r));
    const messages = encode();
    // Keep the rejection observed even if we fail before awaiting it.
    messages.catch(() => undefined);
    return (async () => {
      try {
        await previous;
        const list = await messages;
        const client = this.client;
        if (!client || this.current !== 'up') throw new OutpostError('SYNC_LINK_DOWN', `link ${this.name} is ${this.current}`);
        const acks = list.map((m) => this.publish(client, m.topic, m.payload));
        release();
        await Promise.all(acks);
        return list.reduce((n, m) => n + m.payload.length, 0);
      } finally {
        release();
      }
    })();
  }

  private publish(client: MqttClient, topic: string, payload: Buffer, retain = false): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: OutpostError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.pending.delete(settle);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(
        () => settle(new OutpostError('SYNC_ACK_TIMEOUT', `no PUBACK from ${this.name} within ${this.o.config.ackTimeoutMs} ms`)),
        this.o.config.ackTimeoutMs,
      );
      this.pending.add(settle);
      client.publish(topic, payload, { qos: 1, retain }, (err) =>
        settle(err ? new OutpostError('SYNC_LINK_DOWN', `publish to ${this.name} failed: ${err.message}`, { cause: err }) : undefined),
      );
    });
  }

  /** A new session and the will that names it. */
  private nextSessionWill(): Buffer {
    this.session = Math.max(this.o.clock.now(), this.session + 1);
    return Buffer.from(JSON.stringify({ state: 'offline', gatewayId: this.o.gatewayId, session: this.session }));
  }

  /** The retained `<root>/status` while connected: online, and the storage state when it is not ok. */
  private statusPayload(): Buffer {
    return Buffer.from(
      JSON.stringify({
        state: 'online',
        gatewayId: this.o.gatewayId,
        since: this.onlineSince,
        session: this.session,
        ...(this.storage ? { storage: this.storage } : {}),
      }),
    );
  }

  reportStorage(storage: StorageReport): void {
    this.storage = storage.state === 'ok' ? undefined : storage;
    const client = this.client;
    // Sparkplug hosts read births and data only; the JSON status is the Outpost format's channel.
    if (this.sparkplug || !client?.connected) return;
    this.publish(client, this.topics.status, this.statusPayload(), true).catch((err: Error) =>
      this.o.log.warn({ link: this.name, err: err.message }, 'storage state not published upstream; it goes with the next connect'),
    );
  }

  private async onConnect(client: MqttClient): Promise<void> {
    this.onlineSince = this.o.clock.now();
    if (client !== this.client) return;
    this.error = undefined;
    try {
      const subscriptions: string[] = [];
      if (this.o.config.downlink) subscriptions.push(this.topics.cmd);
      // NCMD at QoS 1 ([tck-id-message-flow-edge-node-ncmd-subscribe]).
      if (this.sparkplug) subscriptions.push(this.sparkplug.session.topic('NCMD'));
      if (subscriptions.length) await client.subscribeAsync(subscriptions, { qos: 1 });
      if (this.sparkplug) {
        await this.sparkplug.online();
      } else {
        await this.publish(client, this.topics.status, this.statusPayload(), true);
      }
      if (client === this.client && client.connected) this.setState('up');
    } catch (err) {
      this.error = (err as Error).message;
      this.o.log.debug({ link: this.name, err: this.error }, 'upstream MQTT session setup failed; reconnecting');
      client.stream?.destroy();
    }
  }

  private onClose(client: MqttClient): void {
    if (client !== this.client) return;
    this.failPending(new OutpostError('SYNC_LINK_DOWN', `connection to ${this.name} closed${this.error ? `: ${this.error}` : ''}`));
    // With a clean session the broker forgot our in-flight QoS 1 messages; the drain
    // resends from its cursor, so MQTT.js must not replay them on reconnect as well.
    const outgoing = (client as unknown as { outgoing?: Record<string, unknown> }).outgoing ?? {};
    for (const id of Object.keys(outgoing)) client.removeOutgoingMessage(Number(id));
    this.sparkplug?.offline(client);
    // MQTT.js sends options.will with every reconnect's CONNECT: the next connection is a new session.
    if (!this.sparkplug && client.options.will) client.options.will.payload = this.nextSessionWill();
    if (this.current !== 'stopped') this.setState('down');
  }

  private onMessage(topic: string, payload: Buffer, retained: boolean): void {
    if (this.sparkplug && topic === this.sparkplug.session.topic('NCMD')) {
      this.sparkplug.onCommand(payload, retained);
      return;
    }
    // `retain` is set only on what the broker had stored when we subscribed (MQTT 3.1.1 §3.3.1.3).
    if (topic.startsWith(this.topics.cmdPrefix)) this.commands?.receive({ topic, name: topic.slice(this.topics.cmdPrefix.length), payload, retained });
  }

  private failPending(err: OutpostError): void {
    for (const settle of [...this.pending]) settle(err);
  }
}

async function readConfigFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new OutpostError('SYNC_CONFIG', `${what} ${path} cannot be read: ${(err as Error).message}`, { cause: err });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
