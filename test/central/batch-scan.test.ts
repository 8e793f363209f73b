/**
 * The batch scanner (central/ingest/batch-scan.ts) against the general way it stands in for —
 * JSON.parse through `decodeBatch`, then the record checks (records.ts): on the link's own
 * batches, on hand-written edge cases of JSON numbers, ids and layout, and on thousands of
 * randomly damaged batches. Whatever the scanner accepts must be what the general way accepts,
 * stores and refuses nothing of, record for record and bit for bit; everything else it must
 * leave to the general way.
 */
import t, { type Test } from 'tap';
import { checkRecords } from '../../central/ingest/records.js';
import { decodeIngestBatch, scanBatch } from '../../central/ingest/batch-scan.js';
import { internId, type RecordColumns } from '../../central/store/record-columns.js';
import { batchToJson, decodeBatch } from '../../runtime/sync/codec.js';
import type { Batch } from '../../runtime/sync/link.js';
import { mulberry32 } from '../helpers/rng.js';

const SEED = Number(process.env.OUTPOST_TEST_SEED ?? 20261207);
const random = mulberry32(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;

/** A record as text, -0 told from 0, every double exactly (String round-trips). */
const show = (c: RecordColumns, i: number): string => {
  const v = c.value(i);
  return `${c.seq(i)}|${c.id(i)}|${c.t(i)}|${Object.is(v, -0) ? '-0' : typeof v === 'number' ? String(v) : JSON.stringify(v)}|${c.quality(i) ?? ''}`;
};

/** The general way's answer: the records it would store, or the error it throws. */
function general(json: Buffer): { header: string; records: string[]; refused: number } | { error: string } {
  try {
    const batch = decodeBatch(json);
    const { records, refused } = checkRecords(batch, false);
    const { records: _all, ...header } = batch;
    return { header: JSON.stringify(header), records: Array.from({ length: records.length }, (_, i) => show(records, i)), refused: refused.length };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** Compares one input both ways; answers whether the scanner took it. */
function agree(t: Test, json: Buffer, what: string): boolean {
  const scanned = scanBatch(json);
  if (scanned === undefined) return false;
  const expected = general(json);
  const { columns, ...header } = scanned;
  const got = { header: JSON.stringify(header), records: Array.from({ length: columns.length }, (_, i) => show(columns, i)), refused: 0 };
  if (JSON.stringify(got) !== JSON.stringify(expected))
    t.same(got, expected, `${what}: the scanner and the general way agree`, { json: json.toString('latin1').slice(0, 400) });
  return true;
}

const IDS = ['a', 'plant.meter.power', 'bench.dp001', 'x-1_2.3', 'z'.repeat(128), '0'];
const NUMBERS = [
  0,
  -0,
  1,
  -1,
  0.1,
  230.45000000000002,
  5e-324,
  1.7976931348623157e308,
  1e21,
  1e-7,
  123456789012345680000,
  2 ** 53,
  -(2 ** 53) - 2,
  0.3,
  1 / 3,
  12.5,
  -499.9,
];

function randomNumber(): number {
  switch (Math.floor(random() * 5)) {
    case 0:
      return pick(NUMBERS);
    case 1:
      return Math.round((random() - 0.5) * 1e6) / 10 ** Math.floor(random() * 8);
    case 2:
      return Math.floor(random() * 2 ** 40) - 2 ** 39;
    case 3: {
      // Any finite double, from random bits.
      const bytes = new DataView(new ArrayBuffer(8));
      for (;;) {
        bytes.setUint32(0, Math.floor(random() * 2 ** 32));
        bytes.setUint32(4, Math.floor(random() * 2 ** 32));
        const v = bytes.getFloat64(0);
        if (Number.isFinite(v)) return v;
      }
    }
    default:
      return (random() - 0.5) * 10 ** Math.floor(random() * 40 - 20);
  }
}

function linkBatch(n: number, values: () => unknown = randomNumber): Buffer {
  const first = 1 + Math.floor(random() * 1e9);
  const records = Array.from({ length: n }, (_, k) => {
    const q = random() < 0.2 ? pick(['stale', 'bad'] as const) : undefined;
    return { seq: first + k, id: pick(IDS), t: 1_700_000_000_000 + Math.floor(random() * 1e9), v: values() as number, ...(q ? { q } : {}) };
  });
  const batch: Batch = { key: `site-1:${first}-${first + n - 1}`, gatewayId: 'site-1', first, last: first + n - 1, records, lane: 'history' };
  return Buffer.from(batchToJson(batch));
}

t.test("the link's own batches are scanned, exactly as JSON.parse and the checks read them", async (t) => {
  let scanned = 0;
  for (let k = 0; k < 500; k++) if (agree(t, linkBatch(1 + Math.floor(random() * 120)), `batch ${k}`)) scanned++;
  t.equal(scanned, 500, 'every one of them by the scanner');
  t.ok(agree(t, linkBatch(0), 'empty'), 'an empty batch too');
  const columns = scanBatch(linkBatch(50))!.columns;
  t.equal(columns.id(0), internId(columns.id(0)), "ids are the process's one string each (record-columns.ts internId)");
  t.equal(Object.hasOwn(decodeIngestBatch(linkBatch(3)), 'columns'), true, 'decodeIngestBatch takes the scanner when it can');
});

t.test('records of other values, or that the checks refuse, go the general way', async (t) => {
  for (const value of ['on', null, true, { a: 1 }, [1, 2], '']) {
    const json = linkBatch(5, () => value);
    t.equal(scanBatch(json), undefined, `v ${JSON.stringify(value)}: not scanned`);
    t.equal('columns' in decodeIngestBatch(json), false, '…and decoded by JSON.parse');
  }
  const base = '{"format":1,"gw":"site-1","key":"site-1:1-1","first":1,"last":1,"lane":"history","records":';
  const cases: Record<string, boolean> = {
    '[[1,"a",2,3]]}': true,
    '[[1,"a",2,3,"stale"]]}': true,
    '[[1,"a",2,3,"bad"],[2,"b",3,-0.0]]}': true,
    '[[1,"a",2,1E5],[2,"a",3,1e+5],[3,"a",4,1e-5],[4,"a",5,0e999],[5,"a",6,-0],[6,"a",7,2.5e-308]]}': true,
    '[[1,"a",2,0.1234567890123456789],[2,"a",3,1234567890123456789012],[3,"a",4,4.9e-324]]}': true,
    [`[[1,"${'a'.repeat(128)}",2,3]]}`]: true,
    '[[0,"a",0,0]]}': true,
    '[[999999999999999,"a",999999999999999,1]]}': true,
    // Not scanned: the general way decides (refuses the record, or the batch, or stores it).
    '[[1,"a",2,1e400]]}': false,
    '[[1,"a",2,01]]}': false,
    '[[01,"a",2,1]]}': false,
    '[[1,"a",2,1.]]}': false,
    '[[1,"a",2,.5]]}': false,
    '[[1,"a",2,+1]]}': false,
    '[[1,"a",2,-]]}': false,
    '[[-0,"a",2,1]]}': false,
    '[[1.0,"a",2,1]]}': false,
    '[[1,"a",2e3,1]]}': false,
    '[[9007199254740991,"a",2,1]]}': false,
    '[[1,"a",1000000000000000,1]]}': false,
    '[[1,"A",2,1]]}': false,
    '[[1,"\\u0061",2,1]]}': false,
    '[[1,"",2,1]]}': false,
    [`[[1,"${'a'.repeat(129)}",2,1]]}`]: false,
    '[[1,"a",2,1,"good"]]}': false,
    '[[1,"a",2,1,null]]}': false,
    '[[1,"a",2,1,"stale",3]]}': false,
    '[[1,"a",2]]}': false,
    '[[1, "a",2,1]]}': false,
    '[[1,"a",2,1]] }': false,
    '[[1,"a",2,1]]}\n': false,
    '[[1,"a",2,1]],"records":[]}': false,
    '[[1,"a",2,1],]}': false,
    '[[1,"a",2,1]]': false,
    '[[1,"a",2,1]]}}': false,
  };
  for (const [tail, scannable] of Object.entries(cases)) {
    const json = Buffer.from(base + tail);
    t.equal(agree(t, json, tail), scannable, `${tail}: ${scannable ? 'scanned' : 'left to the general way'}`);
  }
  // The key somewhere else than at the top level, or the header not one the checks accept.
  for (const text of [
    '{"records":[[1,"a",2,3]],"format":1,"gw":"site-1","key":"site-1:1-1","first":1,"last":1,"lane":"history"}',
    '{"format":1,"gw":"site-1","key":"site-1:1-1","first":1,"last":1,"x":{"records":[[1,"a",2,3]]},"lane":"history","records":[]}',
    '{"format":2,"gw":"site-1","key":"site-1:1-1","first":1,"last":1,"lane":"history","records":[[1,"a",2,3]]}',
    '{"format":1,"gw":"site-1","key":"site-1:1-1","first":1,"last":1.5,"lane":"history","records":[[1,"a",2,3]]}',
  ])
    t.equal(agree(t, Buffer.from(text), text), false, `${text.slice(0, 60)}…: left to the general way`);
  // Found by a review: a key that only ends in `"records":[` after the real records (written
  // so that the byte search misses them), and an exponent of many digits.
  t.equal(
    agree(
      t,
      Buffer.from('{"format":1,"gw":"site-1","key":"site-1:1-1","first":1,"last":1,"lane":"history","records": [],"x\\"records":[[1,"a",5,1.5]]}'),
      'a key ending in "records"',
    ),
    false,
    'a key that only ends in "records": left to the general way (which stores no record)',
  );
  t.equal(
    agree(t, Buffer.from(`${base}[[1,"a",2,0.${'0'.repeat(99_999)}7e1000000]]}`), 'long exponent'),
    false,
    '0.(99,999 zeros)7e1000000 is Infinity to JSON.parse: refused by the checks, not read as 7',
  );
  t.equal(
    agree(t, Buffer.from(`${base}[[1,"a",2,0.${'0'.repeat(40)}7e45]]}`), 'cancelling exponent'),
    true,
    'a long number whose exponents cancel: Number() reads it',
  );
  // More records than the first room (256), qualities past it.
  const many = Array.from({ length: 700 }, (_, k) => `[${k},"a",${k},${k / 8}${k % 3 === 0 ? ',"bad"' : ''}]`).join(',');
  t.equal(agree(t, Buffer.from(`${base}[${many}]}`), '700 records'), true, '700 records with qualities: scanned, the same');
  t.equal(
    agree(t, Buffer.from('{"lane":"priority","last":1,"first":1,"key":"site-1:1-1","gw":"site-1","format":1,"records":[[1,"a",2,3]]}'), 'fields reordered'),
    true,
    'header fields in any order',
  );
});

t.test('randomly damaged batches: whatever the scanner takes, the general way stores the same', async (t) => {
  let scanned = 0;
  let damaged = 0;
  const ALPHABET = Buffer.from('0123456789-+.eE",[]{} az\\');
  for (let k = 0; k < 4000; k++) {
    const bytes = [...linkBatch(1 + Math.floor(random() * 8))];
    for (let m = 1 + Math.floor(random() * 3); m > 0; m--) {
      const at = Math.floor(random() * bytes.length);
      const op = random();
      if (op < 0.4) bytes[at] = pick([...ALPHABET]);
      else if (op < 0.7) bytes.splice(at, 1);
      else bytes.splice(at, 0, pick([...ALPHABET]));
    }
    const json = Buffer.from(bytes);
    if (agree(t, json, `damaged ${k}`)) scanned++;
    else damaged++;
  }
  t.comment(`seed ${SEED}: ${scanned} damaged batches still scannable (compared), ${damaged} left to the general way`);
  t.ok(scanned > 100 && damaged > 100, 'both kinds met');
});
