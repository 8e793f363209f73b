import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { OutpostError } from '../../core/errors.js';
import { tokenMatches, type GatewayEntry } from '../gateways.js';
import '../errors.js';

/** Headers of the gateway's HMAC scheme (runtime/sync/http-link.ts). */
export const SIGNATURE_HEADER = 'x-outpost-signature';
export const TIMESTAMP_HEADER = 'x-outpost-timestamp';

/** The bearer token of an `Authorization` header, or undefined. */
export function bearerOf(headers: IncomingHttpHeaders): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(headers.authorization ?? '');
  return m?.[1];
}

/**
 * Checks a request of a gateway's `http` link against its configured credentials:
 * - bearer: `Authorization: Bearer <token>` whose sha256 is `auth.tokenHash`;
 * - hmac: `x-outpost-signature: sha256=HMAC(secret, "<x-outpost-timestamp>.<signed>")`, where
 *   `signed` is the body as sent (gzip for batches), or `GET <path>?<query>` for a poll, and the
 *   timestamp (seconds) within `maxSkewSeconds` of our clock: a captured request cannot be
 *   replayed later (within the window a replay is harmless: ingest is idempotent).
 * Throws CENTRAL_AUTH_FAILED (401): the link goes down until the credentials are fixed.
 */
export function verifyGatewayRequest(gw: GatewayEntry, headers: IncomingHttpHeaders, signed: Buffer, now: number, maxSkewSeconds: number): void {
  checkGatewayHeaders(gw, headers, now, maxSkewSeconds);
  if (gw.tokenHash !== undefined || gw.hmacSecret === undefined) return;
  const ts = headers[TIMESTAMP_HEADER] as string;
  const expected = Buffer.from('sha256=' + createHmac('sha256', gw.hmacSecret).update(ts).update('.').update(signed).digest('hex'));
  const given = Buffer.from(headers[SIGNATURE_HEADER] as string);
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    throw new OutpostError('CENTRAL_AUTH_FAILED', `the HMAC signature does not match the secret of gateway "${gw.id}"`);
}

/**
 * What `verifyGatewayRequest` checks without the body: a bearer token in full; for HMAC, its
 * headers present and the timestamp within the skew. Run before a body is read, so a stranger
 * cannot make central buffer one.
 */
export function checkGatewayHeaders(gw: GatewayEntry, headers: IncomingHttpHeaders, now: number, maxSkewSeconds: number): void {
  if (gw.tokenHash !== undefined) {
    const token = bearerOf(headers);
    if (!token) throw new OutpostError('CENTRAL_AUTH_FAILED', `gateway "${gw.id}" authenticates with a bearer token: Authorization: Bearer … is missing`);
    if (!tokenMatches(token, [gw.tokenHash])) throw new OutpostError('CENTRAL_AUTH_FAILED', `wrong bearer token for gateway "${gw.id}"`);
    return;
  }
  if (gw.hmacSecret === undefined)
    throw new OutpostError('CENTRAL_AUTH_FAILED', `gateway "${gw.id}" has no HTTP credentials on this central (gateways[].auth in central.yaml)`);
  const ts = headers[TIMESTAMP_HEADER];
  const sig = headers[SIGNATURE_HEADER];
  if (typeof ts !== 'string' || typeof sig !== 'string')
    throw new OutpostError('CENTRAL_AUTH_FAILED', `gateway "${gw.id}" signs its requests: ${TIMESTAMP_HEADER} and ${SIGNATURE_HEADER} are missing`);
  if (!/^\d{1,15}$/.test(ts)) throw new OutpostError('CENTRAL_AUTH_FAILED', `${TIMESTAMP_HEADER} is not epoch seconds`);
  const skew = Math.abs(now - Number(ts) * 1000) / 1000;
  if (skew > maxSkewSeconds)
    throw new OutpostError(
      'CENTRAL_AUTH_FAILED',
      `${TIMESTAMP_HEADER} is ${Math.round(skew)} s from this central's clock (at most ${maxSkewSeconds}): check the gateway's clock`,
    );
}
