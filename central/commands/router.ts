import { toOutpostError } from '../../core/errors.js';
import type { MtFormat } from '../../adapters/iridium/mt.js';
import type { GatewayDirectory, GatewayEntry } from '../gateways.js';
import type { Logger } from '../log.js';
import { rateLimitedWarn } from '../log.js';
import { sendable } from '../store/command-model.js';
import type { CentralStore, CommandAck, CommandLink, GatewayState, QueuedCommand } from '../store/contract.js';
import type { CommandsConfig, GatewayDownlinkConfig } from './config.js';
import { mtCommandOf, sendMt, type RockblockMtOptions } from './iridium-link.js';
import type { MqttCommandLink } from './mqtt-link.js';

/** MT counters are at least seconds since 2025-01-01: a store made anew still counts above what the modem accepted last. */
const MT_COUNTER_EPOCH = Date.UTC(2025, 0, 1);
/** Queued (and sent) commands looked at per tick, newest first: a backlog beyond it waits for later ticks. */
const PENDING_PER_TICK = 1000;

export interface CommandRouterOptions {
  store: CentralStore;
  gateways: GatewayDirectory;
  config: CommandsConfig;
  /** Per gateway: its MQTT command secret (downlink.mqttSecret(File), else its link secret). */
  mqttSecrets: ReadonlyMap<string, string>;
  mqtt?: MqttCommandLink;
  rockblock?: RockblockMtOptions;
  log: Logger;
  now: () => number;
}

/**
 * Sends each queued command over the first link of the gateway's `downlink.links` that is up:
 *
 * - `mqtt`: the gateway's newest status is MQTT `online` → published (mqtt-link.ts), `sent`.
 * - `http`: the gateway was heard over HTTP within `satelliteAfterSeconds` → left for its poll
 *   (ingest/downlink.ts marks it `sent` when served).
 * - `iridium`: none of its other links heard within `satelliteAfterSeconds` → one MT message
 *   through the RockBLOCK API, with the gateway's next persisted replay counter.
 *
 * A command `sent` without an ack for `resendAfterSeconds` is sent again, same requestId, on the
 * first link up (the gateway answers a requestId it applied from its memory, not applying it
 * again). Over Iridium a command goes at most once and, once there, nowhere else: the gateway
 * names an MT op by its counter, not our requestId (mt.ts has no room for it), so another copy
 * would be applied again; likewise a command already sent on another link never takes the
 * satellite. Expired commands are sent no more. Every `tickSeconds`.
 */
export class CommandRouter {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Commands being sent now (`<gw>:<cursor>`): a kick and a tick do not send one twice at once. */
  private readonly busy = new Set<string>();
  private readonly warn: ReturnType<typeof rateLimitedWarn>;

