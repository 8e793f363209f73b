import type { KeyObject } from 'node:crypto';
import type { Request, Response } from 'express';
import { OutpostError, isOutpostError } from '../../core/errors.js';
import { creditsFor, type Reading } from '../../adapters/iridium/codec.js';
import { decodeMoAck, moKind } from '../../adapters/iridium/mo-ack.js';
import { decodeStorageStatus, type StorageStatus } from '../../adapters/iridium/mo-storage.js';
import type { RockblockConfig } from '../config.js';
import type { GatewayDirectory } from '../gateways.js';
import { readRawBody } from '../http/body.js';
import type { CentralHttp } from '../http/server.js';
import type { CentralMetrics } from '../metrics.js';
import type { CentralStore, IngestRecord, SatelliteMessage } from '../store/contract.js';
import { storageBusy } from './http-ingest.js';
import { verifyRs256 } from './jwt.js';
import type { IngestService, IngestSink } from './service.js';
import '../errors.js';

/** A webhook POST is a few hundred bytes (an MO message is at most 340 bytes, hex 680 characters). */
const MAX_BODY = 64 * 1024;

export interface RockblockDeps {
  http: CentralHttp;
  service: IngestService;
  sink: Pick<IngestSink, 'recordSatellite' | 'recordStatus'> & Pick<CentralStore, 'gatewayState'>;
  gateways: GatewayDirectory;
  metrics: CentralMetrics;
  config: RockblockConfig;
  /** The Rock7 public key when `verify: jwt`. */
  publicKey: KeyObject | undefined;
  now?: () => number;
  /** Acknowledgements of MT messages (MO kind 3), after they are stored: the command queue's. */
  onMtAcks?(gateway: string, acks: ReadonlyArray<{ counter: number; results: string[] }>, at: number): Promise<unknown>;
}

/** The fields of a RockBLOCK MO delivery (Rock7 "Receiving MO messages via HTTP Webhook"). */
interface MoDelivery {
  imei: string;
  momsn: number;
  transmitTime: number;
  data: Buffer;
  lat?: number;
  lon?: number;
  cepKm?: number;
}

/**
 * `POST /api/ingest/rockblock`: the Rock7 cloud delivers each MO message of a RockBLOCK as a
 * form (`application/x-www-form-urlencoded`, or JSON with HTTP_JSON) with `imei`, `momsn`,
 * `transmit_time` (UTC, `YY-MM-DD HH:MM:SS`), `iridium_latitude`, `iridium_longitude`,
 * `iridium_cep`, `data` (hex) and `JWT`: the same fields signed RS256 by Rock7. With
 * `verify: jwt` the JWT must verify with the configured public key, and the message is taken
 * from its signed claims (a field posted beside it that differs is refused).
 *
 * The IMEI names the gateway (`gateways[].iridium.imei`); the message is decoded with that
 * gateway's codec table: readings (codec 1 and 2; version 2 carries the outbox seqs, so the
 * backfill over the primary link drops them again), an acknowledgement of MT commands, or the
 * gateway's storage state (read-only or recovered: recorded as its status, like the storage
 * alarm of the MQTT and HTTP links).
 * 200 once stored; 400 undecodable (garbage hex, another table: the fingerprint differs), 401
 * a missing or wrong JWT, 403 an unknown IMEI. Rock7 retries until it gets a 200.
 */
