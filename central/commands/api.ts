import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import express, { type Request, type Response } from 'express';
import { DATAPOINT_ID } from '../../core/datapoint.js';
import { OutpostError } from '../../core/errors.js';
import { intParam, stringParam } from '../../core/http-params.js';
import { actorText, sourceOf } from '../../runtime/audit/actor.js';
import type { AuditSink } from '../../runtime/audit/entry.js';
import { audited } from '../../runtime/audit/record.js';
import { roleAtLeast, type Principal } from '../../runtime/auth/roles.js';
import type { GatewayDirectory } from '../gateways.js';
import type { CentralHttp } from '../http/server.js';
import { isCommandState, MAX_COMMAND_TTL_MS } from '../store/command-model.js';
import type { CentralStore, CommandBody, GatewayCommand, QueuedCommand } from '../store/contract.js';
import './errors.js';

/**
 * Command types an operator may send (the gateway's Downlink applies setpoint and schedule;
 * config is a whole outpost.yaml the site must have opted into, runtime/sync/README.md "Remote
 * configuration"; alarm.ack: see README).
 */
export const COMMAND_TYPES = ['setpoint', 'schedule', 'alarm.ack', 'config'] as const;
export type CommandType = (typeof COMMAND_TYPES)[number];
const MAX_BODY_CHARS = 16 * 1024;
/** A pushed outpost.yaml: the gateway's own bound (runtime/sync/remote-config.ts). */
const MAX_CONFIG_CHARS = 256 * 1024;
const MAX_SCHEDULE_ENTRIES = 1000;
/** Gateways one request may reach (a tag). */
const MAX_TARGETS = 1000;

export interface CommandApiDeps {
  http: CentralHttp;
  store: CentralStore;
  gateways: GatewayDirectory;
  /** Audit trail of the web UI (without one, requests are not audited: no web UI, no writes). */
  audit: AuditSink;
  clientAddress(req: IncomingMessage): string;
  /** Told of each new command (the router sends it at once). */
  onQueued?(gateway: string, command: QueuedCommand): void;
  defaultTtlMs: number;
  now: () => number;
}

/** `<gateway>:<cursor>`, the id of a command in the API. */
export const commandId = (gateway: string, cursor: number): string => `${gateway}:${cursor}`;

export function commandView(c: GatewayCommand): Record<string, unknown> {
  const { requestId, type, ...body } = c.command;
  return {
    id: commandId(c.gateway, c.cursor),
    gateway: c.gateway,
    requestId,
    type,
    body,
    state: c.state,
    createdAt: c.createdAt,
    expiresAt: c.expiresAt,
    ...(c.expiredAt !== undefined ? { expiredAt: c.expiredAt } : {}),
    ...(c.group !== undefined ? { group: c.group } : {}),
    ...(c.by !== undefined ? { by: c.by } : {}),
    sends: c.sends ?? [],
    ...(c.ack ? { ack: c.ack } : {}),
  };
}

/**
 * The command API:
 *
 *   POST /api/commands  {"target": {"gateway"} | {"tag"}, "type", "body", "expiresAt"?}   (operator)
 *     → 202 {"group"?, "items": [command, …]}   one command per gateway, each its own requestId
 *   GET  /api/commands?gateway=&state=&group=&limit=                                      (any role)
 *   GET  /api/commands/:id                                                                (any role)
 *
 * POST is audited as `command.send` (refusals too). `http.tokens` stay readers: a token needs
 * the operator role (made on the Users page) to send.
 */
