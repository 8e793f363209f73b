import { readFile } from 'node:fs/promises';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import type { MqttIngestConfig } from '../config.js';
import { AckWindow, InFlightRoom } from './ack-window.js';
import type { Logger } from '../log.js';
import { rateLimitedWarn } from '../log.js';
import type { CentralMetrics } from '../metrics.js';
import '../errors.js';

/** What a receiver does with a message: resolves once it is committed (the PUBACK goes then). */
export interface MqttMessageHandler {
  /** A batch on `<root>/data` (history) or `<root>/live` (priority). */
  data(gateway: string, lane: 'history' | 'priority', payload: Buffer): Promise<void>;
  /** The gateway's retained `<root>/status` (online/offline, storage state). */
  status(gateway: string, payload: Buffer): Promise<void>;
}

export interface MqttReceiverOptions {
  config: MqttIngestConfig;
  handler: MqttMessageHandler;
  metrics: CentralMetrics;
  log: Logger;
}

const MAX_BACKOFF_MS = 60_000;
/** How long `stop` waits for the commits still running, so their PUBACKs go. */
const STOP_WAIT_MS = 5000;

/** Passed to MQTT.js's handleMessage callback so it sends no PUBACK of its own (ack-window.ts does). */
const ACK_BY_WINDOW = new Error('acknowledged by the ack window after the commit');

/**
 * MQTT ingest from any broker: `$share/<group>/<root>/data`, `/live` and `/status` at QoS 1,
 * a persistent session (clean session false; MQTT 5 with a session expiry) under a stable
 * client id, so a receiver that restarts gets what was in flight to it again.
 *
 * The PUBACK goes only after the message is committed. MQTT.js (5.x) writes the PUBACK of a
 * QoS 1 PUBLISH once `client.handleMessage(packet, callback)` calls back without an error
 * (lib/handlers/publish.js); `customHandleAcks` only chooses the MQTT 5 reason code and is
 * ignored below MQTT 5 (lib/client.js replaces it), and a non-zero reason code still ends the
 * delivery, so neither can ask for the message again. A commit that fails for now (storage
 * read-only, the owning central unreachable) therefore sends no PUBACK and drops the
 * connection: on reconnect the broker delivers the unacknowledged message again (MQTT 3.1.1
 * §4.4, MQTT 5 §4.4). A message refused for good (not a batch, a gateway not configured) is
 * acknowledged, counted and logged: redelivering it would block the share group for ever.
 *
 * MQTT.js handles one incoming packet at a time (its work queue waits for each publish
 * handler). A connection therefore takes up to `messagesInFlight` messages at once — their
 * commits join the store's group commits together — and sends their PUBACKs itself, in order,
 * as they commit (ack-window.ts); with that many committing, counting those of its earlier
 * network connections still at it, it reads nothing more: back-pressure through TCP.
 * `connections` opens more members of the share group in this process.
 */
export class MqttReceiver {
  private readonly clients: MqttClient[] = [];
  private readonly warn: ReturnType<typeof rateLimitedWarn>;
  private readonly filters: { data: string; live: string; status: string };
  private readonly gatewayLevel: number;
  private readonly kindLevel: number;
  /** Messages committed and acknowledged, refused for good (acknowledged), failed for now (not acknowledged). */
  readonly counts = { committed: 0, refused: 0, retried: 0 };
  /** Per client, its messages committing (ack-window.ts InFlightRoom). */
  private readonly rooms = new Map<MqttClient, InFlightRoom>();
  private stopping = false;

  constructor(private readonly o: MqttReceiverOptions) {
    const root = o.config.topicRoot;
    const share = `$share/${o.config.group}/${root}`;
    this.filters = { data: `${share}/data`, live: `${share}/live`, status: `${share}/status` };
    const levels = root.split('/');
    this.gatewayLevel = levels.indexOf('+');
    this.kindLevel = levels.length;
    this.warn = rateLimitedWarn(o.log);
  }

  async start(): Promise<void> {
    const c = this.o.config;
    const base = await this.options();
    for (let n = 0; n < c.connections; n++) {
      const clientId = c.connections === 1 ? c.clientId : `${c.clientId}-${n + 1}`;
      const client = mqtt.connect(c.url, { ...base, clientId });
      this.attach(client, clientId);
      this.clients.push(client);
    }
  }