export function rockblockRoutes(d: RockblockDeps): void {
  const now = d.now ?? Date.now;
  d.http.route('post', '/api/ingest/rockblock', 'ingest', async (req: Request, res: Response) => {
    try {
      const fields = parseFields(req, await readRawBody(req, MAX_BODY));
      const mo = delivery(d.config.verify === 'jwt' ? signedFields(fields, d.publicKey!, d.config.maxAgeSeconds, now()) : fields);
      const gw = d.gateways.byModem(mo.imei);
      if (!gw?.codec) throw new OutpostError('CENTRAL_GATEWAY_UNKNOWN', `IMEI ${mo.imei} is not the modem of a configured gateway (gateways[].iridium.imei)`);
      const kind = moKind(mo.data);
      if (kind === 'storage') {
        const storage = undecodable(() => decodeStorageStatus(mo.data));
        const recorded = await recordStorage(d, gw.id, storage, now());
        // Billed like any MO message; a redelivery (recorded: false) was counted the first time.
        if (recorded) d.metrics.satelliteCredits.inc({ gateway: gw.id }, creditsFor(mo.data.length));
        d.metrics.requests.inc({ path: 'rockblock', outcome: 'ok' });
        res.json({ ok: true, gateway: gw.id, kind: 'storage', storage, recorded });
        return;
      }
      const message: SatelliteMessage = {
        imei: mo.imei,
        momsn: mo.momsn,
        transmitTime: mo.transmitTime,
        bytes: mo.data.length,
        credits: creditsFor(mo.data.length),
        kind: kind === 'ack' ? 'ack' : 'readings',
        ...(mo.lat !== undefined ? { lat: mo.lat } : {}),
        ...(mo.lon !== undefined ? { lon: mo.lon } : {}),
        ...(mo.cepKm !== undefined ? { cepKm: mo.cepKm } : {}),
      };
      if (kind === 'ack') {
        const acks = undecodable(() => decodeMoAck(mo.data));
        await d.sink.recordSatellite(gw.id, { ...message, acks });
        // The commands those MT counters carried (central/commands/router.ts): applied or refused.
        await d.onMtAcks?.(gw.id, acks, now());
        d.metrics.requests.inc({ path: 'rockblock', outcome: 'ok' });
        res.json({ ok: true, gateway: gw.id, kind: 'ack', acks });
        return;
      }
      if (kind !== 'readings')
        throw new OutpostError(
          'CENTRAL_SATELLITE_INVALID',
          `MO message kind ${mo.data[0]} is not readings (1, 2), an acknowledgement (3) or a storage state (4)`,
        );
      const decoded = undecodable(() => gw.codec!.decode(mo.data));
      const records = decoded.readings.map(toRecord);
      const result = await d.service.insert(gw.id, records, { via: 'rockblock', lane: 'satellite', at: now(), satellite: message });
      if (result.stored > 0) d.metrics.satelliteCredits.inc({ gateway: gw.id }, message.credits);
      d.metrics.requests.inc({ path: 'rockblock', outcome: 'ok' });
      res.json({
        ok: true,
        gateway: gw.id,
        kind: 'readings',
        version: decoded.version,
        readings: records.length,
        stored: result.stored,
        duplicates: result.duplicates,
      });
    } catch (err) {
      const e = storageBusy(err);
      d.metrics.requests.inc({ path: 'rockblock', outcome: e.code });
      throw e;
    }
  });
}

/**
 * The storage state in an MO message, recorded as the gateway's status (what `GET
 * /api/gateways/:gw` shows) unless the status already holds a newer storage state, or this
 * very one: Rock7 redelivers a message until it gets a 200, so an older state may arrive after
 * a newer one. Whether it was recorded.
 */
async function recordStorage(d: RockblockDeps, gateway: string, storage: StorageStatus, at: number): Promise<boolean> {
  const current = (await d.sink.gatewayState(gateway))?.status?.storage;
  if (current?.since !== undefined && (current.since > storage.since || (current.since === storage.since && current.state === storage.state))) return false;
  await d.sink.recordStatus(gateway, { at, via: 'rockblock', storage });
  return true;
}

function toRecord(r: Reading): IngestRecord {
  const base = r.q ? { id: r.id, t: r.t, v: r.v, q: r.q } : { id: r.id, t: r.t, v: r.v };
  return r.seq === undefined ? base : { seq: r.seq, ...base };
}

function undecodable<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (isOutpostError(err, 'IRIDIUM_CODEC') || err instanceof RangeError)
      throw new OutpostError('CENTRAL_SATELLITE_INVALID', `the message cannot be decoded with the gateway's datapoint table: ${(err as Error).message}`, {
        cause: err,
      });
    throw err;
  }
}

/** The posted fields as strings: a form, or JSON (HTTP_JSON). */
function parseFields(req: Request, body: Buffer): Record<string, string> {
  const type = String(req.headers['content-type'] ?? '').toLowerCase();
  const out: Record<string, string> = {};
  if (type.startsWith('application/json')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw new OutpostError('BAD_REQUEST', 'the body is not JSON');
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new OutpostError('BAD_REQUEST', 'the body is not a JSON object');
    for (const [k, v] of Object.entries(parsed)) if (v !== null && typeof v !== 'object') out[k] = String(v);
    return out;
  }
  if (!type.startsWith('application/x-www-form-urlencoded'))
    throw new OutpostError('BAD_REQUEST', 'expected application/x-www-form-urlencoded (HTTP_POST) or application/json (HTTP_JSON)');
  for (const [k, v] of new URLSearchParams(body.toString('utf8'))) out[k] = v;
  return out;
}

