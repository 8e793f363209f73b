import { join } from 'node:path';
import { appliedWithin } from './apply-timeout.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import type { Logger } from '../log.js';
import type { Clock } from '../../core/clock.js';
import type { DownlinkAck, DownlinkCommand } from './link.js';
import { checkAge, openCommand, type CommandAuth } from './command-auth.js';
import { CommandMemory } from './command-memory.js';
import { commandByteLimit } from './downlink.js';

export interface MqttCommandGateOptions {
  linkName: string;
  gatewayId: string;
  auth: CommandAuth;
  /** `<dataDir>/sync`: the requestId memory lives there. Without it (code-built links) memory is per process. */
  stateDir: string | undefined;
  /** requestIds remembered (sync `downlinkMemory`). */
  maxIds: number;
  /** The requestId memory shared by all links (the sync service's); without it one of the link's own under `stateDir`. */
  memory?: CommandMemory;
  /** Longest a command may take to be applied before it is answered SYNC_ACK_TIMEOUT and the next one goes. */
  applyTimeoutMs: number;
  clock: Clock;
  log: Logger;
  /** Hands a command to the downlink (`Downlink.handle` via the sync service) and resolves with its ack. */
  apply(cmd: DownlinkCommand): Promise<DownlinkAck>;
  /** Publishes an ack on `<root>/ack`. */
  sendAck(ack: DownlinkAck): Promise<void>;
}

interface Incoming {
  topic: string;
  name: string;
  payload: Buffer;
  retained: boolean;
}

/**
 * What stands between `<root>/cmd/#` and the downlink on the MQTT link (issue 19): one
 * command at a time, in arrival order, each
 *  1. authenticated and checked for age (`command-auth.ts`);
 *  2. answered from the durable requestId memory if it was answered before (a copy sent
 *     back-to-back, a redelivery, a replay, a retained command at reconnect): same ack, not
 *     applied again — one at a time, so copies in flight are applied once;
 *  3. if retained (delivered at subscribe time), applied only when its `t` is newer than
 *     that of the last command applied to the same datapoint (else SYNC_COMMAND_SUPERSEDED);
 *  4. applied through `Downlink.handle`, remembered durably, then acked.
 * Every refusal goes through `Downlink.handle` too (`refused`), so it is acked with its
 * code, counted and logged like any other; refusals are never remembered (a forged copy
 * must not block the genuine command with the same requestId).
 */
export class MqttCommandGate {
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;

  private constructor(
    private readonly o: MqttCommandGateOptions,
    private readonly memory: CommandMemory,
  ) {}

  static async open(o: MqttCommandGateOptions): Promise<MqttCommandGate> {
    let memory = o.memory;
    if (!memory) {
      memory = new CommandMemory({
        file: o.stateDir === undefined ? undefined : join(o.stateDir, `commands-${o.linkName}.json`),
        maxIds: o.maxIds,
        clock: o.clock,
      });
      await memory.load();
    }
    const gate = new MqttCommandGate(o, memory);
    if (o.auth.kind === 'missing')
      o.log.warn(
        { link: o.linkName },
        'MQTT link has no downlinkAuth: every command from upstream is refused (SYNC_COMMAND_UNSIGNED); set downlinkAuth: { secretFile } or, to accept unsigned commands, downlinkAuth: none',
      );
    else if (o.auth.kind === 'none')
      o.log.warn(
        { link: o.linkName },
        'MQTT link accepts unsigned commands (downlinkAuth: none): anyone who may publish on its command topic can change setpoints',
      );
    return gate;
  }

  /** Queues one message from `<root>/cmd/<name>`. */
  receive(msg: Incoming): void {
    // A zero-length retained publish deletes the retained message (MQTT 3.1.1 §3.3.1.3): no command.
    if (msg.payload.length === 0) {
      this.o.log.debug({ link: this.o.linkName, topic: msg.topic }, 'empty command payload ignored (a retained command was cleared)');
      return;
    }
    this.queue = this.queue
      .then(() => this.process(msg))
      .catch((err: unknown) =>
        this.o.log.error({ link: this.o.linkName, topic: msg.topic, err: toOutpostError(err).message }, 'downlink command not processed'),
      );
  }