  constructor(private readonly o: CommandRouterOptions) {
    this.warn = rateLimitedWarn(o.log);
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.o.config.tickSeconds * 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** A new command: routed at once. */
  kick(gateway: string, c: QueuedCommand): void {
    this.route(gateway, c).catch((err: unknown) => this.fail(gateway, c, err));
  }

  /** Expires what is due, then routes every queued command and resends what waited too long. One at a time. */
  tick(): Promise<void> {
    if (this.running) return this.running;
    const run = (async () => {
      try {
        const expired = await this.o.store.expireCommands(this.o.now());
        for (const c of expired) this.o.log.info({ requestId: c.command.requestId, type: c.command.type }, 'command expired undelivered');
        // Two reads per tick whatever the size of the fleet (PostgreSQL: the indexes of migration 2; LevelDB: the pending set).
        for (const state of ['queued', 'sent'] as const)
          for (const c of await this.o.store.listCommands({ state, limit: PENDING_PER_TICK }))
            await this.route(c.gateway, c).catch((err: unknown) => this.fail(c.gateway, c, err));
      } catch (err) {
        this.warn('router-tick', { err: toOutpostError(err).message }, 'command router: tick failed');
      } finally {
        this.running = undefined;
      }
    })();
    this.running = run;
    return run;
  }

  /** An ack from MQTT or the satellite, by requestId. */
  async ackByRequestId(gateway: string, requestId: string, ack: CommandAck): Promise<QueuedCommand | undefined> {
    const c = await this.o.store.command(gateway, { requestId });
    if (!c) {
      this.o.log.info({ gateway, requestId }, 'ack for a command this central does not know: dropped');
      return undefined;
    }
    return this.o.store.recordCommandAck(gateway, c.cursor, ack);
  }

  private async route(gateway: string, c: QueuedCommand): Promise<void> {
    const key = `${gateway}:${c.cursor}`;
    const now = this.o.now();
    const entry = this.o.gateways.get(gateway);
    const downlink = entry?.config.downlink;
    if (!entry || !downlink || !sendable(c, now) || this.busy.has(key)) return;
    const sends = c.sends ?? [];
    if (sends.some((s) => s.via === 'iridium')) return;
    const last = sends[sends.length - 1];
    if (last && now - last.at < this.o.config.resendAfterSeconds * 1000) return;
    this.busy.add(key);
    try {
      const link = await this.choose(entry, downlink, c);
      if (!link || link === 'http') return; // http: the poll serves it (ingest/downlink.ts)
      if (link === 'mqtt') {
        await this.o.mqtt!.send(gateway, c, this.o.mqttSecrets.get(gateway)!, downlink.topicRoot);
        await this.o.store.markCommandSent(gateway, c.cursor, { at: this.o.now(), via: 'mqtt' });
        this.o.log.info({ gateway, requestId: c.command.requestId, type: c.command.type, resend: sends.length > 0 }, 'command sent over MQTT');
        return;
      }
      await this.sendIridium(entry, downlink, c);
    } finally {
      this.busy.delete(key);
    }
  }

  /** The first link of the gateway's list that is up, or undefined (it waits). */
  private async choose(entry: GatewayEntry, downlink: GatewayDownlinkConfig, c: QueuedCommand): Promise<CommandLink | undefined> {
    const state = await this.o.store.gatewayState(entry.id);
    const now = this.o.now();
    const recent = (at: number | undefined): boolean => at !== undefined && now - at < this.o.config.satelliteAfterSeconds * 1000;
    const up: Record<CommandLink, () => boolean> = {
      mqtt: () => this.o.mqtt?.connected === true && this.o.mqttSecrets.has(entry.id) && mqttOnline(state),
      http: () => state?.lastReceipt?.via === 'http' && recent(state.lastReceipt.at),
      iridium: () =>
        (c.sends ?? []).length === 0 &&
        this.o.rockblock !== undefined &&
        downlink.mt !== undefined &&
        entry.config.iridium !== undefined &&
        !downlink.links.some((l) => l !== 'iridium' && heardOver(state, l, recent)),
    };
    return downlink.links.find((l) => up[l]());
  }

  private async sendIridium(entry: GatewayEntry, downlink: GatewayDownlinkConfig, c: QueuedCommand): Promise<void> {
    const iridium = entry.config.iridium!;
    const format: MtFormat = {
      key: Buffer.from(downlink.mt!.secret, 'hex'),
      context: entry.id,
      datapoints: iridium.datapoints.map((d) => ({ id: d.id, decimals: d.decimals, type: d.type })),
      commands: downlink.mt!.commands,
    };
    const op = mtCommandOf(c, format);
    if (typeof op === 'string') {
      this.warn(
        `mt-unfit:${entry.id}:${c.command.type}`,
        { gateway: entry.id, requestId: c.command.requestId, reason: op },
        'command waits: it cannot go over the satellite',
      );
      return;
    }
    const counter = await this.o.store.nextMtCounter(entry.id, Math.floor((this.o.now() - MT_COUNTER_EPOCH) / 1000));
    // Recorded as sent before the request: a request that timed out may still have been queued
    // by Rock7, and a second MT message (another counter) would be applied again.
    await this.o.store.markCommandSent(entry.id, c.cursor, { at: this.o.now(), via: 'iridium', counter });
    try {
      const mtId = await sendMt(this.o.rockblock!, iridium.imei, format, counter, op);
      this.o.log.info({ gateway: entry.id, requestId: c.command.requestId, counter, mtId }, 'command sent over the satellite (RockBLOCK MT)');
    } catch (err) {
      const e = toOutpostError(err);
      this.o.log.warn(
        { gateway: entry.id, requestId: c.command.requestId, counter, reason: e.message },
        'RockBLOCK MT send failed: the command is not sent again',
      );
    }
  }

  private fail(gateway: string, c: QueuedCommand, err: unknown): void {
    const e = toOutpostError(err);
    this.warn(
      `route:${gateway}:${e.code}`,
      { gateway, requestId: c.command.requestId, code: e.code, reason: e.message },
      'command not sent: tried again later',
    );
  }
}

function mqttOnline(state: GatewayState | undefined): boolean {
  return state?.status?.via === 'mqtt' && state.status.state === 'online';
}

function heardOver(state: GatewayState | undefined, link: CommandLink, recent: (at: number | undefined) => boolean): boolean {
  if (!state) return false;
  if (link === 'mqtt') return mqttOnline(state) || (state.lastReceipt?.via === 'mqtt' && recent(state.lastReceipt.at));
  return state.lastReceipt?.via === link && recent(state.lastReceipt.at);
}

/** MT acks (MO kind 3, central/ingest/rockblock.ts): each names its MT counter and one result per op ("ok" or a code). */
export async function recordMtAcks(
  store: CentralStore,
  gateway: string,
  acks: ReadonlyArray<{ counter: number; results: string[] }>,
  at: number,
): Promise<number> {
  let recorded = 0;
  for (const a of acks) {
    const c = await store.command(gateway, { mtCounter: a.counter });
    if (!c) continue;
    const result = a.results[0] ?? 'OTHER';
    await store.recordCommandAck(gateway, c.cursor, {
      ok: result === 'ok',
      ...(result === 'ok' ? {} : { error: { code: result.slice(0, 64) } }),
      at,
      via: 'rockblock',
    });
    recorded++;
  }
  return recorded;
}
