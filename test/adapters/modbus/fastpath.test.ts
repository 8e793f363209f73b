import t from 'tap';
import pino from 'pino';
import type { AdapterContext } from '../../../runtime/adapter.js';
import { systemClock } from '../../../core/clock.js';
import { ModbusBus } from '../../../adapters/modbus/bus.js';
import { REGISTER_TYPES, WORD_ORDERS, compileDecoder, decodeRaw, registerCount } from '../../../adapters/modbus/codec.js';
import { DevicePoller } from '../../../adapters/modbus/device.js';
import { decodePoint, roundToPrecision } from '../../../adapters/modbus/mapping.js';
import { planReads } from '../../../adapters/modbus/planner.js';
import { ModbusSimulator } from '../../../adapters/modbus/simulator.js';
import { loadTemplates, resolvePoints } from '../../../adapters/modbus/templates.js';
import { TcpLink } from '../../../adapters/modbus/transport-tcp.js';
import { mulberry32 } from '../../helpers/rng.js';

const prng = mulberry32;

t.test('compiled decoders give what decodeRaw gives, for every type and word order', async (t) => {
  const rnd = prng(42);
  let compared = 0;
  for (const type of REGISTER_TYPES) {
    for (const order of WORD_ORDERS) {
      const length = type === 'string' ? 5 : registerCount(type);
      const decode = compileDecoder(type, order, length);
      for (let i = 0; i < 2000; i++) {
        // A block with the value at an offset, and the edge images (0x0000, 0x8000, 0xFFFF) often.
        const words = Array.from({ length: length + 3 }, () => {
          const r = rnd();
          return r < 0.1 ? 0 : r < 0.2 ? 0x8000 : r < 0.3 ? 0xffff : Math.floor(rnd() * 0x10000);
        });
        const expected = decodeRaw(words.slice(2, 2 + length), type, order);
        const actual = decode(words, 2);
        if (!Object.is(actual, expected) && !(Number.isNaN(actual) && Number.isNaN(expected))) {
          t.fail(
            `${type} ${order} ${words
              .slice(2, 2 + length)
              .map((w) => w.toString(16))
              .join(' ')}: ${String(actual)} vs ${String(expected)}`,
          );
          return;
        }
        compared++;
      }
    }
  }
  t.equal(compared, REGISTER_TYPES.length * WORD_ORDERS.length * 2000, 'all compared equal');
});

t.test('roundToPrecision is Number(x.toPrecision(d)) without the string', async (t) => {
  const rnd = prng(7);
  const f32 = new DataView(new ArrayBuffer(4));
  const check = (x: number, d: number): boolean => Object.is(roundToPrecision(x, d), Number(x.toPrecision(d)));
  const bad: string[] = [];
  // float32 register images (any bit pattern) at 7 digits, as SDM and EM meters send them.
  for (let i = 0; i < 200_000; i++) {
    f32.setUint32(0, Math.floor(rnd() * 0x1_0000_0000));
    const x = f32.getFloat32(0);
    if (!check(x, 7)) bad.push(`${x} @7`);
  }
  // Scaled integers at 12 digits (raw × 0.1, × 0.01, × 10^sf + offset).
  const scales = [0.1, 0.01, 0.001, 0.5, 0.25, 1e-4, 10, 1e-6, 0.2];
  for (let i = 0; i < 200_000; i++) {
    const raw = Math.floor((rnd() - 0.5) * 2 ** (1 + Math.floor(rnd() * 48)));
    const x = raw * scales[i % scales.length]! + (i % 7 === 0 ? -273.15 : 0);
    if (!check(x, 12)) bad.push(`${x} @12`);
  }
  // Edges: zero and negative zero, ties, powers of ten and their neighbours, outside 10^0..10^22.
  const edges = [
    0,
    -0,
    0.5,
    2.5,
    -2.5,
    1.0000005,
    9999999.5,
    99999995,
    1e22,
    1e23,
    1e-30,
    5e-324,
    1.7976931348623157e308,
    Infinity,
    -Infinity,
    NaN,
    123456789012345,
    1e7,
    1e6,
    999999.95,
  ];
  for (const x of edges) for (const d of [7, 12]) if (!check(x, d)) bad.push(`${x} @${d}`);
  for (let k = -20; k <= 25; k++)
    for (const m of [1, 1 - 1e-15, 1 + 1e-15]) for (const d of [7, 12]) if (!check(m * 10 ** k, d)) bad.push(`${m * 10 ** k} @${d}`);
  t.same(bad, [], 'no value differs');
});

