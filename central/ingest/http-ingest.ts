import type { Request, Response } from 'express';
import { OutpostError, isOutpostError, toOutpostError } from '../../core/errors.js';
import type { WireBatch } from '../../runtime/sync/codec.js';
import { decodeIngestBatch, type ScannedBatch } from './batch-scan.js';
import type { CentralConfig } from '../config.js';
import { tokenMatches, type GatewayDirectory } from '../gateways.js';
import { inflateBounded, readRawBody } from '../http/body.js';
import type { CentralHttp } from '../http/server.js';
import type { CentralMetrics } from '../metrics.js';
import type { IngestVia } from '../store/contract.js';
import { bearerOf, checkGatewayHeaders, verifyGatewayRequest } from './gateway-auth.js';
import { gatewayOfKey } from './records.js';
import type { CheckedIngest, IngestService } from './service.js';
import '../errors.js';

/** Headers a forwarding receiver (forward.ts) adds: the gateway of the MQTT topic, and that it came over MQTT. */
export const GATEWAY_HEADER = 'x-outpost-gateway';
export const VIA_HEADER = 'x-outpost-via';
export const LANE_HEADER = 'x-outpost-lane';

export interface HttpIngestDeps {
  http: CentralHttp;
  service: IngestService;
  gateways: GatewayDirectory;
  metrics: CentralMetrics;
  ingest: CentralConfig['ingest']['http'];
  maxBodyBytes: number;
  now?: () => number;
}

/** Who sent a request: a gateway's own link, or a receiver forwarding what it took from MQTT. */
interface Sender {
  gateway: string;
  via: IngestVia;
  /** One bad record refuses the batch (a link that can isolate it), or bad records are left out (MQTT). */
  strict: boolean;
  receiver: boolean;
}

/**
 * `POST /api/ingest/batch`: what a gateway's `http` sync link sends (runtime/sync/http-link.ts),
 * and what forwarding receivers pass on. Answers 2xx only after the records are committed:
 *
 * - a batch (gzip JSON, `Idempotency-Key: <gw>:<first>-<last>`, bearer or HMAC): 200
 *   `{"ok":true,"key","stored","duplicates"}`; the same key again is 200 with its records counted
 *   as duplicates;
 * - a status document (`x-outpost-lane: status`, `{"format":"outpost-status/1","gw","storage"}`): 200.
 *
 * Refusals: 400 a batch that is not one (`CENTRAL_BATCH_INVALID`), 422 a bad record, named
 * (`CENTRAL_RECORD_INVALID`: the link splits the batch and sets the record aside), 401 wrong
 * credentials, 403 a gateway not configured, 413 too large, 503 busy or storage read-only
 * (with Retry-After). Nothing of a refused batch is stored.
 */
export function httpIngestRoutes(d: HttpIngestDeps): void {
  const now = d.now ?? Date.now;
  let inflight = 0;
  d.http.route('post', '/api/ingest/batch', 'ingest', async (req: Request, res: Response) => {
    if (inflight >= d.ingest.maxInflight) throw new OutpostError('CENTRAL_BUSY', `${inflight} ingest requests in progress (ingest.http.maxInflight)`);
    inflight++;
    d.metrics.inflight.set(inflight);
    const lane = req.headers[LANE_HEADER] === 'status' ? 'status' : 'batch';
    try {
      const sender = identify(d, req, now());
      const body = await readRawBody(req, d.maxBodyBytes);
      if (!sender.receiver) verifyGatewayRequest(d.gateways.require(sender.gateway), req.headers, body, now(), d.ingest.maxSkewSeconds);
      if (lane === 'status') {
        const status = await d.service.status(sender.gateway, parseJson(await inflateBounded(body, d.ingest.maxBatchBytes)), sender.via);
        d.metrics.requests.inc({ path: 'status', outcome: 'ok' });
        res.json({ ok: true, status });
        return;
      }
      const result = await d.service.commit(checkedBatch(d, sender, req.headers['idempotency-key'], await inflateBounded(body, d.ingest.maxBatchBytes)));
      d.metrics.requests.inc({ path: 'batch', outcome: 'ok' });
      res.json({
        ok: true,
        key: result.key,
        stored: result.stored,
        duplicates: result.duplicates,
        ...(result.refused.length ? { refused: result.refused.slice(0, 100) } : {}),
      });
    } catch (err) {
      const e = storageBusy(err);
      d.metrics.requests.inc({ path: lane, outcome: e.code });
      throw e;
    } finally {
      inflight--;
      d.metrics.inflight.set(inflight);
    }
  });
}

/** The body decoded and checked, in a frame of its own: its JSON is not kept through the commit. */
function checkedBatch(d: HttpIngestDeps, sender: Sender, key: string | string[] | undefined, body: Buffer): CheckedIngest {
  const batch = decode(body);
  if (!sender.receiver && typeof key === 'string' && key !== batch.key)
    throw new OutpostError('CENTRAL_BATCH_INVALID', `Idempotency-Key "${key.slice(0, 100)}" is not the batch's key "${batch.key.slice(0, 100)}"`);
  return d.service.check(sender.gateway, batch, sender.via, sender.strict);
}

/** Who sends, from the headers alone (a gateway's HMAC over the body is checked once it is read). */
function identify(d: HttpIngestDeps, req: Request, at: number): Sender {
  const token = bearerOf(req.headers);
  if (token !== undefined && d.ingest.receiverTokens.length > 0 && tokenMatches(token, d.ingest.receiverTokens)) {
    const gateway = req.headers[GATEWAY_HEADER];
    if (typeof gateway !== 'string') throw new OutpostError('BAD_REQUEST', `a forwarded batch names its gateway in ${GATEWAY_HEADER}`);
    d.gateways.require(gateway);
    const via = req.headers[VIA_HEADER] === 'mqtt' ? 'mqtt' : 'http';
    return { gateway, via, strict: via !== 'mqtt', receiver: true };
  }
  // A batch names its gateway in the key (the link sends no gateway header with batches); status
  // documents in x-outpost-gateway. Known, with its credentials' headers, before the body is
  // read: a stranger cannot make us buffer or inflate anything.
  const named = req.headers[GATEWAY_HEADER];
  const gateway = typeof named === 'string' ? named : gatewayOfKey(req.headers['idempotency-key'] as string | undefined);
  if (gateway === undefined) throw new OutpostError('BAD_REQUEST', `no gateway named: send Idempotency-Key <gateway>:<first>-<last> or ${GATEWAY_HEADER}`);
  checkGatewayHeaders(d.gateways.require(gateway), req.headers, at, d.ingest.maxSkewSeconds);
  return { gateway, via: 'http', strict: true, receiver: false };
}

function decode(plain: Buffer): WireBatch | ScannedBatch {
  try {
    return decodeIngestBatch(plain);
  } catch (err) {
    throw new OutpostError('CENTRAL_BATCH_INVALID', (err as Error).message, { cause: err });
  }
}

export function parseJson(plain: Buffer): unknown {
  try {
    return JSON.parse(plain.toString('utf8'));
  } catch (err) {
    throw new OutpostError('CENTRAL_BATCH_INVALID', `the body is not JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** A store that refuses writes (read-only, closed) is "busy, come back": 503 with Retry-After, the gateway retries. */
export function storageBusy(err: unknown): OutpostError {
  const e = toOutpostError(err);
  if (isOutpostError(e, 'STORAGE_WRITE_FAILED') || isOutpostError(e, 'STORAGE_CLOSED'))
    return new OutpostError('CENTRAL_BUSY', `storage: ${e.message}`, { cause: e });
  return e;
}
