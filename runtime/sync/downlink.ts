import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import type { Logger } from '../log.js';
import type { Clock } from '../../core/clock.js';
import type { Ingest } from '../ingest.js';
import type { DownlinkAck, DownlinkCommand } from './link.js';
import type { SetpointSchedules } from './schedules.js';
import { CommandMemory, requestRef } from './command-memory.js';
import type { AlarmEngine } from '../alarms/engine.js';
import type { AuditSink } from '../audit/entry.js';
import { audited } from '../audit/record.js';
import { actorText } from '../audit/actor.js';

export interface DownlinkOptions {
  ingest: Pick<Ingest, 'setpoint'>;
  log: Logger;
  clock: Clock;
  /** Request ids remembered so a redelivered command is answered again, not applied again. */
  memory: number;
  /**
   * The durable memory of answered requestIds shared by every link (`<dataDir>/sync/commands.json`,
   * the service's); without it one in this process only, `memory` ids long.
   */
  commandMemory?: CommandMemory;
  /** Counts results by command and code. */
  onResult?: (command: string, result: string) => void;
  /** Setpoint schedules (`schedule` command); without it the command is refused. */
  schedules?: Pick<SetpointSchedules, 'set'>;
  /** Pushed configurations (`config` command, remote-config.ts); without it the command is refused. */
  remoteConfig?: ConfigCommandHandler;
  /** Alarm acknowledgements from upstream (`alarm.ack`, audited with actor `upstream:<link>`); without it the command is refused. */
  alarms?: { engine: Pick<AlarmEngine, 'acknowledge'>; audit: AuditSink | undefined };
}

/** Where a `config` command came from: the audit's actor is `upstream:<link>`. */
export interface ConfigCommandOrigin {
  requestId: string | null;
  source: string;
  link: string | undefined;
}

/** The `config` command's handler (runtime/sync/remote-config.ts). */
export interface ConfigCommandHandler {
  /** Checks and stores a pushed config; resolves with the ack's result or throws a coded error (it audits both). */
  handle(body: Record<string, unknown>, from: ConfigCommandOrigin & { requestId: string }): Promise<unknown>;
  /** A config command refused before `handle` (by the link, or malformed): audited too. */
  refused(from: ConfigCommandOrigin, error: OutpostError): void;
}

/** Commands the central side may send; anything else is refused with a reason. */
const DOWNLINK_COMMANDS = ['setpoint', 'schedule', 'alarm.ack', 'ping', 'config'] as const;

const MAX_COMMAND_BYTES = 64 * 1024;
/** A `config` command carries a whole outpost.yaml (at most 256 KiB) as a JSON string, maybe inside a signed envelope. */
const MAX_CONFIG_COMMAND_BYTES = 1024 * 1024;

/** The largest payload of command `name` (unknown until parsed: the larger). */
export function commandByteLimit(name: string | undefined): number {
  return name === undefined || name === '' || name === 'config' ? MAX_CONFIG_COMMAND_BYTES : MAX_COMMAND_BYTES;
}

/**
 * Setpoints and commands from upstream. A setpoint takes exactly the path of a local
 * write (`Ingest.setpoint`: actuator check, type, range, expiry, adapter onSet), and
 * every request gets an acknowledgement with its `requestId` and the result.
 *
 * Payload: `{"requestId": "...", "id": "<datapoint>", "v": <value>, "min"?, "max"?, "expires"?}`
 * on `<root>/cmd/setpoint`, or with `"type": "setpoint"` where the transport has no topic.
 * A schedule: `{"requestId", "id", "entries": [{"at": <ms or ISO 8601>, "v": <value>}, …]}` on
 * `<root>/cmd/schedule` (or `"type": "schedule"`): every value validated now like a local
 * setpoint, each applied at its time (`schedules.ts`); an empty list clears the actuator's.
 * An alarm acknowledgement: `{"requestId", "id", "by"?}` on `<root>/cmd/alarm.ack` (or `"type": "alarm.ack"`).
 * A configuration: `{"requestId", "yaml", "sha256"?, "apply"?}` on `<root>/cmd/config` (or
 * `"type": "config"`), handed to `remoteConfig` (remote-config.ts), which checks and stores it.
 * Copies of a requestId in flight wait for the first one's ack (single flight). Every answer
 * that is final (applied, or refused for good) is written to the durable memory shared by all
 * links before it is acked, so a copy over any link, before or after a restart, is answered
 * from it, never applied again; an Iridium MT copy is found by its request ref (`cmd.ref`). On
 * MQTT the link authenticates commands first (`mqtt-commands.ts`).
 */