t.test('decodePoint keeps its results (sentinels, NaN, scale factors) through the compiled path', async (t) => {
  const [v, e, s, _sf, n] = resolvePoints(
    [
      { name: 'v', address: 0, type: 'float32' },
      { name: 'e', address: 2, type: 'uint32', wordOrder: 'CDAB', scale: 0.1, nan: [0xffffffff] },
      { name: 's', address: 4, type: 'int16', scaleFactor: 'sf', nan: [0x8000] },
      { name: 'sf', address: 5, type: 'int16', internal: true },
      { name: 'n', address: 6, type: 'int64', nan: [-1] },
    ],
    { function: 'holding' },
    'test',
  );
  const words = [0x4366, 0x1999, 0x3039, 0x0000, 0xfff6, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff];
  t.same(decodePoint(v!, { address: 0, words }), { v: 230.1 });
  t.same(decodePoint(e!, { address: 0, words }), { v: 1234.5 }, 'CDAB, scaled and rounded to 12 digits');
  t.same(decodePoint(e!, { address: 0, words: [0, 0, 0xffff, 0xffff] }), { v: null, q: 'bad' }, 'uint32 sentinel');
  t.same(decodePoint(s!, { address: 0, words }, new Map([['sf', -1]])), { v: -1 });
  t.same(decodePoint(s!, { address: 0, words }, new Map([['sf', 11]])), { v: null, q: 'bad' }, 'scale factor out of -10..10');
  t.same(decodePoint(n!, { address: 0, words }), { v: null, q: 'bad' }, 'int64 sentinel compared as bigint');
  t.same(decodePoint(v!, { address: 0, words: [0x7fc0, 0] }), { v: null, q: 'bad' }, 'float NaN');
  t.throws(() => decodePoint(e!, { address: 0, words: [1, 2, 3] }), { code: 'MODBUS_FRAME' }, 'short response');
});

t.test('one storage batch per poll cycle, with every point of the SDM630 in it', async (t) => {
  const sim = new ModbusSimulator({ devices: [{ unit: 1, template: 'eastron-sdm630' }] });
  t.teardown(() => sim.close());
  const port = await sim.listenTcp({ port: 0 });
  const template = loadTemplates().get('eastron-sdm630')!;
  const sensors = template.points.filter((p) => p.kind === 'sensor');
  const batches: Array<Array<{ id: string; v: unknown }>> = [];
  const ctx = {
    id: 'mb',
    log: pino({ level: 'silent' }),
    clock: systemClock,
    datapoints: { register: async () => [] },
    bus: { publishValues: async (points: Array<{ id: string; v: unknown }>) => batches.push(points), publishValue: async () => ({}) },
    setStatus: () => undefined,
    fail: (err: unknown) => t.fail(String(err)),
  } as unknown as AdapterContext;
  const link = new TcpLink({ host: '127.0.0.1', port, maxInFlight: 1, connectTimeoutMs: 1000, reconnectMs: 100 });
  const bus = new ModbusBus(link);
  t.teardown(() => link.close());
  const poller = new DevicePoller(
    ctx,
    bus,
    {
      name: 'm',
      bus: 'b',
      unit: 1,
      prefix: 'mb.m',
      model: template.model,
      interval: 50,
      timeoutMs: 1000,
      maxRegisters: template.maxRegisters,
      maxGap: template.maxGap,
      backoff: { initialMs: 100, maxMs: 100 },
      points: sensors,
    },
    () => undefined,
  );
  await poller.start();
  while (poller.status.cycles < 5) await new Promise((r) => setTimeout(r, 20));
  await poller.stop();
  const requestsPerCycle = planReads(sensors, template).length;
  t.equal(batches.length, poller.status.cycles, 'one batch per cycle, not one per read');
  // stop() may cut one cycle short after its reads were queued: that one is not counted as a cycle.
  const unfinished = poller.status.requests - poller.status.cycles * requestsPerCycle;
  t.ok(
    unfinished === 0 || unfinished === requestsPerCycle,
    `${requestsPerCycle} coalesced reads per cycle (${poller.status.requests} reads, ${poller.status.cycles} cycles)`,
  );
  for (const b of batches) {
    t.equal(b.length, sensors.length);
    t.ok(
      b.every((p) => typeof p.v === 'number'),
      'all decoded',
    );
  }
  t.same(new Set(batches[0]!.map((p) => p.id)), new Set(sensors.map((p) => `mb.m.${p.name}`)));
});
