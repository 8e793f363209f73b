import t from 'tap';
import { gzipSync } from 'node:zlib';
import { encodeBatch } from '../../runtime/sync/codec.js';
import { MoCodec } from '../../adapters/iridium/codec.js';
import type { OutboxRecord } from '../../storage/store.js';
import { hashToken } from '../../central/gateways.js';
import { hmacHeaders, postRockblock, rock7Jwt, rock7Keys, startTestCentral, transmitTime } from './helpers.js';

const GW = 'site-a';
const SECRET = 'site-a-hmac-secret-0123456789';
const BEARER_GW = 'site-b';
const BEARER = 'site-b-link-token-0123456789abcdef';
const SAT_GW = 'buoy-1';
const IMEI = '300234010753370';
const TABLE = [
  { id: 'tank.level', decimals: 2 },
  { id: 'site.temp', decimals: 1 },
];
const T0 = Date.UTC(2025, 5, 1);

function batch(gw: string, records: OutboxRecord[], key = `${gw}:${records[0]!.seq}-${records.at(-1)!.seq}`) {
  return encodeBatch({ gatewayId: gw, key, first: records[0]!.seq, last: records.at(-1)!.seq, lane: 'history', records });
}

const good = (first: number, n: number): OutboxRecord[] =>
  Array.from({ length: n }, (_, i) => ({ seq: first + i, id: 'plant.power', t: T0 + (first + i) * 1000, v: i }));