export class Downlink {
  private readonly memory: CommandMemory;
  /** Commands being applied, by request ref: a copy arriving meanwhile waits for the same ack (single flight). */
  private readonly inflight = new Map<string, Promise<DownlinkAck>>();

  constructor(private readonly o: DownlinkOptions) {
    this.memory = o.commandMemory ?? new CommandMemory({ file: undefined, maxIds: o.memory, clock: o.clock });
  }

  /** `link`: the name of the link it came over (the actor of audited commands). */
  async handle(cmd: DownlinkCommand, link?: string): Promise<DownlinkAck> {
    let requestId: string | null = null;
    let command = cmd.name ?? 'unknown';
    if (cmd.refused) return this.refuse(cmd, cmd.refused.requestId, command, cmd.refused.error, link);
    let rest: Record<string, unknown>;
    try {
      const limit = commandByteLimit(cmd.name);
      if (cmd.payload.length > limit) throw new OutpostError('SYNC_COMMAND_INVALID', `command is ${cmd.payload.length} bytes; at most ${limit}`);
      let body: unknown;
      try {
        body = JSON.parse(cmd.payload.toString('utf8'));
      } catch {
        throw new OutpostError('SYNC_COMMAND_INVALID', 'command payload is not JSON');
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body))
        throw new OutpostError('SYNC_COMMAND_INVALID', 'command payload must be a JSON object');
      const { requestId: rid, type, ...others } = body as Record<string, unknown>;
      if (typeof rid !== 'string' || rid.length === 0 || rid.length > 128)
        throw new OutpostError('SYNC_COMMAND_INVALID', 'command needs a "requestId" string (1-128 characters)');
      requestId = rid;
      if (cmd.name === undefined || cmd.name === '') command = typeof type === 'string' ? type : 'unknown';
      if (cmd.payload.length > commandByteLimit(command))
        throw new OutpostError('SYNC_COMMAND_INVALID', `command is ${cmd.payload.length} bytes; at most ${commandByteLimit(command)}`);
      rest = others;
    } catch (err) {
      return this.refuse(cmd, requestId, command, err, link);
    }
    const ref = cmd.ref ?? requestRef(requestId);
    const answered = this.memory.get(requestId, ref);
    if (answered) {
      this.o.log.info({ source: cmd.source, requestId, command }, 'downlink command answered before (over any link): answered again, not applied again');
      return answered;
    }
    const inflight = this.inflight.get(ref);
    if (inflight) return { ...(await inflight), requestId };
    const running = this.execute(cmd, requestId, command, rest, link);
    this.inflight.set(ref, running);
    try {
      return await running;
    } finally {
      this.inflight.delete(ref);
    }
  }

  /** Applies one command; never throws (a failure is the ack). */
  private async execute(
    cmd: DownlinkCommand,
    requestId: string,
    command: string,
    rest: Record<string, unknown>,
    link: string | undefined,
  ): Promise<DownlinkAck> {
    if (command === 'config') return this.config(cmd, requestId, rest, link);
    try {
      let result: unknown;
      switch (command) {
        case 'setpoint': {
          const { id, ...setpoint } = rest;
          if (typeof id !== 'string') throw new OutpostError('SYNC_COMMAND_INVALID', 'setpoint needs an "id" (datapoint id)');
          result = await this.o.ingest.setpoint(id, setpoint, `upstream:${cmd.source}`);
          break;
        }
        case 'schedule': {
          const { id, ...schedule } = rest;
          if (typeof id !== 'string') throw new OutpostError('SYNC_COMMAND_INVALID', 'schedule needs an "id" (datapoint id)');
          if (!this.o.schedules) throw new OutpostError('SYNC_COMMAND_INVALID', 'schedules are not available on this gateway');
          result = await this.o.schedules.set(id, schedule);
          break;
        }
        case 'alarm.ack':
          result = await this.acknowledgeAlarm(rest, requestId, link ?? cmd.source);
          break;
        case 'ping':
          result = { pong: this.o.clock.now() };
          break;
        default:
          throw new OutpostError('SYNC_COMMAND_INVALID', `unknown command "${command}"; expected one of ${DOWNLINK_COMMANDS.join(', ')}`);
      }
      return await this.remember({ requestId, ok: true, result, t: this.o.clock.now() }, command, 'ok', cmd.ref);
    } catch (err) {
      return this.refuse(cmd, requestId, command, err, link);
    }
  }

  /**
   * `{"requestId", "id": "<alarm id>"}`: an operator acknowledged the alarm at the central side;
   * the engine's own acknowledge (event log, stored), audited like a local one. Refused with the
   * engine's code (ALARM_UNKNOWN, ALARM_NOT_RAISED, ALARM_ACKNOWLEDGED).
   */
  private async acknowledgeAlarm(rest: Record<string, unknown>, requestId: string, link: string): Promise<unknown> {
    const { id, by } = rest;
    if (typeof id !== 'string' || id.length === 0 || id.length > 200) throw new OutpostError('SYNC_COMMAND_INVALID', 'alarm.ack needs an "id" (alarm id)');
    const alarms = this.o.alarms;
    if (!alarms) throw new OutpostError('SYNC_COMMAND_INVALID', 'alarm acknowledgements are not available on this gateway');
    const actor = { kind: 'upstream', name: link } as const;
    // Who acknowledged at central, when it says so (shown on the site's alarm as `by`).
    const who = typeof by === 'string' && by.length > 0 ? `${actorText(actor)} (${by.slice(0, 100)})` : actorText(actor);
    const done = await audited(alarms.audit, { action: 'alarm.ack', actor, target: id, details: { requestId } }, () => alarms.engine.acknowledge(id, who));
    return { id, acknowledged: true, by: done.alarm.ackedBy, at: done.alarm.ackedAt, stored: done.stored };
  }

  /** A pushed configuration: the handler audits it, accepted or refused. */
  private async config(cmd: DownlinkCommand, requestId: string, rest: Record<string, unknown>, link: string | undefined): Promise<DownlinkAck> {
    const from = { requestId, source: cmd.source, link };
    if (!this.o.remoteConfig)
      return this.refuse(cmd, requestId, 'config', new OutpostError('SYNC_COMMAND_INVALID', 'configuration pushes are not available on this gateway'), link);
    try {
      const result = await this.o.remoteConfig.handle(rest, from);
      return await this.remember({ requestId, ok: true, result, t: this.o.clock.now() }, 'config', 'ok', cmd.ref);
    } catch (err) {
      return this.refuse(cmd, requestId, 'config', err, link, true);
    }
  }

  /**
   * The refusal ack: counted, logged once, remembered unless the transport refused it (or it may
   * succeed later). A config command is audited (`audited`: by its handler already).
   */
  private async refuse(cmd: DownlinkCommand, requestId: string | null, command: string, err: unknown, link?: string, audited = false): Promise<DownlinkAck> {
    const e = toOutpostError(err);
    if (command === 'config' && !audited) this.o.remoteConfig?.refused({ requestId, source: cmd.source, link }, e);
    const ack: DownlinkAck = { requestId, ok: false, error: { code: e.code, message: e.message, retryable: e.retryable }, t: this.o.clock.now() };
    const fields = { source: cmd.source, requestId, command, code: e.code, reason: e.message };
    if (!cmd.refused) {
      this.o.log.info(fields, 'downlink command refused');
      return this.remember(ack, command, e.code, cmd.ref);
    }
    this.o.onResult?.(command, e.code);
    // A warning, one message per code: the gateway's repeat limiter (runtime/log-limit.ts) makes a
    // flood of forged or replayed commands one line per code a minute, the rest counted.
    this.o.log.warn(fields, `downlink command refused by the link: ${e.code}`);
    return ack;
  }

  /** Counts it; a final answer is made durable before it is returned (and so before the ack goes). */
  private async remember(ack: DownlinkAck, command: string, result: string, ref: string | undefined): Promise<DownlinkAck> {
    this.o.onResult?.(command, result);
    // A retryable failure (adapter down) may be sent again with the same id and succeed then.
    if (ack.requestId !== null && (ack.ok || ack.error?.retryable === false)) {
      try {
        await this.memory.remember(ack.requestId, ack, undefined, ref ?? requestRef(ack.requestId));
      } catch (err) {
        // Applied already: the ack still goes out; in this process the memory holds the answer.
        this.o.log.warn(
          { requestId: ack.requestId, err: toOutpostError(err).message },
          'downlink command memory not written: after a restart this command could be applied again',
        );
      }
    }
    return ack;
  }
}
