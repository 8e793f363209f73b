import t from 'tap';
import { createServer, type IncomingMessage } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { sensors, startSync, writeReadings, GATEWAY_ID } from './helpers/sync.js';
import { decodeBatch, wireRecords, SeqDeduper } from '../../runtime/sync/codec.js';
import { signBody, parseRetryAfter, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../../runtime/sync/http-link.js';
import type { OutboxRecord } from '../../storage/store.js';
import type { Teardown } from '../helpers/teardown.js';

const T0 = Date.UTC(2025, 0, 1);
const fast = { pollMs: 20, backoff: { initialMs: 50, maxMs: 200 }, datapointsIntervalMs: 0 };

interface Seen {
  at: number;
  status: number;
  headers: IncomingMessage['headers'];
}

/** A local ingest endpoint; `script` decides the status of each request in turn. */
async function ingestServer(t: Teardown, script: (n: number, req: IncomingMessage, body: Buffer) => { status: number; headers?: Record<string, string> }) {
  const dedupe = new SeqDeduper();
  const records: OutboxRecord[] = [];
  const seen: Seen[] = [];
  let n = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const { status, headers } = script(n++, req, body);
      seen.push({ at: Date.now(), status, headers: req.headers });
      if (status >= 200 && status < 300) {
        const batch = decodeBatch(gunzipSync(body));
        records.push(...dedupe.accept(batch.gw, wireRecords(batch)));
      }
      res.writeHead(status, headers).end(status < 300 ? '{"ok":true}' : 'nope');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/ingest`, records, seen };
}

t.test('HTTP link: gzip JSON with bearer token; honours Retry-After on 429 and 503', async (t) => {
  const srv = await ingestServer(t, (n, req) => {
    if (req.headers.authorization !== 'Bearer tok-123') return { status: 401 };
    if (n === 1) return { status: 429, headers: { 'retry-after': '1' } };
    if (n === 3) return { status: 503, headers: { 'retry-after': new Date(Date.now() + 1500).toUTCString() } };
    return { status: 200 };
  });
  const gw = await startTestGateway(t, { datapoints: sensors(['a.x', 'a.y']), storage: { sync: false } });
  await writeReadings(gw, ['a.x', 'a.y'], 2000, T0);
  const { sync } = await startSync(t, gw, {
    ...fast,
    links: [{ name: 'ingest', type: 'http', url: srv.url, batchRecords: 400, window: 1, auth: { type: 'bearer', token: 'tok-123' } }],
  });
  await eventually(() => srv.records.length === 2000, 20_000);
  t.same(
    srv.records.map((r) => r.seq),
    Array.from({ length: 2000 }, (_, i) => i + 1),
  );
  const h = srv.seen[0]!.headers;
  t.equal(h['content-encoding'], 'gzip');
  t.equal(h['content-type'], 'application/json');
  t.match(h['idempotency-key'], new RegExp(`^${GATEWAY_ID}:1-400$`));
  // The request after a 429 waited at least Retry-After (1 s); after the 503, at least ~1.5 s (HTTP-date form, second resolution).
  t.ok(srv.seen[2]!.at - srv.seen[1]!.at >= 1000, `waited ${srv.seen[2]!.at - srv.seen[1]!.at} ms after 429`);
  t.ok(srv.seen[4]!.at - srv.seen[3]!.at >= 500, `waited ${srv.seen[4]!.at - srv.seen[3]!.at} ms after 503`);
  const snap = await sync.snapshot();
  t.equal(snap.acked, 2000);
  t.equal(snap.links[0]!.errors, 2, 'both throttles counted');
  await eventually(() => gw.gateway.store.stats().ackedSeq === 2000);
});

t.test('HTTP link: HMAC-SHA256 signature over timestamp and body; a 4xx keeps the records', async (t) => {
  const secret = 'a-shared-secret-of-some-length';
  let reject = true;
  const srv = await ingestServer(t, (_n, req, body) => {
    const ts = String(req.headers[TIMESTAMP_HEADER]);
    if (req.headers[SIGNATURE_HEADER] !== signBody(secret, ts, body)) return { status: 401 };
    return { status: reject ? 400 : 200 };
  });
  const gw = await startTestGateway(t, { datapoints: sensors(['a.x']), storage: { sync: false } });
  await writeReadings(gw, ['a.x'], 100, T0);
  const { sync } = await startSync(t, gw, { ...fast, links: [{ name: 'ingest', type: 'http', url: srv.url, auth: { type: 'hmac', secret } }] });
  await eventually(() => srv.seen.length >= 2);
  const snap = await sync.snapshot();
  t.equal(snap.acked, 0, 'a refused batch is not acknowledged');
  t.match(snap.links[0]!.lastError, /HTTP 400/);
  t.equal((await gw.gateway.store.readOutbox(0, 1000)).length, 100, 'records stay in the outbox');
  reject = false;
  await eventually(() => srv.records.length === 100, 10_000);
  t.ok(
    srv.seen.every((s) => s.status !== 401),
    'every request carried a valid signature',
  );
});

t.test('HTTP link with the default window: records arrive in order per datapoint although every 3rd POST fails', async (t) => {
  const srv = await ingestServer(t, (n) => ({ status: n % 3 === 2 ? 503 : 200 }));
  const gw = await startTestGateway(t, { datapoints: sensors(['a.x', 'a.y']), storage: { sync: false } });
  await writeReadings(gw, ['a.x', 'a.y'], 1500, T0);
  await startSync(t, gw, { ...fast, links: [{ name: 'ingest', type: 'http', url: srv.url, batchRecords: 100 }] });
  await eventually(() => srv.records.length === 1500, 20_000);
  t.ok(srv.seen.filter((s) => s.status === 503).length >= 4, 'failures happened mid-drain');
  for (const id of ['a.x', 'a.y']) {
    const seqs = srv.records.filter((r) => r.id === id).map((r) => r.seq);
    t.same(
      seqs,
      [...seqs].sort((a, b) => a - b),
      `${id} arrived in order`,
    );
  }
});

t.test('HTTP link: server unreachable → link down, still probing, nothing acknowledged', async (t) => {
  const gw = await startTestGateway(t, { datapoints: sensors(['a.x']), storage: { sync: false } });
  await writeReadings(gw, ['a.x'], 10, T0);
  const { sync } = await startSync(t, gw, {
    ...fast,
    datapointsIntervalMs: 100,
    links: [{ name: 'ingest', type: 'http', url: 'http://127.0.0.1:1/ingest', ackTimeoutMs: 1000 }],
  });
  const snap = (await eventually(async () => {
    const s = await sync.snapshot();
    return s.links[0]!.state === 'down' ? s : undefined;
  }))!;
  t.match(snap.links[0]!.lastError, /ECONNREFUSED/);
  t.equal(snap.mode, 'primary', 'a connectionless link keeps probing');
  t.equal(snap.acked, 0);
  // Link state and last error as datapoints and in /metrics.
  await eventually(() => gw.gateway.store.latest('gateway.sync.link.ingest.state')?.v === 'down');
  t.match(gw.gateway.store.latest('gateway.sync.link.ingest.last_error')?.v, /ECONNREFUSED/);
  const metrics = await (await fetch(`${gw.httpUrl}/metrics`)).text();
  t.match(metrics, /outpost_sync_link_state\{link="ingest",state="down"\} 1/);
  t.notMatch(metrics, /outpost_sync_link_state\{link="ingest",state="up"\} 1/);
});

t.test('Retry-After parsing (RFC 9110 §10.2.3)', async (t) => {
  const now = Date.UTC(2025, 0, 1, 12);
  t.equal(parseRetryAfter('120', now), 120_000);
  t.equal(parseRetryAfter('Wed, 01 Jan 2025 12:00:30 GMT', now), 30_000);
  t.equal(parseRetryAfter('Wed, 01 Jan 2025 11:00:00 GMT', now), 0);
  t.equal(parseRetryAfter('soon', now), undefined);
  t.equal(parseRetryAfter(undefined, now), undefined);
});
