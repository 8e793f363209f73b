import { readFile } from 'node:fs/promises';
import { timingSafeEqual } from 'node:crypto';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { signBody } from './http-link.js';
import type { MqttLinkConfig } from './config.js';

/**
 * Authentication of downlink commands on the MQTT link. MQTT 3.1.1 has no headers, so a
 * signed command is a JSON envelope whose `body` is the command as a string (its exact
 * bytes are what is signed, so no JSON re-serialisation can break the signature):
 *
 *   {"t": <epoch ms, integer>, "sig": "sha256=<hex>", "body": "{\"requestId\":…,\"type\":\"setpoint\",…}"}
 *   sig = HMAC-SHA256(secret, "<t>.<body>")      (the HTTP link's `x-outpost-signature` scheme)
 *
 * A signed body names its command (`"type"`, equal to the topic's `cmd/<name>`), so a signed
 * setpoint cannot be replayed as another command, and may name its gateway (`"gw"`), so a
 * command for one site cannot be replayed to another where sites share a secret. `t` bounds
 * the replay window (`maxAgeMs`, `maxSkewMs`); within it the requestId memory
 * (`command-memory.ts`) answers a copy instead of applying it again.
 */

const DEFAULT_MAX_AGE_MS = 300_000;
const DEFAULT_MAX_SKEW_MS = 60_000;
const MIN_SECRET_CHARS = 16;

/**
 * `hmac`: signed envelopes only. `none`: explicit opt-out, plain commands (or envelopes,
 * unverified) accepted. `missing`: the link has no `downlinkAuth`; every command is refused,
 * saying how to configure it (the uplink keeps working: a gateway upgraded in the field must
 * not lose its data path over this).
 */
export type CommandAuth =
  | { kind: 'hmac'; secret: string; maxAgeMs: number; maxSkewMs: number }
  | { kind: 'none'; maxAgeMs: number; maxSkewMs: number }
  | { kind: 'missing'; link: string };

/** An authenticated (or, with `none`, accepted) command: its body and its timestamp if it has one. */
export interface OpenedCommand {
  body: Record<string, unknown>;
  t: number | undefined;
  signed: boolean;
}

/** Reads `downlinkAuth` of an MQTT link (the secret file at start, like `passwordFile`). */
export async function resolveCommandAuth(config: MqttLinkConfig): Promise<CommandAuth> {
  const a = config.downlinkAuth;
  if (a === undefined) return { kind: 'missing', link: config.name };
  if (a === 'none') return { kind: 'none', maxAgeMs: DEFAULT_MAX_AGE_MS, maxSkewMs: DEFAULT_MAX_SKEW_MS };
  let secret = a.secret;
  if (secret === undefined && a.secretFile !== undefined) {
    try {
      secret = (await readFile(a.secretFile, 'utf8')).trim();
    } catch (err) {
      throw new OutpostError('SYNC_CONFIG', `link ${config.name}: downlinkAuth.secretFile ${a.secretFile} cannot be read: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  if (secret === undefined || secret.length < MIN_SECRET_CHARS) {
    throw new OutpostError('SYNC_CONFIG', `link ${config.name}: the downlinkAuth secret must be at least ${MIN_SECRET_CHARS} characters`);
  }
  return { kind: 'hmac', secret, maxAgeMs: a.maxAgeMs, maxSkewMs: a.maxSkewMs };
}

/** The central side's half (tests, tools): the envelope for `body` signed at `t`. */
export function signCommand(secret: string, body: Record<string, unknown> | string, t: number = Date.now()): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return JSON.stringify({ t, sig: signBody(secret, String(t), Buffer.from(text, 'utf8')), body: text });
}

/**
 * Parses and authenticates one command payload (its age is checked by `checkAge`, after the
 * requestId memory: a copy of a command answered before gets the same answer, however old).
 * Throws a coded OutpostError: SYNC_COMMAND_INVALID, _UNSIGNED, _FORGED.
 */
export function openCommand(payload: Buffer, auth: CommandAuth): OpenedCommand {
  const outer = parseObject(payload.toString('utf8'), 'command payload');
  const envelope = typeof outer.body === 'string';
  if (auth.kind === 'missing') {
    throw new OutpostError(
      'SYNC_COMMAND_UNSIGNED',
      `link ${auth.link} takes no commands until it has a secret: set downlinkAuth: { secretFile: … } on the gateway (or downlinkAuth: none to accept unsigned commands)`,
    );
  }
  if (auth.kind === 'hmac') {
    if (!envelope || typeof outer.sig !== 'string')
      throw new OutpostError('SYNC_COMMAND_UNSIGNED', 'command is not signed: expected {"t": <epoch ms>, "sig": "sha256=…", "body": "<command JSON>"}');
    const t = outer.t;
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0)
      throw new OutpostError('SYNC_COMMAND_INVALID', 'signed command needs "t": epoch milliseconds (an integer)');
    // Authenticate before interpreting the body; constant-time comparison.
    const expected = Buffer.from(signBody(auth.secret, String(t), Buffer.from(outer.body as string, 'utf8')));
    const given = Buffer.from(outer.sig);
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw new OutpostError('SYNC_COMMAND_FORGED', 'command signature does not match the link secret');
    return { body: parseObject(outer.body as string, 'command body'), t, signed: true };
  }
  // downlinkAuth: none — the operator chose to trust whoever may publish on the topic.
  const body = envelope ? parseObject(outer.body as string, 'command body') : { ...outer };
  const source = envelope ? outer : body;
  let t: number | undefined;
  if (source.t !== undefined) {
    if (typeof source.t !== 'number' || !Number.isSafeInteger(source.t))
      throw new OutpostError('SYNC_COMMAND_INVALID', '"t" must be epoch milliseconds (an integer)');
    t = source.t;
  }
  // `t` of a plain command is the command's time, not a setpoint field.
  if (!envelope) delete body.t;
  return { body, t, signed: false };
}

/** SYNC_COMMAND_STALE unless `t` is at most `maxAgeMs` old and at most `maxSkewMs` ahead of `now`. */
export function checkAge(t: number, auth: { maxAgeMs: number; maxSkewMs: number }, now: number): void {
  if (now - t > auth.maxAgeMs) {
    throw new OutpostError(
      'SYNC_COMMAND_STALE',
      `command dated ${new Date(t).toISOString()} is ${Math.round((now - t) / 1000)} s old; at most ${Math.round(auth.maxAgeMs / 1000)} s accepted`,
      { details: { t, now } },
    );
  }
  if (t - now > auth.maxSkewMs) {
    throw new OutpostError(
      'SYNC_COMMAND_STALE',
      `command dated ${new Date(t).toISOString()} is ${Math.round((t - now) / 1000)} s in the future; the clocks differ by more than ${Math.round(auth.maxSkewMs / 1000)} s`,
      { details: { t, now } },
    );
  }
}

function parseObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new OutpostError('SYNC_COMMAND_INVALID', `${what} is not JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new OutpostError('SYNC_COMMAND_INVALID', `${what} must be a JSON object`);
  return value as Record<string, unknown>;
}
