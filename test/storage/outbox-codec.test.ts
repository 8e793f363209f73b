/**
 * The outbox value of one commit (storage/level/outbox-codec.ts): binary times and values, ids and
 * non-numeric records as JSON; values written by earlier versions (JSON rows) still read.
 */
import t from 'tap';
import { OutboxEncoder, decodeOutbox, type OutboxRow } from '../../storage/level/outbox-codec.js';
import type { Value } from '../../core/datapoint.js';
import { mulberry32 } from '../helpers/rng.js';

const T0 = Date.UTC(2026, 0, 5);

function encode(rows: OutboxRow[], encoder = new OutboxEncoder()): Buffer {
  encoder.reset();
  const index = new Map<string, number>();
  for (const [id, t, v, q] of rows) {
    let i = index.get(id);
    if (i === undefined) index.set(id, (i = encoder.addId(id)));
    encoder.add(i, t, v, q);
  }
  return encoder.encode();
}

t.test('records come back in order with every kind of value and quality', async (t) => {
  const rows: OutboxRow[] = [
    ['a.power', T0, 12.5],
    ['b.state', T0 + 1, 'ON "quoted" \u2028 line'],
    ['a.power', T0 + 2, -0.000001],
    ['c.flag', T0 + 3, true],
    ['d.obj', T0 + 4, { nested: [1, 2, { x: null }] }],
    ['a.power', T0 + 5, null],
    ['a.power', T0 + 6, 7, 'stale'],
    ['e.big', T0 + 7, 1.7976931348623157e308],
    ['e.big', T0 + 8, 5e-324, 'bad'],
  ];
  t.same(decodeOutbox(encode(rows)), rows);
});

t.test('odd and even record counts, growing past the initial capacity, an encoder reused', async (t) => {
  const random = mulberry32(7);
  const encoder = new OutboxEncoder();
  for (const n of [1, 2, 3, 1023, 1024, 1025, 5001]) {
    const rows: OutboxRow[] = Array.from({ length: n }, (_, i) => {
      const v: Value = random() < 0.1 ? `s${i}` : Math.round(random() * 1e6) / 100;
      return [`m${Math.floor(random() * 50)}.v`, T0 + i * 1000, v];
    });
    const value = encode(rows, encoder);
    t.same(decodeOutbox(value), rows, `${n} records`);
    t.equal(encoder.count, n);
  }
});

t.test('values written by earlier versions: the same layout as text, JSON rows, and one row per key (as text and as their UTF-8 bytes on disk)', async (t) => {
  const rows: OutboxRow[] = [
    ['a', T0, 1.25],
    ['b', T0 + 1, 'x ü', 'bad'],
    ['a', T0 + 2, -3],
  ];
  const bytes = encode(rows);
  t.equal(bytes[0], 9, 'bytes (marker 9)');
  // The version before: marker 4, the binary part as latin1 characters, then the JSON as it is.
  const n = rows.length;
  const binaryEnd = 8 + 16 * n + 4 * n + ((4 * n) % 8);
  const head = Buffer.from(bytes.subarray(0, binaryEnd));
  head[0] = 4;
  const text = head.toString('latin1') + bytes.toString('utf8', binaryEnd);
  t.same(decodeOutbox(text), rows, 'text layout (marker 4)');
  t.same(decodeOutbox(Buffer.from(text, 'utf8')), rows, 'text layout read from disk as bytes');
  const json = JSON.stringify([
    ['a', T0, 1],
    ['b', T0 + 1, 'x', 'bad'],
  ]);
  t.same(decodeOutbox(json), [
    ['a', T0, 1],
    ['b', T0 + 1, 'x', 'bad'],
  ]);
  t.same(decodeOutbox(Buffer.from(json, 'utf8')), [
    ['a', T0, 1],
    ['b', T0 + 1, 'x', 'bad'],
  ]);
  t.same(decodeOutbox(JSON.stringify(['a', T0, 2])), [['a', T0, 2]]);
});

t.test('non-finite numbers are stored as null, as JSON would', async (t) => {
  t.same(
    decodeOutbox(
      encode([
        ['a', T0, Number.NaN],
        ['a', T0 + 1, Number.POSITIVE_INFINITY],
      ]),
    ),
    [
      ['a', T0, null],
      ['a', T0 + 1, null],
    ],
  );
});
