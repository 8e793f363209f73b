import type { IncomingMessage } from 'node:http';
import { OutpostError } from '../../core/errors.js';
import type { AuditSink } from '../../runtime/audit/entry.js';
import { readSecretFile, type CentralConfig } from '../config.js';
import type { GatewayDirectory } from '../gateways.js';
import type { CentralHttp } from '../http/server.js';
import { MqttReceiver } from '../ingest/mqtt.js';
import type { Logger } from '../log.js';
import type { CentralMetrics } from '../metrics.js';
import type { CentralStore, CommandBody, QueuedCommand } from '../store/contract.js';
import { commandRoutes } from './api.js';
import { MqttCommandLink } from './mqtt-link.js';
import { CommandRouter, recordMtAcks } from './router.js';
import './errors.js';

export interface CentralCommands {
  router: CommandRouter;
  mqtt: MqttCommandLink | undefined;
  /** For the RockBLOCK webhook: MT acknowledgements settle the commands they name. */
  onMtAcks(gateway: string, acks: ReadonlyArray<{ counter: number; results: string[] }>, at: number): Promise<number>;
  /** Queues a command central itself decided on (an alarm acknowledged on the Alarms page), with the default expiry. */
  enqueue(gateway: string, command: CommandBody, by: string): Promise<QueuedCommand>;
  stop(): Promise<void>;
}

export interface CommandDeps {
  config: CentralConfig;
  http: CentralHttp;
  store: CentralStore;
  gateways: GatewayDirectory;
  metrics: CentralMetrics;
  audit: AuditSink;
  clientAddress(req: IncomingMessage): string;
  log: Logger;
  now: () => number;
}

/**
 * Commands to gateways (README "Commands"): the API routes, the router and its links. The MQTT
 * link connects when `ingest.mqtt` is set and some gateway lists `mqtt` in `downlink.links`;
 * Iridium needs `commands.rockblock`. Call before the first request (routes) and `start`
 * after the server listens.
 */
export async function openCommands(d: CommandDeps): Promise<CentralCommands & { start(): void }> {
  const secrets = new Map<string, string>();
  for (const [i, g] of d.config.gateways.entries()) {
    const dl = g.downlink;
    if (!dl?.links.includes('mqtt')) continue;
    const secret =
      dl.mqttSecret ??
      (dl.mqttSecretFile !== undefined ? await readSecretFile(dl.mqttSecretFile, `gateways.${i}.downlink.mqttSecretFile`) : undefined) ??
      d.gateways.get(g.id)?.hmacSecret;
    if (secret === undefined || secret.length < 16)
      throw new OutpostError(
        'CONFIG_INVALID',
        `gateways.${i}.downlink: mqtt needs the secret of the gateway's downlinkAuth (mqttSecret, mqttSecretFile, or auth: {type: hmac})`,
      );
    secrets.set(g.id, secret);
  }
  const m = d.config.ingest.mqtt;
  let mqtt: MqttCommandLink | undefined;
  if (m && secrets.size > 0) {
    const connect = await new MqttReceiver({ config: m, handler: { handle: async () => undefined } as never, metrics: d.metrics, log: d.log }).options();
    mqtt = new MqttCommandLink({
      url: m.url,
      connect,
      clientId: `${m.clientId}-cmd`.slice(0, 128),
      topicRoot: m.topicRoot,
      ackGroup: d.config.commands.ackGroup,
      log: d.log,
      onAck: async (gateway, requestId, ack) => {
        await router.ackByRequestId(gateway, requestId, ack);
      },
      now: d.now,
    });
  } else if (secrets.size > 0) d.log.warn('gateways list mqtt in downlink.links but ingest.mqtt is not set: commands go over their other links');
  const rb = d.config.commands.rockblock;
  const rockblock = rb
    ? {
        url: rb.url,
        username: rb.username,
        password: rb.password ?? (await readSecretFile(rb.passwordFile!, 'commands.rockblock.passwordFile')),
        timeoutMs: rb.timeoutMs,
      }
    : undefined;
  const router: CommandRouter = new CommandRouter({
    store: d.store,
    gateways: d.gateways,
    config: d.config.commands,
    mqttSecrets: secrets,
    ...(mqtt ? { mqtt } : {}),
    ...(rockblock ? { rockblock } : {}),
    log: d.log,
    now: d.now,
  });
  commandRoutes({
    http: d.http,
    store: d.store,
    gateways: d.gateways,
    audit: d.audit,
    clientAddress: d.clientAddress,
    onQueued: (gw, c) => router.kick(gw, c),
    defaultTtlMs: d.config.commands.defaultTtlSeconds * 1000,
    now: d.now,
  });
  return {
    router,
    mqtt,
    onMtAcks: (gateway, acks, at) => recordMtAcks(d.store, gateway, acks, at),
    async enqueue(gateway, command, by) {
      const queued = await d.store.enqueueCommand(gateway, command, { expiresAt: d.now() + d.config.commands.defaultTtlSeconds * 1000, by });
      router.kick(gateway, queued);
      return queued;
    },
    start() {
      mqtt?.start();
      router.start();
    },
    async stop() {
      await router.stop();
      await mqtt?.stop();
    },
  };
}