/**
 * The fields as Rock7 signed them: the JWT's claims, every one of which a posted field must
 * equal (claims are strings, as Rock7 sends them). `data` must be signed.
 */
function signedFields(fields: Record<string, string>, key: KeyObject, maxAgeSeconds: number, at: number): Record<string, string> {
  const token = fields.JWT ?? fields.jwt;
  if (!token) throw new OutpostError('CENTRAL_AUTH_FAILED', 'no JWT: this central takes only deliveries signed by Rock7 (ingest.rockblock.verify: jwt)');
  const claims = verifyRs256(token, key);
  if (typeof claims.data !== 'string' || typeof claims.imei !== 'string')
    throw new OutpostError('CENTRAL_AUTH_FAILED', 'the JWT does not sign "imei" and "data"');
  if (maxAgeSeconds > 0) {
    const iat = Number(claims.iat);
    if (!Number.isFinite(iat) || at / 1000 - iat > maxAgeSeconds)
      throw new OutpostError('CENTRAL_AUTH_FAILED', `the JWT was issued more than ${maxAgeSeconds} s ago (ingest.rockblock.maxAgeSeconds)`);
  }
  const signed: Record<string, string> = {};
  for (const [k, v] of Object.entries(claims)) if (v !== null && typeof v !== 'object') signed[k] = String(v);
  for (const [k, v] of Object.entries(fields)) {
    if (k === 'JWT' || k === 'jwt' || signed[k] === undefined) continue;
    const same = k === 'data' ? hexOf(v) === hexOf(signed[k]!) : v === signed[k];
    if (!same) throw new OutpostError('CENTRAL_AUTH_FAILED', `the posted "${k}" differs from what the JWT signs`);
  }
  return signed;
}

function hexOf(s: string): string {
  return s.replace(/\s+/g, '').toLowerCase();
}

function delivery(f: Record<string, string>): MoDelivery {
  const imei = f.imei ?? '';
  if (!/^\d{15}$/.test(imei)) throw new OutpostError('BAD_REQUEST', `"imei" is the 15-digit IMEI of the modem, got ${JSON.stringify(imei.slice(0, 40))}`);
  const momsn = Number(f.momsn);
  if (!Number.isSafeInteger(momsn) || momsn < 0) throw new OutpostError('BAD_REQUEST', '"momsn" is a non-negative integer');
  const transmitTime = parseTransmitTime(f.transmit_time);
  const hex = hexOf(f.data ?? '');
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-f]+$/.test(hex))
    throw new OutpostError('CENTRAL_SATELLITE_INVALID', '"data" is the message as hex: an even number of 0-9a-f characters, at least one byte');
  if (hex.length > 2 * 340 * 2)
    throw new OutpostError('CENTRAL_SATELLITE_INVALID', `"data" holds ${hex.length / 2} bytes; an SBD MO message holds at most 340`);
  const out: MoDelivery = { imei, momsn, transmitTime, data: Buffer.from(hex, 'hex') };
  const lat = optionalNumber(f.iridium_latitude, -90, 90);
  const lon = optionalNumber(f.iridium_longitude, -180, 180);
  const cep = optionalNumber(f.iridium_cep, 0, 100_000);
  if (lat !== undefined) out.lat = lat;
  if (lon !== undefined) out.lon = lon;
  if (cep !== undefined) out.cepKm = cep;
  return out;
}

/** `21-10-31 10:41:50` (RockBLOCK: UTC, two-digit year) or ISO 8601 (Rock7 Core). */
export function parseTransmitTime(raw: string | undefined): number {
  const m = /^(\d{2})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(raw ?? '');
  const t = m ? Date.UTC(2000 + Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) : Date.parse(raw ?? '');
  if (!Number.isFinite(t) || t < 0)
    throw new OutpostError('BAD_REQUEST', `"transmit_time" is "YY-MM-DD HH:MM:SS" (UTC) or ISO 8601, got ${JSON.stringify((raw ?? '').slice(0, 40))}`);
  return t;
}

function optionalNumber(raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  return Number.isFinite(n) && n >= min && n <= max ? n : undefined;
}
