import t from 'tap';
import { gzipSync } from 'node:zlib';
import { syncSchema } from '../../runtime/sync/config.js';
import { decodeBatch, encodeBatch, SeqDeduper, wireRecords } from '../../runtime/sync/codec.js';
import { backoffDelay } from '../../runtime/sync/pacing.js';
import { SyncService } from '../../runtime/sync/service.js';
import { MemoryStore } from '../../storage/memory-store.js';
import { createLogger } from '../../runtime/log.js';
import { systemClock } from '../../core/clock.js';

t.test('sync config: defaults, and bad values named by path', async (t) => {
  t.match(syncSchema.parse({}), { enabled: false, links: [], pollMs: 200, fallback: { afterMs: 300_000 } });
  const bad = (cfg: unknown) =>
    syncSchema
      .safeParse(cfg)
      .error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`)
      .join('; ');
  t.match(bad({ enabled: true }), /no primary link/);
  t.match(
    bad({
      links: [
        { name: 'a', type: 'mqtt', url: 'mqtt://x' },
        { name: 'a', type: 'mqtt', url: 'mqtt://y' },
      ],
    }),
    /links.1.name: duplicate link name "a"/,
  );
  t.match(bad({ links: [{ name: 'a', type: 'mqtt', url: 'http://x' }] }), /links.0.url/);
  t.match(bad({ links: [{ name: 'a', type: 'mqtt', url: 'mqtt://x', tls: { certFile: 'c.pem' } }] }), /certFile and keyFile go together/);
  t.match(bad({ links: [{ name: 'a', type: 'http', url: 'http://x', auth: { type: 'hmac', secret: 'short' } }] }), /links.0.auth.secret/);
  t.match(bad({ links: [{ name: 'a', type: 'mqtt', url: 'mqtt://x', bogus: 1 }] }), /bogus/);
  t.match(bad({ backoff: { initialMs: 5000, maxMs: 1000 } }), /initialMs must not exceed maxMs/);
  const svc = () =>
    new SyncService({
      config: { enabled: true },
      store: new MemoryStore(),
      ingest: { setpoint: async () => ({ id: '', v: 0, t: 0 }), acceptMany: async () => 0 },
      log: createLogger({ level: 'silent', pretty: false }),
      clock: systemClock,
      gatewayId: 'g',
      dataDir: '/tmp',
    });
  t.throws(svc, { code: 'CONFIG_INVALID', message: /sync.links: sync is enabled but no primary link/ });
});

t.test('batch codec round trip, and malformed payloads refused', async (t) => {
  const records = [
    { seq: 1, id: 'a.b', t: 1000, v: 1.5 },
    { seq: 2, id: 'a.c', t: 1001, v: null, q: 'bad' as const },
    { seq: 3, id: 'a.d', t: 1002, v: { x: [1] } },
  ];
  const payload = await encodeBatch({ key: 'g:1-3', gatewayId: 'g', first: 1, last: 3, records, lane: 'history' });
  const decoded = decodeBatch(payload);
  t.match(decoded, { format: 1, gw: 'g', key: 'g:1-3', first: 1, last: 3, lane: 'history' });
  t.same(wireRecords(decoded), records);
  t.throws(() => decodeBatch(Buffer.from([0x1f, 0x8b, 1, 2, 3])), { code: 'VALUE_MALFORMED', message: /gzip/ });
  t.throws(() => decodeBatch(gzipSync('not json')), { code: 'VALUE_MALFORMED', message: /not JSON/ });
  t.throws(() => decodeBatch(Buffer.from('{"format":2}')), { code: 'VALUE_MALFORMED', message: /shape/ });
});

t.test('receiver dedupe keeps merged ranges per gateway', async (t) => {
  const d = new SeqDeduper();
  const r = (seq: number) => ({ seq, id: 'x', t: seq, v: seq });
  t.equal(d.accept('g', [r(1), r(2), r(3)]).length, 3);
  t.equal(d.accept('g', [r(7)]).length, 1);
  t.same(
    d.accept('g', [r(2), r(3), r(4), r(5)]).map((x) => x.seq),
    [4, 5],
  );
  t.same(d.ranges('g'), [
    [1, 5],
    [7, 7],
  ]);
  t.same(
    d.accept('g', [r(6)]).map((x) => x.seq),
    [6],
  );
  t.same(d.ranges('g'), [[1, 7]], 'gap closed');
  t.equal(d.accept('other', [r(1)]).length, 1, 'per gateway');
});

t.test('backoff has jitter within bounds and is capped', async (t) => {
  t.equal(
    backoffDelay(0, 1000, 60_000, () => 0),
    500,
  );
  t.equal(
    backoffDelay(0, 1000, 60_000, () => 1),
    1000,
  );
  t.equal(
    backoffDelay(3, 1000, 60_000, () => 1),
    8000,
  );
  t.equal(
    backoffDelay(30, 1000, 60_000, () => 1),
    60_000,
  );
  const seen = new Set(Array.from({ length: 50 }, () => backoffDelay(4, 1000, 60_000)));
  t.ok(seen.size > 10, 'randomised');
});
