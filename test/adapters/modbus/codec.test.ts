import t from 'tap';
import { bigEndianToWords, crc16, decodeRaw, encodeRaw, isSentinel, normaliseSentinels, wordsToBigEndian } from '../../../adapters/modbus/codec.js';
import { decodePoint, encodePoint } from '../../../adapters/modbus/mapping.js';
import { resolvePoints } from '../../../adapters/modbus/templates.js';

t.test('word orders of a 32-bit value 0xAABBCCDD', async (t) => {
  // The four layouts as they appear on the wire, register by register.
  const wire = { ABCD: [0xaabb, 0xccdd], CDAB: [0xccdd, 0xaabb], BADC: [0xbbaa, 0xddcc], DCBA: [0xddcc, 0xbbaa] } as const;
  for (const [order, words] of Object.entries(wire)) {
    t.equal(decodeRaw(words, 'uint32', order as keyof typeof wire), 0xaabbccdd, order);
    t.same(encodeRaw(0xaabbccdd, 'uint32', order as keyof typeof wire), words, `${order} encode`);
    t.same(bigEndianToWords(wordsToBigEndian(words, order as keyof typeof wire), order as keyof typeof wire), words, `${order} round trip`);
  }
});

t.test('float32 ABCD as an SDM630 sends 230.1 V', async (t) => {
  const b = Buffer.alloc(4);
  b.writeFloatBE(230.1);
  const words = [b.readUInt16BE(0), b.readUInt16BE(2)];
  t.ok(Math.abs((decodeRaw(words, 'float32', 'ABCD') as number) - 230.1) < 1e-4);
  t.same(encodeRaw(230.1, 'float32', 'ABCD'), words);
});

t.test('64-bit, signed and string registers', async (t) => {
  t.equal(decodeRaw([0, 0, 0x0001, 0x0000], 'uint64', 'ABCD'), 65536n);
  t.equal(decodeRaw([0x0000, 0x0001, 0, 0], 'uint64', 'CDAB'), 65536n);
  t.equal(decodeRaw([0xffff], 'int16', 'ABCD'), -1);
  t.equal(decodeRaw([0xffff, 0xfffe], 'int32', 'ABCD'), -2);
  t.equal(decodeRaw([0x4f75, 0x7470, 0x6f73, 0x7400, 0], 'string', 'ABCD'), 'Outpost');
  const d = Buffer.alloc(8);
  d.writeDoubleBE(-1234.5678);
  t.equal(decodeRaw([d.readUInt16BE(0), d.readUInt16BE(2), d.readUInt16BE(4), d.readUInt16BE(6)], 'float64', 'ABCD'), -1234.5678);
  t.same(encodeRaw(-2, 'int16', 'CDAB'), [0xfffe]);
});

t.test('encoding refuses values the register cannot hold', async (t) => {
  t.throws(() => encodeRaw(70000, 'uint16', 'ABCD'), { code: 'SETPOINT_OUT_OF_RANGE' });
  t.throws(() => encodeRaw(-1, 'uint32', 'ABCD'), { code: 'SETPOINT_OUT_OF_RANGE' });
  t.throws(() => encodeRaw(1.5, 'int16', 'ABCD'), { code: 'SETPOINT_OUT_OF_RANGE' });
});

t.test('sentinels compare on the register image', async (t) => {
  t.ok(isSentinel(-32768, normaliseSentinels('int16', [0x8000])));
  t.ok(isSentinel(0xffff, [0xffff]));
  t.notOk(isSentinel(0x7fff, normaliseSentinels('int16', [0x8000])));
  t.notOk(isSentinel(5, undefined));
});

t.test('CRC-16/MODBUS of a known frame', async (t) => {
  // Read holding registers, unit 1, address 0, count 10: 01 03 00 00 00 0A C5 CD
  t.equal(crc16(Buffer.from([0x01, 0x03, 0x00, 0x00, 0x00, 0x0a])), 0xcdc5);
});

t.test('points: scale, offset, scale-factor register, sentinels, bits', async (t) => {
  const points = resolvePoints(
    [
      { name: 'v', address: 0, function: 'holding', type: 'int32', wordOrder: 'CDAB', scale: 0.1 },
      { name: 'w', address: 2, function: 'holding', type: 'int16', scaleFactor: 'w_sf', nan: [0x8000] },
      { name: 'w_sf', address: 3, function: 'holding', type: 'int16', internal: true },
      { name: 't', address: 4, function: 'holding', type: 'int16', scale: 0.5, offset: -40 },
      { name: 'flag', address: 5, function: 'holding', type: 'bool', bit: 3 },
      { name: 'relay', address: 7, function: 'coil', kind: 'actuator' },
      { name: 'sp', address: 6, function: 'holding', type: 'uint16', scale: 0.1, kind: 'actuator', min: 10, max: 30 },
    ],
    {},
    'inline',
  );
  const [v, w, , temp, flag, relay, sp] = points as [
    (typeof points)[0],
    (typeof points)[0],
    unknown,
    (typeof points)[0],
    (typeof points)[0],
    (typeof points)[0],
    (typeof points)[0],
  ];
  const words = [2301, 0, 123, 0xffff, 100, 0b1000, 215];
  t.same(decodePoint(v, { address: 0, words }), { v: 230.1 });
  t.same(decodePoint(w, { address: 0, words }, new Map([['w_sf', -1]])), { v: 12.3 });
  t.same(decodePoint(w, { address: 0, words: [0, 0, 0x8000] }, new Map([['w_sf', -1]])), { v: null, q: 'bad' }, 'sentinel is bad, not a number');
  t.same(decodePoint(w, { address: 0, words }, new Map([['w_sf', null]])), { v: null, q: 'bad' }, 'missing scale factor is bad');
  t.same(decodePoint(temp, { address: 0, words }), { v: 10 });
  t.same(decodePoint(flag, { address: 0, words }), { v: true });
  t.same(decodePoint(relay, { address: 7, bits: [true] }), { v: true });
  t.same(encodePoint(sp, 21.5), { words: [215] });
  t.throws(() => encodePoint(sp, 21.55), { code: 'SETPOINT_OUT_OF_RANGE' }, 'value between two register steps is refused, not rounded');
  t.same(encodePoint(relay, false), { bit: false });
  t.throws(() => encodePoint(relay, 1), { code: 'VALUE_TYPE' });
});

t.test('float32 NaN from a meter is published as bad', async (t) => {
  const [p] = resolvePoints([{ name: 'x', address: 0, function: 'input', type: 'float32' }], {}, 'inline');
  t.same(decodePoint(p!, { address: 0, words: [0x7fc0, 0] }), { v: null, q: 'bad' });
});