export function commandRoutes(d: CommandApiDeps): void {
  d.http.route('post', '/api/commands', 'api', express.json({ limit: MAX_CONFIG_CHARS * 2 }), async (req: Request, res: Response) => {
    const principal = res.locals.principal as Principal | undefined;
    const source = sourceOf(principal, d.clientAddress(req));
    const raw = (req.body ?? {}) as Record<string, unknown>;
    const target = describeTarget(raw.target);
    const entry = { action: 'command.send', ...source, target: target.slice(0, 200), details: { type: String(raw.type).slice(0, 32) } };
    const out = await audited(
      d.audit,
      entry,
      async () => {
        if (!principal || !roleAtLeast(principal.role, 'operator'))
          throw new OutpostError(
            'FORBIDDEN',
            `sending a command needs the operator role; "${principal?.name ?? 'anonymous'}" is ${principal?.role ?? 'not logged in'}`,
          );
        const request = parseRequest(raw, d.now(), d.defaultTtlMs);
        const gateways = targets(d.gateways, request.target);
        const group = gateways.length > 1 || 'tag' in request.target ? `g-${randomBytes(8).toString('hex')}` : undefined;
        const by = actorText(source.actor);
        const items: GatewayCommand[] = [];
        for (const gw of gateways) {
          const command: CommandBody = { requestId: `c-${randomBytes(12).toString('hex')}`, type: request.type, ...request.body };
          const queued = await d.store.enqueueCommand(gw, command, { expiresAt: request.expiresAt, by, ...(group ? { group } : {}) });
          items.push({ ...queued, gateway: gw });
          d.onQueued?.(gw, queued);
        }
        return { ...(group ? { group } : {}), items: items.map(commandView) };
      },
      (r) => ({ commands: r.items.map((c) => c.id).slice(0, 50), ...(r.group ? { group: r.group } : {}) }),
    );
    res.status(202).json(out);
  });

  d.http.route('get', '/api/commands', 'api', async (req, res) => {
    const state = stringParam(req, 'state');
    if (state !== undefined && !isCommandState(state)) throw new OutpostError('COMMAND_INVALID', '"state" is queued, sent, applied, refused or expired');
    const gateway = stringParam(req, 'gateway');
    const group = stringParam(req, 'group');
    const limit = intParam(req, 'limit', 1000) ?? 100;
    const items = await d.store.listCommands({
      ...(gateway !== undefined ? { gateway } : {}),
      ...(state !== undefined ? { state } : {}),
      ...(group !== undefined ? { group } : {}),
      limit,
    });
    res.json({ items: items.map(commandView), count: items.length });
  });

  d.http.route('get', '/api/commands/:id', 'api', async (req, res) => {
    const id = String(req.params.id);
    const m = /^([a-z0-9][a-z0-9_-]{0,63}):(\d{1,15})$/.exec(id);
    const found = m ? await d.store.command(m[1]!, { cursor: Number(m[2]) }) : undefined;
    if (!m || !found) throw new OutpostError('COMMAND_UNKNOWN', `no command "${id.slice(0, 80)}" (ids are <gateway>:<cursor>)`);
    res.json(commandView({ ...found, gateway: m[1]! }));
  });
}

interface ParsedRequest {
  target: { gateway: string } | { tag: string };
  type: CommandType;
  body: Record<string, unknown>;
  expiresAt: number;
}

function describeTarget(t: unknown): string {
  if (t && typeof t === 'object') {
    const o = t as Record<string, unknown>;
    if (typeof o.gateway === 'string') return o.gateway;
    if (typeof o.tag === 'string') return `tag:${o.tag}`;
  }
  return '(no target)';
}

