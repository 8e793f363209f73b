import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import { signBody } from '../../runtime/sync/http-link.js';
import type { Logger } from '../log.js';
import { rateLimitedWarn } from '../log.js';
import { ackFromWire } from '../store/command-model.js';
import type { CommandAck, QueuedCommand } from '../store/contract.js';
import './errors.js';

export interface MqttCommandLinkOptions {
  url: string;
  /** `ingest.mqtt`'s options (MqttReceiver.options): credentials, TLS, MQTT version, session expiry. */
  connect: IClientOptions;
  clientId: string;
  /** Central's `ingest.mqtt.topicRoot` (`sites/+`): `+` stands for the gateway id. */
  topicRoot: string;
  ackGroup: string;
  log: Logger;
  /** A gateway's ack on `<root>/ack`, with the gateway the topic names. */
  onAck(gateway: string, requestId: string, ack: CommandAck): Promise<void>;
  now: () => number;
}

/**
 * Commands over MQTT: publishes a signed envelope on `<root>/cmd/<type>` (QoS 1, never
 * retained: a retained command would be delivered again at every reconnect of the gateway) and
 * takes the gateways' acks from `$share/<ackGroup>/<root>/ack` (one central of the fleet takes
 * each). The envelope is the one runtime/sync/command-auth.ts opens:
 * `{"t", "sig": "sha256=HMAC(secret, "<t>.<body>")", "body": "<the command as JSON>"}`, the body
 * naming its `type` and its gateway (`gw`), so it cannot be replayed as another command or to
 * another site. An ack that cannot be recorded now (the store refuses writes) is not
 * acknowledged to the broker: it comes again.
 */
export class MqttCommandLink {
  private client: MqttClient | undefined;
  private readonly gatewayLevel: number;
  private readonly warn: ReturnType<typeof rateLimitedWarn>;

  constructor(private readonly o: MqttCommandLinkOptions) {
    this.gatewayLevel = o.topicRoot.split('/').indexOf('+');
    this.warn = rateLimitedWarn(o.log);
  }

  start(): void {
    const client = mqtt.connect(this.o.url, { ...this.o.connect, clientId: this.o.clientId });
    this.client = client;
    const filter = `$share/${this.o.ackGroup}/${this.o.topicRoot}/ack`;
    client.on('connect', () => {
      client.subscribe(filter, { qos: 1 }, (err) => {
        if (err) this.warn('cmd-sub', { err: err.message }, 'MQTT command acks: subscription failed');
      });
    });
    client.on('error', (err) => this.warn('cmd-error', { err: err.message }, 'MQTT command link error'));
    // The PUBACK goes once the ack is recorded (central/README.md "PUBACK after the commit").
    client.handleMessage = (packet, callback) => {
      this.onMessage(packet.topic, packet.payload as Buffer).then(
        () => callback(),
        (err: unknown) => callback(err as Error),
      );
    };
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) await Promise.race([client.endAsync(false), new Promise((r) => setTimeout(r, 5000))]).then(() => client.end(true));
  }

  /** The gateway's topic root (its link's `topicRoot`, default central's with the id). */
  rootOf(gateway: string, topicRoot: string | undefined): string {
    return topicRoot ?? this.o.topicRoot.replace('+', gateway);
  }

  /** Publishes the command, signed with the gateway's command secret; resolves at the PUBACK. */
  async send(gateway: string, c: QueuedCommand, secret: string, topicRoot: string | undefined): Promise<void> {
    const client = this.client;
    if (!client?.connected) throw new OutpostError('COMMAND_SEND_FAILED', 'the MQTT command link is not connected');
    const t = this.o.now();
    const body = JSON.stringify({ ...c.command, gw: gateway });
    const envelope = JSON.stringify({ t, sig: signBody(secret, String(t), Buffer.from(body)), body });
    const topic = `${this.rootOf(gateway, topicRoot)}/cmd/${c.command.type}`;
    try {
      await client.publishAsync(topic, envelope, { qos: 1, retain: false });
    } catch (err) {
      throw new OutpostError('COMMAND_SEND_FAILED', `MQTT publish on ${topic}: ${toOutpostError(err).message}`, { cause: err });
    }
  }

  private async onMessage(topic: string, payload: Buffer): Promise<void> {
    const gateway = topic.split('/')[this.gatewayLevel];
    let ack: Record<string, unknown>;
    try {
      ack = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    } catch {
      this.warn('cmd-ack-json', { topic: topic.slice(0, 200) }, 'MQTT command ack is not JSON: dropped');
      return;
    }
    if (!gateway || ack === null || typeof ack !== 'object' || typeof ack.requestId !== 'string' || typeof ack.ok !== 'boolean') {
      // A refusal the gateway could not tie to a request (`requestId: null`: unsigned, forged) matches no command.
      this.warn('cmd-ack-shape', { topic: topic.slice(0, 200) }, 'MQTT command ack without requestId: dropped');
      return;
    }
    await this.o.onAck(gateway, ack.requestId, ackFromWire({ ...ack, ok: ack.ok }, this.o.now(), 'mqtt'));
  }
}
