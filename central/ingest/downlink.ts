import type { Request, Response } from 'express';
import { OutpostError } from '../../core/errors.js';
import type { CentralConfig } from '../config.js';
import type { GatewayDirectory } from '../gateways.js';
import { readRawBody } from '../http/body.js';
import type { CentralHttp } from '../http/server.js';
import type { CentralMetrics } from '../metrics.js';
import { ackFromWire, sendable } from '../store/command-model.js';
import type { CentralStore, QueuedCommand } from '../store/contract.js';
import { verifyGatewayRequest } from './gateway-auth.js';
import { GATEWAY_HEADER, parseJson, storageBusy } from './http-ingest.js';
import '../errors.js';

/** The gateway's poll asks for at most this many commands (its `downlink.limit`); more is refused. */
const MAX_LIMIT = 1000;
const ACK_MAX_BYTES = 64 * 1024;

export interface DownlinkDeps {
  http: CentralHttp;
  store: Pick<CentralStore, 'commandsAfter' | 'recordCommandAck' | 'markCommandSent'>;
  gateways: GatewayDirectory;
  metrics: CentralMetrics;
  ingest: CentralConfig['ingest']['http'];
  now?: () => number;
}

/**
 * The HTTP poll downlink a gateway's `http` link polls (runtime/sync/http-downlink.ts), with
 * `downlink.url: <central>/api/ingest`:
 *
 *   GET  /api/ingest/downlink?after=<cursor>&limit=<n>   → 204, or 200 {"commands":[{"cursor", "requestId", "type", …}]}
 *   POST /api/ingest/downlink/ack  {"gw","cursor","requestId","ok","result"|"error","t"} → 200
 *
 * `x-outpost-gateway` names the gateway; credentials as its batches (a GET signs
 * `GET <path>?<query>`). The queue is the store's (issue 26 fills it); cursors are numbers.
 */
export function downlinkRoutes(d: DownlinkDeps): void {
  const now = d.now ?? Date.now;
  d.http.route('get', '/api/ingest/downlink', 'ingest', async (req: Request, res: Response) => {
    try {
      const gateway = authenticated(d, req, Buffer.from(`GET ${req.originalUrl}`), now());
      const after = cursorParam(req.query.after);
      const limit = limitParam(req.query.limit);
      const commands = await servable(d, gateway, after, limit, now());
      d.metrics.requests.inc({ path: 'downlink', outcome: 'ok' });
      if (commands.length === 0) {
        res.status(204).end();
        return;
      }
      res.json({ commands: commands.map((c) => ({ ...c.command, cursor: String(c.cursor) })) });
    } catch (err) {
      const e = storageBusy(err);
      d.metrics.requests.inc({ path: 'downlink', outcome: e.code });
      throw e;
    }
  });

  d.http.route('post', '/api/ingest/downlink/ack', 'ingest', async (req: Request, res: Response) => {
    try {
      const body = await readRawBody(req, ACK_MAX_BYTES);
      const gateway = authenticated(d, req, body, now());
      const ack = parseJson(body) as Record<string, unknown> | null;
      if (ack === null || typeof ack !== 'object' || typeof ack.ok !== 'boolean')
        throw new OutpostError('BAD_REQUEST', 'an ack is {"gw","cursor","requestId","ok",…}');
      if (ack.gw !== undefined && ack.gw !== gateway)
        throw new OutpostError('BAD_REQUEST', `the ack names gateway "${String(ack.gw).slice(0, 64)}" but came from "${gateway}"`);
      const cursor = Number(ack.cursor);
      if (!Number.isSafeInteger(cursor) || cursor < 1) throw new OutpostError('BAD_REQUEST', '"cursor" is the command\'s cursor as served');
      const updated = await d.store.recordCommandAck(gateway, cursor, ackFromWire({ ...ack, ok: ack.ok }, now(), 'http'));
      d.metrics.requests.inc({ path: 'downlink_ack', outcome: updated ? 'ok' : 'unknown_command' });
      // An ack for a command this central does not know (a queue reset) is taken: the gateway
      // must not retry it for ever.
      res.json({ ok: true, known: updated !== undefined });
    } catch (err) {
      const e = storageBusy(err);
      d.metrics.requests.inc({ path: 'downlink_ack', outcome: e.code });
      throw e;
    }
  });
}

/** Pages looked through for a command to serve; past them the poll gets 204 and its cursor stays. */
const MAX_PAGES = 20;

/**
 * The commands after `after` that may still go out (command-model.ts `sendable`, never one
 * that went over Iridium: the gateway would apply that copy again, router.ts), each marked
 * `sent` over http. Settled ones in between are skipped, a page at a time; the gateway's
 * cursor moves past them with the next served command.
 */
async function servable(d: DownlinkDeps, gateway: string, after: number, limit: number, at: number): Promise<QueuedCommand[]> {
  const out: QueuedCommand[] = [];
  let from = after;
  for (let page = 0; page < MAX_PAGES && out.length === 0; page++) {
    const list = await d.store.commandsAfter(gateway, from, limit);
    for (const c of list) if (sendable(c, at) && !(c.sends ?? []).some((s) => s.via === 'iridium')) out.push(c);
    if (list.length < limit) break;
    from = list[list.length - 1]!.cursor;
  }
  const served: QueuedCommand[] = [];
  for (const c of out) served.push((await d.store.markCommandSent(gateway, c.cursor, { at, via: 'http' })) ?? c);
  return served;
}

function authenticated(d: DownlinkDeps, req: Request, signed: Buffer, at: number): string {
  const gateway = req.headers[GATEWAY_HEADER];
  if (typeof gateway !== 'string') throw new OutpostError('BAD_REQUEST', `the poll downlink names its gateway in ${GATEWAY_HEADER}`);
  verifyGatewayRequest(d.gateways.require(gateway), req.headers, signed, at, d.ingest.maxSkewSeconds);
  return gateway;
}

function cursorParam(raw: unknown): number {
  if (raw === undefined || raw === '') return 0;
  if (typeof raw !== 'string' || !/^\d{1,15}$/.test(raw)) throw new OutpostError('BAD_REQUEST', '"after" is a cursor this central served (a number)');
  return Number(raw);
}

function limitParam(raw: unknown): number {
  if (raw === undefined || raw === '') return 20;
  const n = typeof raw === 'string' && /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= MAX_LIMIT)) throw new OutpostError('BAD_REQUEST', `"limit" is an integer from 1 to ${MAX_LIMIT}`);
  return n;
}