  async stop(): Promise<void> {
    const clients = this.clients.splice(0);
    // Nothing more is handled; the commits still running end first (5 s at most) so their
    // PUBACKs go. What is not acknowledged the broker delivers again to the next receiver.
    this.stopping = true;
    const deadline = Date.now() + STOP_WAIT_MS;
    while (Date.now() < deadline && clients.some((client) => (this.rooms.get(client)?.inFlight ?? 0) > 0)) await new Promise((r) => setTimeout(r, 20));
    await Promise.all(clients.map((client) => Promise.race([client.endAsync(false), new Promise((r) => setTimeout(r, 5000))]).then(() => client.end(true))));
  }

  /** Whether every connection is up. */
  get connected(): boolean {
    return this.clients.length > 0 && this.clients.every((c) => c.connected);
  }

  /** The connect options of `ingest.mqtt` (the command link connects with them too, under its own client id). */
  async options(): Promise<IClientOptions> {
    const c = this.o.config;
    const options: IClientOptions = {
      protocolVersion: c.protocolVersion,
      clean: false,
      keepalive: c.keepaliveSeconds,
      reconnectPeriod: c.reconnectMs,
      connectTimeout: 30_000,
      resubscribe: false,
      queueQoSZero: false,
    };
    // MQTT 5: without an expiry a session ends at disconnect, clean start or not (MQTT 5 §3.1.2.11.2).
    if (c.protocolVersion === 5) options.properties = { sessionExpiryInterval: c.sessionExpirySeconds, receiveMaximum: 64 };
    if (c.username !== undefined) options.username = c.username;
    if (c.password !== undefined) options.password = c.password;
    if (c.passwordFile !== undefined) options.password = (await readConfigFile(c.passwordFile, 'ingest.mqtt.passwordFile')).toString('utf8').trim();
    if (c.tls) {
      if (c.tls.caFile) options.ca = await readConfigFile(c.tls.caFile, 'ingest.mqtt.tls.caFile');
      if (c.tls.certFile) options.cert = await readConfigFile(c.tls.certFile, 'ingest.mqtt.tls.certFile');
      if (c.tls.keyFile) options.key = await readConfigFile(c.tls.keyFile, 'ingest.mqtt.tls.keyFile');
      options.rejectUnauthorized = c.tls.rejectUnauthorized;
      if (c.tls.servername) options.servername = c.tls.servername;
    }
    return options;
  }