t.test('bad input gets a clear 4xx naming the problem, and nothing is stored', async (t) => {
  const keys = await rock7Keys(t);
  const central = await startTestCentral(t, {
    http: { maxBodyBytes: 64 * 1024 },
    ingest: { http: { maxBatchBytes: 256 * 1024 }, rockblock: { verify: 'jwt', jwt: { publicKeyFile: keys.publicKeyFile } } },
    gateways: [
      { id: GW, auth: { type: 'hmac', secret: SECRET } },
      { id: BEARER_GW, auth: { type: 'bearer', tokenHash: hashToken(BEARER) } },
      { id: SAT_GW, iridium: { imei: IMEI, datapoints: TABLE } },
      { id: 'no-creds' },
    ],
  });
  const store = central.store!;
  const post = async (body: Buffer, headers: Record<string, string>) => {
    const res = await fetch(`${central.url}/api/ingest/batch`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
  };
  const signed = (body: Buffer, key: string, at?: number) => ({ 'content-encoding': 'gzip', 'idempotency-key': key, ...hmacHeaders(SECRET, body, at) });
  const nothingStored = async (what: string) => t.equal(await store.countSeqs(GW), 0, `${what}: nothing stored`);
  const refused = async (
    what: string,
    res: { status: number; body: { error?: { code: string; message: string } } },
    status: number,
    code: string,
    says?: RegExp,
  ) => {
    t.equal(res.status, status, `${what}: HTTP ${status}`);
    t.equal(res.body.error?.code, code, `${what}: ${code}`);
    if (says) t.match(res.body.error?.message, says, `${what}: says why`);
  };

  // ---- the gateway's http link: batches ----
  const ok = await batch(GW, good(1, 5));
  const malformedGzip = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.from('not really gzip')]);
  await refused('not gzip', await post(malformedGzip, signed(malformedGzip, `${GW}:1-5`)), 400, 'CENTRAL_BATCH_INVALID', /gzip/);
  const notBatch = Buffer.from(JSON.stringify({ hello: 'world' }));
  await refused(
    'JSON, not a batch',
    await post(notBatch, { 'idempotency-key': `${GW}:1-5`, ...hmacHeaders(SECRET, notBatch) }),
    400,
    'CENTRAL_BATCH_INVALID',
    /format 1/,
  );
  await refused(
    'wrong HMAC secret',
    await post(ok, { 'content-encoding': 'gzip', 'idempotency-key': `${GW}:1-5`, ...hmacHeaders('another-secret-0123456789', ok) }),
    401,
    'CENTRAL_AUTH_FAILED',
    /does not match/,
  );
  await refused('no signature', await post(ok, { 'content-encoding': 'gzip', 'idempotency-key': `${GW}:1-5` }), 401, 'CENTRAL_AUTH_FAILED', /missing/);
  await refused('a signature of an hour ago', await post(ok, signed(ok, `${GW}:1-5`, Date.now() - 3_600_000)), 401, 'CENTRAL_AUTH_FAILED', /clock/);
  const tampered = Buffer.from(ok);
  tampered[tampered.length - 5]! ^= 0xff;
  await refused('body changed after signing', await post(tampered, { ...signed(ok, `${GW}:1-5`) }), 401, 'CENTRAL_AUTH_FAILED');
  const stranger = await batch('nobody', good(1, 5));
  await refused(
    'unknown gateway',
    await post(stranger, { 'content-encoding': 'gzip', 'idempotency-key': 'nobody:1-5', ...hmacHeaders(SECRET, stranger) }),
    403,
    'CENTRAL_GATEWAY_UNKNOWN',
    /nobody/,
  );
  await refused(
    'no credentials configured for it',
    await post(ok, { 'idempotency-key': 'no-creds:1-5', 'content-encoding': 'gzip' }),
    401,
    'CENTRAL_AUTH_FAILED',
    /no HTTP credentials/,
  );
  const forOther = await batch(BEARER_GW, good(1, 5), `${GW}:1-5`);
  await refused('a batch of another gateway under its key', await post(forOther, signed(forOther, `${GW}:1-5`)), 400, 'CENTRAL_BATCH_INVALID', /site-b/);
  await refused('Idempotency-Key not the batch key', await post(ok, signed(ok, `${GW}:1-6`)), 400, 'CENTRAL_BATCH_INVALID', /Idempotency-Key/);
  const badRecord = await batch(GW, [...good(1, 3), { seq: 4, id: 'Plant Power', t: T0, v: 1 }, ...good(5, 2)]);
  await refused(
    'a bad record',
    await post(badRecord, signed(badRecord, `${GW}:1-6`)),
    422,
    'CENTRAL_RECORD_INVALID',
    /record 3 \(seq 4\): datapoint id "Plant Power"/,
  );
  const badTime = await batch(GW, [{ seq: 1, id: 'plant.power', t: Number.NaN as unknown as number, v: 1 }]);
  const nul = await batch(GW, [{ seq: 1, id: 'meter.serial', t: T0, v: 'AB12\u0000\u0000' }]);
  await refused('a string holding U+0000 (a NUL-padded register)', await post(nul, signed(nul, `${GW}:1-1`)), 422, 'CENTRAL_RECORD_INVALID', /U\+0000/);
  await refused('a record without a time', await post(badTime, signed(badTime, `${GW}:1-1`)), 422, 'CENTRAL_RECORD_INVALID', /not epoch milliseconds/);
  const big = gzipSync(
    Buffer.from(
      JSON.stringify({ format: 1, gw: GW, key: `${GW}:1-1`, first: 1, last: 1, lane: 'history', records: [[1, 'plant.power', T0, 'x'.repeat(600_000)]] }),
    ),
    {
      level: 9,
    },
  );
  await refused('a gzip that inflates past maxBatchBytes', await post(big, signed(big, `${GW}:1-1`)), 413, 'BODY_TOO_LARGE', /maxBatchBytes/);
  const huge = Buffer.alloc(100 * 1024, 1);
  await refused('a body past maxBodyBytes', await post(huge, signed(huge, `${GW}:1-1`)), 413, 'BODY_TOO_LARGE');
  await nothingStored('all of the above');
  const accepted = await post(ok, signed(ok, `${GW}:1-5`));
  t.same(accepted, { status: 200, body: { ok: true, key: `${GW}:1-5`, stored: 5, duplicates: 0 } }, 'the good batch, signed right, is taken');

  // ---- bearer ----
  const b = await batch(BEARER_GW, good(1, 2));
  await refused(
    'wrong bearer token',
    await post(b, { 'content-encoding': 'gzip', 'idempotency-key': `${BEARER_GW}:1-2`, authorization: 'Bearer nope' }),
    401,
    'CENTRAL_AUTH_FAILED',
  );
  t.equal(
    (await post(b, { 'content-encoding': 'gzip', 'idempotency-key': `${BEARER_GW}:1-2`, authorization: `Bearer ${BEARER}` })).status,
    200,
    'the right token',
  );

  // ---- status documents ----
  const status = Buffer.from(JSON.stringify({ format: 'outpost-status/1', gw: GW, storage: { state: 'read-only', error: 'ENOSPC', since: T0 } }));
  const statusHeaders = { 'x-outpost-lane': 'status', 'x-outpost-gateway': GW, ...hmacHeaders(SECRET, status) };
  t.equal((await post(status, statusHeaders)).status, 200, 'a status document');
  t.equal((await store.gatewayState(GW))?.status?.storage?.state, 'read-only');
  const badStatus = Buffer.from(JSON.stringify({ format: 'outpost-status/9', gw: GW }));
  await refused(
    'a status of another format',
    await post(badStatus, { 'x-outpost-lane': 'status', 'x-outpost-gateway': GW, ...hmacHeaders(SECRET, badStatus) }),
    400,
    'CENTRAL_BATCH_INVALID',
    /outpost-status\/1/,
  );

  // ---- the RockBLOCK webhook ----
  const codec = new MoCodec({ timeResolutionMs: 1000, datapoints: TABLE.map((d) => ({ ...d, type: 'number' as const })) });
  const message = codec.encode([{ id: 'tank.level', t: T0, v: 1.5, seq: 9 }], 1, 340, { outboxSeqs: true });
  const fields = (data: string, imei = IMEI) => ({
    imei,
    momsn: '12',
    transmit_time: transmitTime(T0 + 5000),
    iridium_latitude: '52.3867',
    iridium_longitude: '0.2938',
    iridium_cep: '8',
    data,
  });
  const satNothing = async (what: string) => t.equal(await store.countReadings(SAT_GW), 0, `${what}: nothing stored`);
  await refused('garbage hex', await postRockblock(central.url, fields('zz12'), keys.privateKey), 400, 'CENTRAL_SATELLITE_INVALID', /hex/);
  await refused('an odd number of hex digits', await postRockblock(central.url, fields('0102f'), keys.privateKey), 400, 'CENTRAL_SATELLITE_INVALID', /hex/);
  await refused('bytes that are no message', await postRockblock(central.url, fields('02ffff05'), keys.privateKey), 400, 'CENTRAL_SATELLITE_INVALID', /table/);
  const otherTable = new MoCodec({ timeResolutionMs: 1000, datapoints: [{ id: 'tank.level', decimals: 1, type: 'number' }] });
  const mismatched = otherTable.encode([{ id: 'tank.level', t: T0, v: 1.5, seq: 9 }], 1, 340, { outboxSeqs: true }).toString('hex');
  await refused(
    'encoded with another table',
    await postRockblock(central.url, fields(mismatched), keys.privateKey),
    400,
    'CENTRAL_SATELLITE_INVALID',
    /fingerprint/,
  );
  await refused('not signed', await postRockblock(central.url, fields(message.toString('hex'))), 401, 'CENTRAL_AUTH_FAILED', /no JWT/);
  await refused(
    'signed by another key',
    await postRockblock(central.url, fields(message.toString('hex')), keys.otherPrivateKey),
    401,
    'CENTRAL_AUTH_FAILED',
    /signature/,
  );
  const noneJwt = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify(fields(message.toString('hex')))).toString('base64url')}.`;
  const withNone = new URLSearchParams({ ...fields(message.toString('hex')), JWT: noneJwt });
  const noneRes = await fetch(`${central.url}/api/ingest/rockblock`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: withNone.toString(),
  });
  await refused('alg none', { status: noneRes.status, body: (await noneRes.json()) as never }, 401, 'CENTRAL_AUTH_FAILED', /only RS256/);
  const swapped = new URLSearchParams({ ...fields(message.toString('hex')), JWT: rock7Jwt(keys.privateKey, fields('0100')) });
  const swappedRes = await fetch(`${central.url}/api/ingest/rockblock`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: swapped.toString(),
  });
  await refused(
    'data other than the JWT signs',
    { status: swappedRes.status, body: (await swappedRes.json()) as never },
    401,
    'CENTRAL_AUTH_FAILED',
    /"data" differs/,
  );
  await refused(
    'an unknown IMEI',
    await postRockblock(central.url, fields(message.toString('hex'), '300234010000000'), keys.privateKey),
    403,
    'CENTRAL_GATEWAY_UNKNOWN',
    /300234010000000/,
  );
  await satNothing('all of the above');
  const sat = await postRockblock(central.url, fields(message.toString('hex')), keys.privateKey);
  t.same(
    sat,
    { status: 200, body: { ok: true, gateway: SAT_GW, kind: 'readings', version: 2, readings: 1, stored: 1, duplicates: 0 } },
    'the good message, signed, is taken',
  );
  t.same(await store.query(SAT_GW, 'tank.level', { from: T0, to: T0 }), [{ t: T0, v: 1.5 }]);
  const usage = (await central.get(`/api/gateways/${SAT_GW}/satellite?from=${T0}&to=${T0 + 86_400_000}`)).body;
  t.same(usage, { gateway: SAT_GW, from: T0, to: T0 + 86_400_000, messages: 1, bytes: message.length, credits: 1 });
  const located = (await central.get(`/api/gateways/${SAT_GW}`)).body;
  t.same(located.location, { lat: 52.3867, lon: 0.2938, source: 'iridium', cepKm: 8 }, "Iridium's position estimate when the config has none");

  // ---- the API ----
  const noToken = await fetch(`${central.url}/api/gateways`);
  t.equal(noToken.status, 401, 'the API needs a token');
  const wrongToken = await fetch(`${central.url}/metrics`, { headers: { authorization: 'Bearer wrong' } });
  t.equal(wrongToken.status, 401, 'so does /metrics');
  t.equal((await central.get(`/api/gateways/${GW}/datapoints/plant.power/values?interval=7s`)).status, 400, 'an interval that is not whole minutes');
  t.equal((await central.get(`/api/gateways/${GW}/datapoints/plant.power/values?from=tomorrow`)).status, 400, 'a time that is not one');
});