  /** Stops taking commands; waits for the one being applied (queued ones are dropped unanswered: the central side resends). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.queue;
  }

  private async process(msg: Incoming): Promise<void> {
    if (this.stopped) return;
    let requestId: string | null = null;
    let ack: DownlinkAck;
    try {
      // `cmd/config` carries a whole outpost.yaml (remote-config.ts); every other command 64 KiB.
      const limit = commandByteLimit(msg.name);
      if (msg.payload.length > limit) throw new OutpostError('SYNC_COMMAND_INVALID', `command is ${msg.payload.length} bytes; at most ${limit}`);
      const auth = this.o.auth;
      const opened = openCommand(msg.payload, auth);
      const { gw, ...body } = opened.body;
      if (typeof body.requestId === 'string') requestId = body.requestId;
      if (opened.signed && body.type !== msg.name) {
        // The topic is not signed; the body is. A signed setpoint must not work as another command.
        throw new OutpostError(
          'SYNC_COMMAND_INVALID',
          `a signed command names itself: "type" in its body must be "${msg.name}" (the topic's command), not ${JSON.stringify(body.type)}`,
        );
      }
      if (gw !== undefined && gw !== this.o.gatewayId)
        throw new OutpostError('SYNC_COMMAND_INVALID', `command is for gateway ${JSON.stringify(gw)}, this is "${this.o.gatewayId}"`);
      const previous = requestId === null ? undefined : this.memory.get(requestId);
      if (previous) {
        this.o.log.debug({ link: this.o.linkName, requestId, retained: msg.retained }, 'downlink command seen before: answered again, not applied again');
        ack = previous;
      } else {
        if (opened.t !== undefined && auth.kind !== 'missing') checkAge(opened.t, auth, this.o.clock.now());
        const key = `${msg.name || String(body.type)}:${typeof body.id === 'string' ? body.id : ''}`;
        if (msg.retained) this.checkRetained(key, opened.t);
        ack = await this.apply({ source: msg.topic, name: msg.name, payload: Buffer.from(JSON.stringify(body)) }, requestId);
        if (requestId !== null && (ack.ok || ack.error?.retryable === false))
          await this.remember(requestId, ack, ack.ok && opened.t !== undefined ? { key, t: opened.t } : undefined);
      }
    } catch (err) {
      // Echoed so the central side can match the refusal to what it sent; never remembered.
      requestId ??= peekRequestId(msg.payload);
      ack = await this.apply({ source: msg.topic, name: msg.name, payload: msg.payload, refused: { error: toOutpostError(err), requestId } }, requestId);
    }
    await this.o
      .sendAck(ack)
      .catch((err: Error) => this.o.log.warn({ link: this.o.linkName, requestId: ack.requestId, err: err.message }, 'downlink acknowledgement not delivered'));
  }

  /** A retained command is the broker's copy of an old one: only a newer one than the last applied may act. */
  private checkRetained(key: string, t: number | undefined): void {
    if (t === undefined)
      throw new OutpostError('SYNC_COMMAND_SUPERSEDED', 'a retained command needs a time "t" to show it is newer than the last one applied; ignored');
    const last = this.memory.lastApplied(key);
    if (last !== undefined && t <= last) {
      throw new OutpostError(
        'SYNC_COMMAND_SUPERSEDED',
        `retained command dated ${new Date(t).toISOString()} is not newer than the last one applied (${new Date(last).toISOString()}); ignored`,
        { details: { t, last } },
      );
    }
  }

  private async remember(requestId: string, ack: DownlinkAck, applied: { key: string; t: number } | undefined): Promise<void> {
    try {
      await this.memory.remember(requestId, ack, applied);
    } catch (err) {
      // Applied already: the ack still goes out. The in-process memory holds the answer; only a restart would forget it.
      this.o.log.warn(
        { link: this.o.linkName, requestId, err: toOutpostError(err).message },
        'downlink command memory not written: after a restart this command could be applied again',
      );
    }
  }

  /** Never throws: a command that is not applied in time is answered SYNC_ACK_TIMEOUT (retryable, not remembered). */
  private async apply(cmd: DownlinkCommand, requestId: string | null): Promise<DownlinkAck> {
    try {
      return await appliedWithin(this.o.apply(cmd), this.o.applyTimeoutMs);
    } catch (err) {
      const e = toOutpostError(err);
      return { requestId, ok: false, error: { code: e.code, message: e.message, retryable: e.retryable }, t: this.o.clock.now() };
    }
  }
}

/** The requestId of a payload that was refused before it was opened (plain command or envelope), if it has one. */
function peekRequestId(payload: Buffer): string | null {
  try {
    const outer = JSON.parse(payload.toString('utf8')) as { requestId?: unknown; body?: unknown } | null;
    const inner = typeof outer?.body === 'string' ? (JSON.parse(outer.body) as { requestId?: unknown } | null) : outer;
    const rid = inner?.requestId;
    return typeof rid === 'string' && rid.length > 0 && rid.length <= 128 ? rid : null;
  } catch {
    // Not JSON: refused as such, without a requestId.
    return null;
  }
}