  private attach(client: MqttClient, clientId: string): void {
    let failures = 0;
    client.on('connect', (connack) => {
      this.o.metrics.mqttConnected.set({ connection: clientId }, 1);
      this.o.log.info({ clientId, sessionPresent: connack.sessionPresent }, 'MQTT ingest connected');
      // Subscribed at every connect, session present or not. A kept session should still hold its
      // subscriptions, but Mosquitto 2.0.11 restores a persistent session's *shared*
      // subscriptions from its database without delivering on them again: after a broker
      // restart the receivers got nothing (sessionPresent 1; plain subscriptions were fine).
      // Subscribing to an identical filter replaces the subscription without interrupting the
      // flow (MQTT 3.1.1 §3.8.4, MQTT 5 §3.8.4), and messages queued for the session stay queued.
      client.subscribeAsync([this.filters.data, this.filters.live, this.filters.status], { qos: 1 }).then(
        (granted) => {
          const refused = granted.filter((g) => g.qos === 128);
          if (refused.length) this.o.log.error({ clientId, refused: refused.map((g) => g.topic) }, 'the broker refused the shared subscriptions (ACL?)');
        },
        (err: Error) =>
          this.warn(`subscribe:${clientId}`, { clientId, err: err.message }, 'MQTT ingest subscribe failed; it is tried again at the next connect'),
      );
    });
    client.on('close', () => this.o.metrics.mqttConnected.set({ connection: clientId }, 0));
    // Every packet handled proves the broker alive. MQTT.js (5.x) reschedules its keepalive only
    // on a PINGRESP or an incoming ack (lib/handlers/index.js), and handles packets one at a
    // time: with a backlog, the PINGRESP waits behind up to receiveMaximum PUBLISHes, each
    // waiting for its commit, and once that takes longer than half the keepalive the client
    // called the broker dead, dropped the connection and got the in-flight messages again — a
    // reconnect loop that only repeated work (bench/central-ingest.bench.ts: 8 connections,
    // keepalive timeouts every ~45 s, duplicates stored once). The broker still hears from us:
    // a PUBACK after every commit.
    client.on('packetreceive', () => client.reschedulePing(true));
    client.on('error', (err) => this.warn(`error:${clientId}:${err.message}`, { clientId, err: err.message }, 'MQTT ingest connection error'));
    // One room for all the network connections this client makes: commits of a dropped
    // connection still hold their places (ack-window.ts InFlightRoom).
    const room = new InFlightRoom(this.o.config.messagesInFlight);
    this.rooms.set(client, room);
    let window: AckWindow | undefined;
    client.handleMessage = (packet, callback) => {
      const publish = packet as IPublishPacket;
      const stream = client.stream;
      if (window?.stream !== stream) window = new AckWindow(stream, room);
      const w = window;
      // MQTT.js reads the next packet once this calls back, and with an error it sends no PUBACK
      // (lib/handlers/publish.js): the window sends it after the commit. Called only once this
      // message has a place, so with the room full nothing more is read: back-pressure through TCP.
      // While it waits, a close of its connection withdraws it: the broker delivers it again.
      let granted = false;
      let withdraw = (): void => undefined;
      const closed = (): void => withdraw();
      withdraw = room.whenRoom(() => {
        granted = true;
        stream.off('close', closed);
        if (!w.open || this.stopping) {
          // Its connection is gone (or failed) while it waited: no PUBACK could go. Or the
          // receiver stops: the broker delivers it again.
          room.release();
          callback(ACK_BY_WINDOW);
          return;
        }
        const taken = w.take(publish.qos > 0 ? publish.messageId : undefined);
        this.handle(publish).then(
          () => {
            // Only a connection without a failure resets the backoff: the other messages of a
            // failed window still commit, and must not undo the backoff its failure set.
            if (!w.failed) {
              failures = 0;
              client.options.reconnectPeriod = this.o.config.reconnectMs;
            }
            w.committed(taken);
          },
          (err: Error) => {
            // Not acknowledged: drop the connection so the broker delivers it again after the backoff.
            w.fail(taken);
            failures++;
            this.counts.retried++;
            const backoff = Math.min(MAX_BACKOFF_MS, this.o.config.reconnectMs * 2 ** Math.min(failures, 16));
            client.options.reconnectPeriod = backoff;
            this.warn(
              `retry:${clientId}`,
              { clientId, topic: publish.topic, reason: err.message, backoffMs: backoff },
              'message not committed: not acknowledged, reconnecting for redelivery',
            );
            stream.destroy();
          },
        );
        callback(ACK_BY_WINDOW);
      });
      if (!granted) {
        if (stream.destroyed) withdraw();
        else stream.once('close', closed);
      }
    };
  }

  /** Resolves when committed or refused for good (both acknowledged); rejects when it may succeed later. */
  private async handle(packet: IPublishPacket): Promise<void> {
    const topic = packet.topic;
    const levels = topic.split('/');
    const gateway = levels[this.gatewayLevel];
    const kind = levels[this.kindLevel];
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const path = kind === 'status' ? 'mqtt_status' : 'mqtt';
    try {
      if (!gateway || levels.length !== this.kindLevel + 1 || (kind !== 'data' && kind !== 'live' && kind !== 'status'))
        throw new OutpostError('CENTRAL_BATCH_INVALID', `topic ${topic.slice(0, 200)} is not <root>/data, /live or /status`);
      if (payload.length > this.o.config.maxPayloadBytes)
        throw new OutpostError(
          'BODY_TOO_LARGE',
          `${payload.length} bytes on ${topic.slice(0, 200)}; at most ${this.o.config.maxPayloadBytes} (ingest.mqtt.maxPayloadBytes)`,
        );
      if (kind === 'status') {
        // An empty retained payload clears the topic; nothing to record.
        if (payload.length > 0) await this.o.handler.status(gateway, payload);
      } else {
        await this.o.handler.data(gateway, kind === 'live' ? 'priority' : 'history', payload);
      }
      this.counts.committed++;
      this.o.metrics.requests.inc({ path, outcome: 'ok' });
    } catch (err) {
      const e = toOutpostError(err);
      this.o.metrics.requests.inc({ path, outcome: e.code });
      if (e.retryable || e.code === 'INTERNAL') throw e;
      this.counts.refused++;
      this.warn(
        `refused:${gateway}:${e.code}`,
        { topic: topic.slice(0, 200), code: e.code, reason: e.message },
        'MQTT message refused for good: acknowledged and dropped',
      );
    }
  }
}

async function readConfigFile(path: string, key: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new OutpostError('CONFIG_INVALID', `${key}: ${path} cannot be read (${(err as Error).message})`, { cause: err });
  }
}
