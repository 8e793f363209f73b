import t from 'tap';
import { CODEC_EPOCH_MS, MAX_MO_BYTES, MoCodec, creditsFor, decodeMoMessage, type CodecTable, type Reading } from '../../../adapters/iridium/codec.js';
import { isOutpostError } from '../../../core/errors.js';
import { seeded } from './harness.js';

const table: CodecTable = {
  timeResolutionMs: 1000,
  datapoints: [
    { id: 'site.grid.power', decimals: 0, type: 'number' },
    { id: 'site.outdoor.temperature', decimals: 2, type: 'number' },
    { id: 'site.pump.running', decimals: 0, type: 'boolean' },
    { id: 'site.tank.level', decimals: 3, type: 'number' },
  ],
};

const sortKey = (r: Reading) => `${r.id}|${String(r.t).padStart(16, '0')}`;
const sorted = (rs: Reading[]) => [...rs].sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0));

/** Random readings: random datapoints, clustered or irregular times, nulls, negatives, big values. */
function randomReadings(rand: () => number, n: number): Reading[] {
  const out: Reading[] = [];
  const start = CODEC_EPOCH_MS + Math.floor(rand() * 2e11);
  const regular = rand() < 0.5;
  for (let i = 0; i < n; i++) {
    const dp = table.datapoints[Math.floor(rand() * table.datapoints.length)]!;
    const t = regular ? start + i * 60_000 : start + Math.floor(rand() * 86_400_000);
    if (rand() < 0.05) {
      out.push({ id: dp.id, t, v: null, q: rand() < 0.5 ? 'stale' : 'bad' });
      continue;
    }
    const v = dp.type === 'boolean' ? rand() < 0.5 : (rand() - 0.5) * 10 ** Math.floor(rand() * 9);
    out.push({ id: dp.id, t, v });
  }
  return out;
}

t.test('round trip over random data equals the quantised input (500 seeded cases)', async (t) => {
  const codec = new MoCodec(table);
  let failures = 0;
  for (let seed = 1; seed <= 500; seed++) {
    const rand = seeded(seed);
    const input = randomReadings(rand, 1 + Math.floor(rand() * 60));
    const bytes = codec.encode(input, seed, 10_000);
    const decoded = decodeMoMessage(table, bytes);
    const expected = sorted(input.map((r) => codec.quantise(r)));
    if (decoded.seq !== seed || JSON.stringify(sorted(decoded.readings)) !== JSON.stringify(expected)) {
      failures++;
      if (failures < 3) t.same(sorted(decoded.readings), expected, `seed ${seed}`);
    }
  }
  t.equal(failures, 0, 'every seed round-trips');
});

t.test('quantisation keeps the configured precision', async (t) => {
  const codec = new MoCodec(table);
  const t0 = Date.UTC(2025, 5, 1, 12, 0, 0, 400);
  const input: Reading[] = [
    { id: 'site.outdoor.temperature', t: t0, v: 21.456 },
    { id: 'site.outdoor.temperature', t: t0 + 60_000, v: -3.1 },
    { id: 'site.tank.level', t: t0 + 700, v: 0.1 },
  ];
  const out = codec.decode(codec.encode(input, 7)).readings;
  t.same(
    out.find((r) => r.v === 21.46),
    { id: 'site.outdoor.temperature', t: t0 - 400, v: 21.46 },
  );
  t.ok(out.find((r) => r.v === -3.1));
  t.same(
    out.find((r) => r.id === 'site.tank.level'),
    { id: 'site.tank.level', t: t0 + 1000 - 400 + 0, v: 0.1 },
    't rounded to the second, 0.1 stays 0.1',
  );
});

t.test('packPrefix fills a message up to 340 bytes and no further', async (t) => {
  const codec = new MoCodec(table);
  const rand = seeded(42);
  const input = randomReadings(rand, 2000);
  const { bytes, count } = codec.packPrefix(input, 1);
  t.ok(bytes.length <= MAX_MO_BYTES, `${bytes.length} <= 340`);
  t.ok(count > 0 && count < input.length);
  t.ok(codec.encode(input.slice(0, count + 1), 1, 10_000).length > MAX_MO_BYTES, 'one more reading would not fit');
  t.equal(codec.decode(bytes).readings.length, count);
});

t.test('bad input is refused with typed errors', async (t) => {
  const codec = new MoCodec(table);
  const t0 = Date.UTC(2025, 0, 1);
  t.throws(() => codec.encode([], 1), { code: 'IRIDIUM_CODEC' }, 'empty');
  t.throws(() => codec.encode([{ id: 'nope', t: t0, v: 1 }], 1), { code: 'IRIDIUM_CODEC' }, 'unknown datapoint');
  t.throws(() => codec.encode([{ id: 'site.grid.power', t: t0, v: true }], 1), { code: 'IRIDIUM_CODEC' }, 'wrong type');
  t.throws(() => codec.encode([{ id: 'site.grid.power', t: t0, v: Number.NaN }], 1), { code: 'IRIDIUM_CODEC' }, 'NaN');
  t.throws(() => codec.encode([{ id: 'site.tank.level', t: t0, v: 1e20 }], 1), { code: 'IRIDIUM_CODEC' }, 'too large');
  t.throws(() => codec.encode([{ id: 'site.grid.power', t: Date.UTC(2019, 0, 1), v: 1 }], 1), { code: 'IRIDIUM_CODEC' }, 'before the epoch');
  const many = Array.from({ length: 400 }, (_, i) => ({ id: 'site.grid.power', t: t0 + i * 1000, v: (i * 7919) % 100_000 }));
  t.throws(() => codec.encode(many, 1), { code: 'IRIDIUM_MO_SIZE' }, 'over 340 bytes');
  t.throws(() => new MoCodec({ timeResolutionMs: 1000, datapoints: [table.datapoints[0]!, table.datapoints[0]!] }), { code: 'IRIDIUM_CODEC' }, 'duplicate id');

  const good = codec.encode(
    [
      { id: 'site.grid.power', t: t0, v: 5 },
      { id: 'site.grid.power', t: t0 + 1000, v: 6 },
    ],
    3,
  );
  t.throws(() => codec.decode(good.subarray(0, good.length - 1)), { code: 'IRIDIUM_CODEC' }, 'truncated');
  const wrongVersion = Buffer.from(good);
  wrongVersion[0] = 9;
  t.throws(() => codec.decode(wrongVersion), { code: 'IRIDIUM_CODEC' }, 'unknown version');
  const other = new MoCodec({ ...table, datapoints: [...table.datapoints, { id: 'site.extra', decimals: 0, type: 'number' }] });
  t.throws(() => other.decode(good), /fingerprint/, 'a different table is detected');
  const garbage = seeded(9);
  let typed = 0;
  for (let i = 0; i < 200; i++) {
    const junk = Buffer.from(good);
    for (let k = 3; k < junk.length; k++) if (garbage() < 0.3) junk[k] = Math.floor(garbage() * 256);
    try {
      codec.decode(junk);
      typed++;
    } catch (err) {
      if (isOutpostError(err, 'IRIDIUM_CODEC')) typed++;
    }
  }
  t.equal(typed, 200, 'corrupted messages decode or fail with IRIDIUM_CODEC, never crash');
});

t.test('credits: 50-byte units, at least one', async (t) => {
  t.equal(creditsFor(0), 1);
  t.equal(creditsFor(50), 1);
  t.equal(creditsFor(51), 2);
  t.equal(creditsFor(340), 7);
});
