/**
 * Text encodings of exports (adapters/bms-files/lines.ts ExportDecoder): UTF-16 LE/BE with
 * their byte-order mark, as Windows "Unicode" exports are written, read like the UTF-8
 * originals, however the stream is cut into chunks; UTF-16 without a BOM and UTF-32 are
 * refused with what to export instead; the long-line error names its line once.
 */
import t from 'tap';
import { copyFile, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import bmsFiles from '../../../adapters/bms-files/index.js';
import { AlcParser, alcOptionsSchema } from '../../../adapters/bms-files/alc-webctrl.js';
import { readLines } from '../../../adapters/bms-files/lines.js';
import { InsightParser } from '../../../adapters/bms-files/siemens-insight.js';
import { isOutpostError } from '../../../core/errors.js';
import { eventually, startTestGateway } from '../../helpers/gateway.js';
import { FIXTURES, parseAll } from './helpers.js';
import { tempDir } from '../../helpers/teardown.js';

const CHICAGO = 'America/Chicago';
const insight = () => new InsightParser({ timeZone: CHICAGO });
const alc = () => new AlcParser(alcOptionsSchema.parse({}), CHICAGO);

async function lines(chunks: Array<Buffer | string>, max?: number): Promise<string[]> {
  const out: string[] = [];
  for await (const l of readLines(Readable.from(chunks), max)) out.push(l);
  return out;
}

/** `buf` cut into pieces of `size` bytes. */
function cut(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

const le = (s: string): Buffer => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(s, 'utf16le')]);
const be = (s: string): Buffer => {
  const b = Buffer.from(s, 'utf16le');
  b.swap16();
  return Buffer.concat([Buffer.from([0xfe, 0xff]), b]);
};

async function refusal(p: Promise<unknown>): Promise<{ message: string; line?: number; reason?: string }> {
  try {
    await p;
  } catch (err) {
    if (!isOutpostError(err)) throw err;
    const d = err.details as { line?: number; reason?: string };
    return { message: err.message, line: d?.line, reason: d?.reason };
  }
  throw new Error('expected a refusal');
}

t.test('the UTF-16LE and UTF-16BE Insight fixtures (BOM, CRLF) parse exactly like the UTF-8 original, whatever the chunking', async (t) => {
  const original = await parseAll(insight(), await readFile(FIXTURES + 'siemens-insight-trend-interval.csv'));
  t.equal(original.rows.length, 16);
  for (const variant of ['utf16le', 'utf16be']) {
    const bytes = await readFile(FIXTURES + `siemens-insight-trend-interval.${variant}.csv`);
    // Odd sizes split code units (and the BOM) across chunks; 65536 is what a file stream gives.
    for (const size of [1, 3, 7, 4096, 65536]) {
      const out = await parseAll(insight(), bytes, size);
      t.same(out.points, original.points, `${variant}, ${size}-byte chunks: the same points`);
      t.same(out.rows, original.rows, `${variant}, ${size}-byte chunks: the same rows, times and values`);
    }
  }
});

t.test('the UTF-16LE and UTF-16BE ALC trend fixtures parse like the UTF-8 one, non-ASCII headers intact', async (t) => {
  const original = await parseAll(alc(), await readFile(FIXTURES + 'alc-webctrl-trend-wide.csv'));
  t.same(
    original.points.map((p) => p.name),
    [
      'Weitz Center/AHU-1/Supply Air Temp (°F)',
      'Weitz Center/AHU-1/Supply Fan Status',
      'Weitz Center/Zähler März/Energy (kWh)',
      'Weitz Center/Room 101/Zone Temp (°F)',
    ],
  );
  t.equal(original.rows.length, 8);
  t.equal(original.rows[0]!.t, Date.UTC(2024, 10, 14, 5), '11/13/2024 11:00:00 PM CST');
  for (const variant of ['utf16le', 'utf16be']) {
    const bytes = await readFile(FIXTURES + `alc-webctrl-trend-wide.${variant}.csv`);
    for (const size of [1, 2, 5, 4096]) {
      const out = await parseAll(alc(), bytes, size);
      t.same(out.points, original.points, `${variant}, ${size}-byte chunks: points`);
      t.same(out.rows, original.rows, `${variant}, ${size}-byte chunks: rows`);
    }
  }
});

