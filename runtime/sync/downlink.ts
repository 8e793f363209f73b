import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import type { Logger } from '../log.js';
import type { Clock } from '../../core/clock.js';
import type { Ingest } from '../ingest.js';
import type { DownlinkAck, DownlinkCommand } from './link.js';
import type { SetpointSchedules } from './schedules.js';

export interface DownlinkOptions {
  ingest: Pick<Ingest, 'setpoint'>;
  log: Logger;
  clock: Clock;
  /** Request ids remembered so a redelivered command is answered again, not applied again. */
  memory: number;
  /** Counts results by command and code. */
  onResult?: (command: string, result: string) => void;
  /** Setpoint schedules (`schedule` command); without it the command is refused. */
  schedules?: Pick<SetpointSchedules, 'set'>;
  /** Pushed configurations (`config` command, remote-config.ts); without it the command is refused. */
  remoteConfig?: ConfigCommandHandler;
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
const DOWNLINK_COMMANDS = ['setpoint', 'schedule', 'ping', 'config'] as const;

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
 * A configuration: `{"requestId", "yaml", "sha256"?, "apply"?}` on `<root>/cmd/config` (or
 * `"type": "config"`), handed to `remoteConfig` (remote-config.ts), which checks and stores it.
 * Copies of a requestId in flight wait for the first one's ack (single flight). On MQTT the
 * link authenticates commands and remembers requestIds durably first (`mqtt-commands.ts`).
 */
export class Downlink {
  private readonly answered = new Map<string, DownlinkAck>();
  /** Commands being applied, by requestId: a copy arriving meanwhile waits for the same ack (single flight). */
  private readonly inflight = new Map<string, Promise<DownlinkAck>>();

  constructor(private readonly o: DownlinkOptions) {}

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
    const previous = this.answered.get(requestId) ?? this.inflight.get(requestId);
    if (previous) return previous;
    const running = this.execute(cmd, requestId, command, rest, link);
    this.inflight.set(requestId, running);
    try {
      return await running;
    } finally {
      this.inflight.delete(requestId);
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
        case 'ping':
          result = { pong: this.o.clock.now() };
          break;
        default:
          throw new OutpostError('SYNC_COMMAND_INVALID', `unknown command "${command}"; expected one of ${DOWNLINK_COMMANDS.join(', ')}`);
      }
      return this.remember({ requestId, ok: true, result, t: this.o.clock.now() }, command, 'ok');
    } catch (err) {
      return this.refuse(cmd, requestId, command, err, link);
    }
  }

  /** A pushed configuration: the handler audits it, accepted or refused. */
  private async config(cmd: DownlinkCommand, requestId: string, rest: Record<string, unknown>, link: string | undefined): Promise<DownlinkAck> {
    const from = { requestId, source: cmd.source, link };
    if (!this.o.remoteConfig)
      return this.refuse(cmd, requestId, 'config', new OutpostError('SYNC_COMMAND_INVALID', 'configuration pushes are not available on this gateway'), link);
    try {
      const result = await this.o.remoteConfig.handle(rest, from);
      return this.remember({ requestId, ok: true, result, t: this.o.clock.now() }, 'config', 'ok');
    } catch (err) {
      return this.refuse(cmd, requestId, 'config', err, link, true);
    }
  }

  /**
   * The refusal ack: counted, logged once, remembered unless the transport refused it (or it may
   * succeed later). A config command is audited (`audited`: by its handler already).
   */
  private refuse(cmd: DownlinkCommand, requestId: string | null, command: string, err: unknown, link?: string, audited = false): DownlinkAck {
    const e = toOutpostError(err);
    if (command === 'config' && !audited) this.o.remoteConfig?.refused({ requestId, source: cmd.source, link }, e);
    const ack: DownlinkAck = { requestId, ok: false, error: { code: e.code, message: e.message, retryable: e.retryable }, t: this.o.clock.now() };
    const fields = { source: cmd.source, requestId, command, code: e.code, reason: e.message };
    if (!cmd.refused) {
      this.o.log.info(fields, 'downlink command refused');
      return this.remember(ack, command, e.code);
    }
    this.o.onResult?.(command, e.code);
    // A warning, one message per code: the gateway's repeat limiter (runtime/log-limit.ts) makes a
    // flood of forged or replayed commands one line per code a minute, the rest counted.
    this.o.log.warn(fields, `downlink command refused by the link: ${e.code}`);
    return ack;
  }

  private remember(ack: DownlinkAck, command: string, result: string): DownlinkAck {
    this.o.onResult?.(command, result);
    // A retryable failure (adapter down) may be sent again with the same id and succeed then.
    if (ack.requestId !== null && (ack.ok || ack.error?.retryable === false)) {
      this.answered.set(ack.requestId, ack);
      if (this.answered.size > this.o.memory) this.answered.delete(this.answered.keys().next().value!);
    }
    return ack;
  }
}
