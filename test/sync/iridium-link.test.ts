import t from 'tap';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import type { Reading } from '../../adapters/iridium/codec.js';
import { decodeMoAck, encodeMoAck, moKind } from '../../adapters/iridium/mo-ack.js';
import { seeded, threePointCodec } from '../adapters/iridium/harness.js';
import { SatelliteDirectory, type SatelliteModem } from '../../runtime/sync/satellite.js';
import { syncSchema } from '../../runtime/sync/config.js';

const T0 = Date.UTC(2025, 0, 1);
const codec = threePointCodec();

t.test('codec version 2: every reading keeps its outbox sequence number (property test)', async (t) => {
  const random = seeded(42);
  for (let round = 0; round < 200; round++) {
    const n = 1 + Math.floor(random() * 30);
    const readings: Reading[] = [];
    let seq = 1 + Math.floor(random() * 1_000_000);
    for (let i = 0; i < n; i++) {
      seq += random() < 0.7 ? 1 : 1 + Math.floor(random() * 5000);
      const id = ['a.level', 'b.temp', 'c.alarm'][Math.floor(random() * 3)]!;
      const t = T0 + Math.floor(random() * 86_400) * 1000;
      const v = random() < 0.1 ? null : id === 'c.alarm' ? random() < 0.5 : Math.round((random() - 0.5) * 1e6) / 100;
      readings.push(v === null ? { id, t, v, q: random() < 0.5 ? 'stale' : 'bad', seq } : { id, t, v, seq });
    }
    const { bytes, count } = codec.packPrefix(readings, round, 340, { outboxSeqs: true });
    const decoded = codec.decode(bytes);
    t.equal(decoded.version, 2);
    const key = (r: Reading): string => `${r.seq}|${r.id}|${r.t}|${JSON.stringify(r.v)}|${r.q ?? ''}`;
    const expected = readings.slice(0, count).map((r) => key({ ...codec.quantise(r), seq: r.seq }));
    t.same(decoded.readings.map(key).sort(), expected.sort(), `round ${round}: ${count} readings with their seqs`);
    if (t.passing() === false) break;
  }
  // Latest values written together: consecutive seqs cost one run.
  const latest = ['a.level', 'b.temp', 'c.alarm'].map((id, i) => ({ id, t: T0, v: id === 'c.alarm' ? true : 1, seq: 5000 + i }));
  const v1 = codec.encode(latest, 1);
  const v2 = codec.encode(latest, 1, 340, { outboxSeqs: true });
  t.ok(v2.length - v1.length <= 6, `the sequence section costs ${v2.length - v1.length} bytes for 3 consecutive seqs`);
});

t.test('codec version 2: bad input', async (t) => {
  t.throws(() => codec.encode([{ id: 'a.level', t: T0, v: 1 }], 1, 340, { outboxSeqs: true }), { code: 'IRIDIUM_CODEC' }, 'a reading without seq is refused');
  t.throws(() => codec.encode([{ id: 'a.level', t: T0, v: 1, seq: -1 }], 1, 340, { outboxSeqs: true }), { code: 'IRIDIUM_CODEC' }, 'negative seq');
  const good = codec.encode(
    [
      { id: 'a.level', t: T0, v: 1, seq: 10 },
      { id: 'b.temp', t: T0, v: 2, seq: 11 },
    ],
    1,
    340,
    { outboxSeqs: true },
  );
  t.throws(() => codec.decode(good.subarray(0, good.length - 1)), { code: 'IRIDIUM_CODEC' }, 'truncated');
  // Header: version, fingerprint (2), message seq, base time (varint), then the count: claim 3 readings.
  const baseLen = (() => {
    let i = 4;
    while (good[i]! & 0x80) i++;
    return i + 1;
  })();
  const lying = Buffer.from(good);
  lying[baseLen] = 3;
  t.throws(() => codec.decode(lying), { code: 'IRIDIUM_CODEC' }, 'sequence count that does not match the readings');
  t.equal(codec.carries({ id: 'a.level', t: T0, v: 'text' }), false, 'strings are not carried');
  t.equal(codec.carries({ id: 'c.alarm', t: T0, v: 1 }), false, 'a number for a boolean datapoint is not carried');
  t.equal(codec.carries({ id: 'x.other', t: T0, v: 1 }), false, 'datapoints outside the table are not carried');
  t.equal(codec.carries({ id: 'a.level', t: Date.UTC(2019, 0, 1), v: 1 }), false, 'before the codec epoch');
  t.equal(codec.carries({ id: 'a.level', t: T0, v: null }), true, 'a stale/bad reading is');
  t.equal(moKind(good), 'readings');
});