t.test('UTF-16 decoding: surrogate pairs and code units split across chunks, all line endings, dangling byte', async (t) => {
  const text = 'Zone 🌡️ Temp,Zähler\r\n1,2\n3,𝄞\rend';
  const want = ['Zone 🌡️ Temp,Zähler', '1,2', '3,𝄞', 'end'];
  for (const [name, enc] of [
    ['LE', le],
    ['BE', be],
  ] as const) {
    const bytes = enc(text);
    for (let size = 1; size <= 9; size++) t.same(await lines(cut(bytes, size)), want, `${name}, ${size}-byte chunks`);
    // A pair split exactly between its two code units, in two reads.
    const pair = bytes.indexOf(enc('🌡').subarray(2)) + 2;
    t.same(await lines([bytes.subarray(0, pair), bytes.subarray(pair)]), want, `${name}: surrogate pair across reads`);
    t.same(
      await lines([Buffer.concat([bytes, Buffer.from([0x41])])]),
      [...want.slice(0, 3), 'end\ufffd'],
      `${name}: a dangling last byte is U+FFFD, not dropped silently`,
    );
  }
  t.same(
    await lines([Buffer.from([0xfe]), Buffer.from([0xff, 0x00]), Buffer.from([0x41, 0x00, 0x0a, 0x00, 0x42])]),
    ['A', 'B'],
    'the BOM decides, even split across reads',
  );
  t.same(await lines([Buffer.from('a\nb')]), ['a', 'b'], 'a file shorter than the sniffed bytes is still read');
  t.same(await lines([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('x,y\n')]), ['x,y'], 'UTF-8 BOM as before');
});

t.test('UTF-16 without a BOM and UTF-32 are refused at line 1 with what to export instead', async (t) => {
  const noBomLE = Buffer.from('"Key  Name:Suffix"\r\n', 'utf16le');
  let r = await refusal(lines([noBomLE]));
  t.equal(r.line, 1);
  t.match(r.reason, /^UTF-16 text without a byte-order mark .*export the report as UTF-8, or as "Unicode" \(UTF-16 with its byte-order mark\)$/);
  t.notMatch(r.reason, /binary data/);
  const noBomBE = Buffer.from('"Key  Name:Suffix"\r\n', 'utf16le').swap16();
  r = await refusal(lines(cut(noBomBE, 1)));
  t.match(r.reason, /^UTF-16 text without a byte-order mark/, 'big-endian too, even one byte at a time');
  r = await refusal(lines([Buffer.from([0xff, 0xfe, 0, 0, 0x41, 0, 0, 0])]));
  t.match(r.reason, /^UTF-32 text/);
  // Through a parser, as the importer reads: the same refusal, not "binary data (NUL bytes)".
  r = await refusal(parseAll(insight(), noBomLE));
  t.match(r.message, /^line 1: UTF-16 text without a byte-order mark/);
});

t.test('the long-line error says "line N:" once; its reason (.error.txt, history) has no line prefix', async (t) => {
  const r = await refusal(lines(['ok\n', 'y'.repeat(100)], 10));
  t.equal(r.message, 'line 2: longer than 10 characters (binary data or not a CSV export)');
  t.equal(r.line, 2);
  t.equal(r.reason, 'longer than 10 characters (binary data or not a CSV export)', 'the dashboard and .error.txt add "line 2: " themselves');
  const first = await refusal(lines(['z'.repeat(50) + '\n'], 10));
  t.equal(first.message, 'line 1: longer than 10 characters (binary data or not a CSV export)');
});

t.test('real process: UTF-16LE and UTF-16BE Insight exports dropped into a folder are imported, not refused', async (t) => {
  const drop = await tempDir(t, 'outpost-bms-utf16-');
  const gw = await startTestGateway(
    t,
    {
      gateway: { timezone: CHICAGO },
      adapters: [
        {
          id: 'insight',
          type: 'bms-files',
          format: 'siemens-insight',
          dropDir: drop,
          pollMs: 30,
          stableMs: 100,
          points: [{ exact: 'OATEMP', id: 'weitz.oat' }],
        },
      ],
    },
    { types: [bmsFiles as never] },
  );
  await copyFile(FIXTURES + 'siemens-insight-trend-interval.utf16le.csv', join(drop, 'weitz-unicode-le.csv'));
  await copyFile(FIXTURES + 'siemens-insight-trend-interval.utf16be.csv', join(drop, 'weitz-unicode-be.csv'));
  const info = async (): Promise<Record<string, unknown> & { files: number; failures: number; rows: number }> => {
    const items = (
      (await (await fetch(`${gw.httpUrl}/api/adapters`)).json()) as {
        items: Array<{ id: string; info: Record<string, unknown> & { files: number; failures: number; rows: number } }>;
      }
    ).items;
    return items.find((i) => i.id === 'insight')!.info;
  };
  await eventually(async () => (await info()).files + (await info()).failures === 2, 60_000, 50);
  const i = await info();
  t.equal(i.failures, 0, `nothing refused (${JSON.stringify(i.lastFailure)})`);
  t.equal(i.rows, 32, 'both files: 16 rows each');
  t.same((await readdir(join(drop, 'archive'))).sort(), ['weitz-unicode-be.csv', 'weitz-unicode-le.csv']);
  const v = (await (await fetch(`${gw.httpUrl}/api/datapoints/weitz.oat/values?from=2017-01-01T00:00:00Z&to=2019-01-01T00:00:00Z`)).json()) as {
    values: unknown[];
  };
  t.equal(v.values.length, 16, 'the same 16 readings (the second file overwrites the first)');
});
