import t from 'tap';
import { createServer, type IncomingMessage } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { startSync, GATEWAY_ID } from './helpers/sync.js';
import { gunzipSync } from 'node:zlib';
import { signBody, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../../runtime/sync/http-link.js';
import { decodeBatch, wireRecords, SeqDeduper } from '../../runtime/sync/codec.js';
import type { OutboxRecord } from '../../storage/store.js';
import type { Teardown } from '../helpers/teardown.js';

const SECRET = 'downlink-hmac-secret-0123456789';
const fast = { pollMs: 20, backoff: { initialMs: 50, maxMs: 200 }, datapointsIntervalMs: 0 };
const ACTUATOR = 'plant.boiler.setpoint';

interface Poll {
  at: number;
  after: string | null;
  limit: string | null;
  signatureOk: boolean;
}

/**
 * A central downlink API on loopback: serves a queue of commands after the cursor the
 * gateway sends (or `serve` decides), records every GET and every ack POST, checks the
 * HMAC of each request, and accepts uplink batches (2xx) so the link stays healthy.
 */
async function downlinkServer(
  t: Teardown,
  opts: {
    commands: Array<Record<string, unknown>>;
    status?: (n: number) => { status: number; headers?: Record<string, string> } | undefined;
    serve?: (after: string | null) => Array<Record<string, unknown>>;
  },
) {
  const polls: Poll[] = [];
  const acks: Array<Record<string, unknown> & { signatureOk: boolean }> = [];
  /** Uplink records after dedupe: every applied setpoint is stored and sent upstream once. */
  const uplink: OutboxRecord[] = [];
  const dedupe = new SeqDeduper();
  let n = 0;
  const verify = (req: IncomingMessage, signed: Buffer): boolean => {
    const ts = String(req.headers[TIMESTAMP_HEADER] ?? '');
    return ts !== '' && req.headers[SIGNATURE_HEADER] === signBody(SECRET, ts, signed);
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url!, 'http://x');
      if (req.method === 'GET' && url.pathname === '/api/downlink') {
        const after = url.searchParams.get('after');
        polls.push({ at: Date.now(), after, limit: url.searchParams.get('limit'), signatureOk: verify(req, Buffer.from(`GET ${url.pathname}${url.search}`)) });
        const scripted = opts.status?.(n++);
        if (scripted) return void res.writeHead(scripted.status, scripted.headers).end('server trouble');
        const page = opts.serve ? opts.serve(after) : opts.commands.filter((c) => after === null || Number(c.cursor) > Number(after));
        if (page.length === 0) return void res.writeHead(204).end();
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ commands: page }));
      }
      if (req.method === 'POST' && url.pathname === '/api/downlink/ack') {
        acks.push({ ...(JSON.parse(body.toString('utf8')) as Record<string, unknown>), signatureOk: verify(req, body) });
        return void res.writeHead(204).end();
      }
      // Uplink batches.
      const batch = decodeBatch(gunzipSync(body));
      uplink.push(...dedupe.accept(batch.gw, wireRecords(batch)));
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/api`;
  return { base, polls, acks, uplink };
}

const link = (base: string, downlink: Record<string, unknown>) => ({
  name: 'central',
  type: 'http',
  url: base,
  auth: { type: 'hmac', secret: SECRET },
  downlink: { intervalMs: 50, ...downlink },
});

async function gatewayWithActuator(t: Parameters<typeof startTestGateway>[0]) {
  return startTestGateway(t, {
    datapoints: [
      { id: ACTUATOR, kind: 'actuator', type: 'number', unit: '°C', min: 30, max: 80 },
      { id: 'plant.boiler.temp', kind: 'sensor', type: 'number' },
    ],
    storage: { sync: false },
  });
}

/** Values of the actuator that reached the central side over the uplink (after dedupe): one per applied setpoint. */
async function appliedValues(gw: Awaited<ReturnType<typeof gatewayWithActuator>>, srv: { uplink: OutboxRecord[] }): Promise<unknown[]> {
  // Everything stored so far has been acknowledged upstream (backlog 0) before counting.
  await eventually(async () => gw.gateway.store.stats().lastSeq === srv.uplink.length, 10_000);
  return srv.uplink.filter((r) => r.id === ACTUATOR).map((r) => r.v);
}

t.test('HTTP poll downlink: valid setpoint applied and acked ok, invalid ones acked with the error; signed; durable cursor', async (t) => {
  const srv = await downlinkServer(t, {
    commands: [
      { cursor: '1', requestId: 'r1', type: 'setpoint', id: ACTUATOR, v: 55 },
      { cursor: '2', requestId: 'r2', type: 'setpoint', id: ACTUATOR, v: 95 },
      { cursor: '3', requestId: 'r3', type: 'setpoint', id: 'plant.boiler.temp', v: 1 },
      { cursor: '4', requestId: 'r4', type: 'reboot' },
      { cursor: '5', type: 'setpoint', id: ACTUATOR, v: 40 },
    ],
  });
  const gw = await gatewayWithActuator(t);
  const { sync } = await startSync(t, gw, { ...fast, links: [link(srv.base, { limit: 10 })] });
  await eventually(() => srv.acks.length === 5, 10_000);
  const byId = (rid: string | null) => srv.acks.find((a) => a.requestId === rid);
  t.match(byId('r1'), { gw: GATEWAY_ID, cursor: '1', ok: true, result: { id: ACTUATOR, v: 55 } });
  t.equal(gw.gateway.store.latest(ACTUATOR)?.v, 55, 'applied through the local write path (stored like a local setpoint)');
  t.match(byId('r2'), { cursor: '2', ok: false, error: { code: 'SETPOINT_OUT_OF_RANGE', retryable: false } });
  t.match(byId('r3'), { cursor: '3', ok: false, error: { code: 'DP_NOT_ACTUATOR' } });
  t.match(byId('r4'), { cursor: '4', ok: false, error: { code: 'SYNC_COMMAND_INVALID', message: /unknown command "reboot"/ } });
  t.match(byId(null), { cursor: '5', ok: false, error: { code: 'SYNC_COMMAND_INVALID', message: /requestId/ } });
  t.same(
    srv.acks.map((a) => a.cursor),
    ['1', '2', '3', '4', '5'],
    'acks posted in command order',
  );
  t.ok(
    srv.acks.every((a) => a.signatureOk),
    'every ack carries a valid HMAC of its body',
  );
  t.ok(
    srv.polls.every((p) => p.signatureOk),
    'every GET carries a valid HMAC of its path and query',
  );
  t.equal(srv.polls[0]!.after, null, 'the first poll has no cursor');
  t.equal(srv.polls[0]!.limit, '10');
  await eventually(() => srv.polls.some((p) => p.after === '5'), 5000);
  t.same(await appliedValues(gw, srv), [55], 'only the valid setpoint was applied');
  const state = JSON.parse(await readFile(join(gw.dataDir, 'sync', 'downlink-central.json'), 'utf8'));
  t.equal(state.after, '5', 'poll cursor persisted');
  t.same(state.pending, [], 'no ack left undelivered');
  const snap = await sync.snapshot();
  t.same(snap.downlink, { ok: 1, refused: 4 });
});

t.test('HTTP poll downlink: no command applied twice after a restart (durable poll cursor and answered ids)', async (t) => {
  let queue = [{ cursor: '10', requestId: 'a1', type: 'setpoint', id: ACTUATOR, v: 41 }];
  let ignoreCursor = false;
  const srv = await downlinkServer(t, {
    commands: [],
    // A server that has lost its own position serves everything again when asked.
    serve: (after) => (ignoreCursor ? queue : queue.filter((c) => after === null || Number(c.cursor) > Number(after))),
  });
  const gw = await gatewayWithActuator(t);
  const first = await startSync(t, gw, { ...fast, links: [link(srv.base, {})] });
  await eventually(() => srv.acks.some((a) => a.requestId === 'a1'), 10_000);
  // Counted while sync still runs: the applied setpoint goes upstream over the uplink.
  t.same(await appliedValues(gw, srv), [41]);
  await first.sync.stop();

  queue = [...queue, { cursor: '11', requestId: 'a2', type: 'setpoint', id: ACTUATOR, v: 42 }];
  const pollsBefore = srv.polls.length;
  const second = await startSync(t, gw, { ...fast, links: [link(srv.base, {})] });
  await eventually(() => srv.acks.some((a) => a.requestId === 'a2'), 10_000);
  t.equal(srv.polls[pollsBefore]!.after, '10', 'the restarted gateway continues after the last applied command');
  t.same(await appliedValues(gw, srv), [41, 42], 'a1 not applied again, a2 applied once');
  await second.sync.stop();

  // Restart again against a server that ignores the cursor: a1 and a2 come again.
  ignoreCursor = true;
  const acksBefore = srv.acks.length;
  await startSync(t, gw, { ...fast, links: [link(srv.base, {})] });
  await eventually(() => srv.acks.length >= acksBefore + 2, 10_000);
  const again = srv.acks.slice(acksBefore, acksBefore + 2);
  t.match(
    again,
    [
      { requestId: 'a1', ok: true, result: { v: 41 } },
      { requestId: 'a2', ok: true, result: { v: 42 } },
    ],
    'answered again with the original results',
  );
  t.same(await appliedValues(gw, srv), [41, 42], 'served again after a restart: not applied twice');
});

t.test('HTTP poll downlink: backs off exponentially on server errors, honours Retry-After, then recovers', async (t) => {
  const srv = await downlinkServer(t, {
    commands: [{ cursor: '1', requestId: 'b1', type: 'setpoint', id: ACTUATOR, v: 60 }],
    // Poll 1 is 503 + Retry-After: 1, polls 0 and 2-4 fail with 500, then the server works.
    status: (n) => (n === 1 ? { status: 503, headers: { 'retry-after': '1' } } : n < 5 ? { status: 500 } : undefined),
  });
  const gw = await gatewayWithActuator(t);
  const { logs } = await startSync(t, gw, { ...fast, links: [link(srv.base, { intervalMs: 50, maxBackoffMs: 5000 })] }, { random: () => 0.999 });
  await eventually(() => srv.acks.some((a) => a.requestId === 'b1'), 20_000);
  const failures = logs.filter((l) => l.msg === 'downlink poll failed');
  t.same(
    failures.map((l) => l.backoffMs),
    [100, 200, 400, 800, 1600],
    'backoff doubles per consecutive failure',
  );
  t.match(failures[0], { code: 'SYNC_LINK_DOWN' });
  t.match(failures[1], { code: 'SYNC_THROTTLED' });
  t.ok((failures[1]!.retryInMs as number) >= 1000, 'Retry-After (1 s) wins over the shorter backoff');
  // The gap before each retry is at least the delay that was logged for it (timers never fire early).
  for (let i = 0; i < 5; i++) {
    const gap = srv.polls[i + 1]!.at - srv.polls[i]!.at;
    t.ok(gap >= (failures[i]!.retryInMs as number) - 5, `poll ${i + 1} came ${gap} ms after poll ${i} (retry in ${failures[i]!.retryInMs} ms)`);
  }
  t.equal(srv.polls[5]!.after, null, 'cursor unchanged by failures');
  t.equal(gw.gateway.store.latest(ACTUATOR)?.v, 60, 'applied once the server recovered');
});

t.test('HTTP poll downlink: malformed pages are refused and nothing is applied', async (t) => {
  const pages = ['not json', '{"nothing":1}', JSON.stringify({ commands: [{ requestId: 'c1', type: 'setpoint', id: ACTUATOR, v: 50 }] })];
  const polls: number[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (!req.url!.startsWith('/api/downlink')) return void res.writeHead(200).end('{}');
      polls.push(Date.now());
      const page = pages[Math.min(polls.length - 1, pages.length - 1)]!;
      res.writeHead(200, { 'content-type': 'application/json' }).end(page);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/api`;
  const gw = await gatewayWithActuator(t);
  const { logs } = await startSync(t, gw, { ...fast, links: [link(base, { intervalMs: 50 })] });
  await eventually(() => logs.filter((l) => l.msg === 'downlink poll failed').length >= 3, 10_000);
  const reasons = logs.filter((l) => l.msg === 'downlink poll failed').map((l) => l.reason);
  t.match(reasons.slice(0, 3), [/not JSON/, /no "commands" array/, /without a "cursor"/]);
  t.equal(gw.gateway.store.latest(ACTUATOR), undefined, 'a command without a cursor is not applied (its position could not be kept)');
});

t.test('HTTP poll downlink: config is validated', async (t) => {
  const gw = await gatewayWithActuator(t);
  await t.rejects(startSync(t, gw, { links: [{ name: 'central', type: 'http', url: 'http://127.0.0.1:1/x', downlink: { intervalMs: 10 } }] }), {
    code: 'CONFIG_INVALID',
    message: /downlink\.intervalMs/,
  });
  await t.rejects(startSync(t, gw, { links: [{ name: 'central', type: 'http', url: 'http://127.0.0.1:1/x', downlink: { url: 'ftp://x' } }] }), {
    code: 'CONFIG_INVALID',
    message: /downlink\.url/,
  });
});