t.test('MT acknowledgement MO message: round trip and bad input', async (t) => {
  const acks = [
    { counter: 7, results: ['ok', 'SETPOINT_OUT_OF_RANGE', 'DP_UNKNOWN'] },
    { counter: 300, results: ['ADAPTER_UNAVAILABLE'] },
  ];
  const bytes = encodeMoAck(acks);
  t.equal(moKind(bytes), 'ack');
  t.ok(bytes.length <= 10, `${bytes.length} bytes for two MT messages`);
  t.same(decodeMoAck(bytes), acks);
  t.same(decodeMoAck(encodeMoAck([{ counter: 1, results: ['SOMETHING_NEW'] }])), [{ counter: 1, results: ['OTHER'] }], 'unknown codes travel as OTHER');
  t.throws(() => encodeMoAck([]), { code: 'IRIDIUM_CODEC' });
  t.throws(() => encodeMoAck([{ counter: -1, results: [] }]), { code: 'IRIDIUM_CODEC' });
  t.throws(() => decodeMoAck(Buffer.from([1, 2, 3])), { code: 'IRIDIUM_CODEC' }, 'a readings message is not an ack');
  t.throws(() => decodeMoAck(Buffer.from([3])), { code: 'IRIDIUM_CODEC' }, 'empty');
  t.throws(() => decodeMoAck(Buffer.from([3, 7, 5, 0])), { code: 'IRIDIUM_CODEC' }, 'more ops claimed than bytes');
  t.equal(moKind(Buffer.from([9])), 'unknown');
});

t.test('satellite directory: per gateway and adapter, watched across restarts', async (t) => {
  const dir = new SatelliteDirectory();
  const modem = { state: 'idle' } as unknown as SatelliteModem;
  const seen: Array<SatelliteModem | undefined> = [];
  const unwatch = dir.watch('gw1', 'sat', (m) => seen.push(m));
  t.same(seen, [undefined], 'told at once: not running yet');
  const unregister = dir.register('gw1', 'sat', modem);
  t.throws(() => dir.register('gw1', 'sat', modem), { code: 'CONFIG_INVALID' }, 'a second modem under the same key is refused');
  t.not(dir.get('gw2', 'sat'), modem, 'another gateway in the same process does not see it');
  dir.register('gw2', 'sat', modem);
  unregister();
  unregister();
  t.same(seen, [undefined, modem, undefined], 'attach and detach seen once each');
  dir.register('gw1', 'sat', modem);
  t.equal(seen.at(-1), modem, 'a restarted adapter is attached again');
  unwatch();
});

t.test('config: the iridium link', async (t) => {
  const base = { enabled: true, links: [{ name: 'central', type: 'mqtt', url: 'mqtt://127.0.0.1:1' }] };
  const ok = syncSchema.safeParse({ ...base, links: [...base.links, { name: 'sat', type: 'iridium', adapter: 'sat' }] });
  t.ok(ok.success);
  t.match(ok.data?.links[1], { role: 'fallback', messageBytes: 340, downlink: true });
  const bad = (link: Record<string, unknown>) => syncSchema.safeParse({ ...base, links: [...base.links, { name: 'sat', type: 'iridium', ...link }] });
  t.notOk(bad({}).success, 'adapter is required');
  t.notOk(bad({ adapter: 'sat', role: 'primary' }).success, 'a satellite link is never primary');
  t.notOk(bad({ adapter: 'sat', messageBytes: 341 }).success, 'messageBytes above the 340-byte MO limit');
  t.notOk(bad({ adapter: 'sat', window: 4 }).success, 'unknown keys are errors');
  t.notOk(
    syncSchema.safeParse({ enabled: true, links: [{ name: 'sat', type: 'iridium', adapter: 'sat' }] }).success,
    'a satellite link alone is not enough: a primary is required',
  );
});

t.test('an iridium link whose adapter is not running says so and never becomes the fallback', async (t) => {
  const gw = await startTestGateway(t, {
    storage: { sync: false },
    // Configured (a link to no adapter at all is refused by the config check) but never running: no such port.
    adapters: [{ id: 'missing', type: 'iridium', port: '/dev/outpost-no-such-modem' }],
    sync: {
      enabled: true,
      datapointsIntervalMs: 0,
      fallback: { afterMs: 0, intervalMs: 100 },
      links: [
        { name: 'central', type: 'mqtt', url: 'mqtt://127.0.0.1:1', reconnectMs: 100 },
        { name: 'sat', type: 'iridium', adapter: 'missing' },
      ],
    },
  });
  const sync = gw.gateway.sync!;
  await eventually(async () => (await sync.snapshot()).mode === 'offline', 5000);
  const sat = (await sync.snapshot()).links.find((l) => l.name === 'sat')!;
  t.equal(sat.state, 'connecting');
  t.match(sat.lastError, /iridium adapter "missing"/);
  t.equal(sat.batches, 0);
});