/** The request, checked: what the gateway would refuse anyway is refused here with a clearer word. */
export function parseRequest(raw: Record<string, unknown>, now: number, defaultTtlMs: number): ParsedRequest {
  const bad = (message: string): never => {
    throw new OutpostError('COMMAND_INVALID', message);
  };
  const t = raw.target as Record<string, unknown> | undefined;
  let target: ParsedRequest['target'] | undefined;
  if (t && typeof t === 'object' && !Array.isArray(t)) {
    if (typeof t.gateway === 'string' && t.tag === undefined) target = { gateway: t.gateway };
    else if (typeof t.tag === 'string' && t.gateway === undefined) target = { tag: t.tag };
  }
  if (!target) return bad('"target" is {"gateway": "<id>"} or {"tag": "<tag>"}');
  if (typeof raw.type !== 'string' || !(COMMAND_TYPES as readonly string[]).includes(raw.type)) return bad(`"type" is one of ${COMMAND_TYPES.join(', ')}`);
  const type = raw.type as CommandType;
  const body = raw.body;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return bad('"body" is an object (setpoint: {"id", "v"}; schedule: {"id", "entries"})');
  const b = body as Record<string, unknown>;
  if ('requestId' in b || 'type' in b) bad('"body" may not name "requestId" or "type": central gives each command its own');
  if (type === 'config') return { target, type, body: configBody(b, bad), expiresAt: expiry(raw, now, defaultTtlMs, bad) };
  if (JSON.stringify(b).length > MAX_BODY_CHARS) bad(`"body" is at most ${MAX_BODY_CHARS} characters of JSON`);
  if (typeof b.id !== 'string' || (type !== 'alarm.ack' && !DATAPOINT_ID.test(b.id))) bad('"body.id" is the datapoint (setpoint, schedule) or alarm id');
  if (type === 'setpoint' && !['number', 'boolean', 'string'].includes(typeof b.v)) bad('a setpoint\'s "body.v" is a number, boolean or string');
  if (type === 'setpoint' && typeof b.v === 'number' && !Number.isFinite(b.v)) bad('a setpoint\'s "body.v" is finite');
  if (type === 'schedule') {
    if (!Array.isArray(b.entries) || b.entries.length > MAX_SCHEDULE_ENTRIES)
      bad(`a schedule's "body.entries" is a list of at most ${MAX_SCHEDULE_ENTRIES} {"at", "v"}`);
    for (const [i, e] of (b.entries as unknown[]).entries()) {
      const en = e as Record<string, unknown> | null;
      if (!en || typeof en !== 'object' || (typeof en.at !== 'number' && typeof en.at !== 'string') || en.v === undefined)
        bad(`schedule entry ${i} is {"at": <epoch ms or ISO 8601>, "v": <value>}`);
    }
  }
  return { target, type, body: b, expiresAt: expiry(raw, now, defaultTtlMs, bad) };
}

function expiry(raw: Record<string, unknown>, now: number, defaultTtlMs: number, bad: (message: string) => never): number {
  if (raw.expiresAt === undefined) return now + defaultTtlMs;
  const e = typeof raw.expiresAt === 'string' ? Date.parse(raw.expiresAt) : raw.expiresAt;
  if (typeof e !== 'number' || !Number.isSafeInteger(e)) return bad('"expiresAt" is epoch ms or an ISO 8601 time');
  if (e <= now) bad('"expiresAt" is in the past');
  if (e > now + MAX_COMMAND_TTL_MS) bad('"expiresAt" is at most 30 days ahead');
  return e;
}

/**
 * A config push: `{yaml, apply?}`. Central adds the SHA-256 the gateway checks the file against
 * (a copy cut short on the way is refused there); the gateway checks the rest with its own schema.
 */
function configBody(b: Record<string, unknown>, bad: (message: string) => never): Record<string, unknown> {
  const extra = Object.keys(b).filter((k) => !['yaml', 'apply'].includes(k));
  if (extra.length > 0) bad(`a config's "body" is {"yaml", "apply"?}; not ${extra.map((k) => JSON.stringify(k)).join(', ')}`);
  if (typeof b.yaml !== 'string' || b.yaml.trim() === '') bad('a config\'s "body.yaml" is the whole outpost.yaml');
  const yaml = b.yaml as string;
  if (Buffer.byteLength(yaml, 'utf8') > MAX_CONFIG_CHARS) bad(`a config's "body.yaml" is at most ${MAX_CONFIG_CHARS} bytes`);
  if (b.apply !== undefined && b.apply !== 'restart' && b.apply !== 'next-start') bad('a config\'s "body.apply" is "restart" or "next-start"');
  return { yaml, sha256: createHash('sha256').update(yaml, 'utf8').digest('hex'), ...(b.apply !== undefined ? { apply: b.apply } : {}) };
}

/** The configured gateways a target names. */
function targets(gateways: GatewayDirectory, target: ParsedRequest['target']): string[] {
  if ('gateway' in target) {
    if (!gateways.get(target.gateway)) throw new OutpostError('COMMAND_NO_TARGET', `no configured gateway "${target.gateway.slice(0, 64)}"`);
    return [target.gateway];
  }
  const ids = gateways
    .list()
    .filter((g) => g.config.tags.includes(target.tag))
    .map((g) => g.id)
    .sort();
  if (ids.length === 0) throw new OutpostError('COMMAND_NO_TARGET', `no configured gateway has the tag "${target.tag.slice(0, 64)}"`);
  if (ids.length > MAX_TARGETS)
    throw new OutpostError('COMMAND_INVALID', `the tag "${target.tag}" names ${ids.length} gateways; at most ${MAX_TARGETS} per request`);
  return ids;
}
