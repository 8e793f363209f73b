import t from 'tap';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { InsightParser } from '../../../adapters/bms-files/siemens-insight.js';
import { readLines } from '../../../adapters/bms-files/lines.js';
import { splitCsvLine } from '../../../adapters/bms-files/csv.js';
import { ZoneConverter, pickInstant } from '../../../adapters/bms-files/localtime.js';
import { CellReader } from '../../../adapters/bms-files/report.js';
import { isOutpostError } from '../../../core/errors.js';
import { FIXTURES, parseAll, reportText } from './helpers.js';

const CHICAGO = 'America/Chicago';
const parser = () => new InsightParser({ timeZone: CHICAGO });

async function lines(input: Array<string | Buffer>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of readLines(Readable.from(input))) out.push(l);
  return out;
}

t.test('line splitter: CRLF, LF, CR-only, CR|LF across chunks, BOM, multi-byte UTF-8 across chunks', async (t) => {
  t.same(await lines(['a\r\nb\r\nc']), ['a', 'b', 'c']);
  t.same(await lines(['a\nb\n']), ['a', 'b']);
  t.same(await lines(['a\rb\rc\r']), ['a', 'b', 'c']);
  t.same(await lines(['a\r', '\nb\r', 'c']), ['a', 'b', 'c'], 'CR at a chunk end followed by LF is one break');
  t.same(await lines(['a\r\n\r\nb']), ['a', '', 'b'], 'an empty line stays a line');
  t.same(await lines([Buffer.from([0xef, 0xbb]), Buffer.from([0xbf, 0x78, 0x0a])]), ['x'], 'BOM split across chunks is removed');
  const euro = Buffer.from('€\n');
  t.same(await lines([euro.subarray(0, 1), euro.subarray(1)]), ['€']);
  await t.rejects(
    lines(['x'.repeat(100)]).then(() => readLinesWithMax('y'.repeat(100), 10)),
    /longer than 10 characters/,
  );
});

async function readLinesWithMax(text: string, max: number): Promise<string[]> {
  const out: string[] = [];
  for await (const l of readLines(Readable.from([text]), max)) out.push(l);
  return out;
}

t.test('CSV line splitting: quotes, escaped quotes, blanks around quoted fields, unterminated quote', async (t) => {
  t.same(splitCsvLine('"a","b ""c""",d, e'), ['a', 'b "c"', 'd', ' e']);
  t.same(splitCsvLine('"x","" ,"" ,"" '), ['x', '', '', ''], 'ALC points list style');
  t.same(splitCsvLine('"12/26/2017","00:00:00"," -2.41"'), ['12/26/2017', '00:00:00', ' -2.41']);
  t.same(splitCsvLine(''), ['']);
  t.equal(splitCsvLine('"open,"b"'.slice(0, 6)), undefined);
});

t.test('zone conversion and the DST rule (America/Chicago and Europe/Berlin)', async (t) => {
  const chi = new ZoneConverter(CHICAGO);
  t.same(chi.resolve(2017, 12, 26, 0, 0, 0), { kind: 'exact', t: Date.UTC(2017, 11, 26, 6) }, 'CST is UTC-6');
  t.same(chi.resolve(2023, 7, 1, 12, 0, 0), { kind: 'exact', t: Date.UTC(2023, 6, 1, 17) }, 'CDT is UTC-5');
  // 2023-11-05 02:00 CDT → 01:00 CST: 01:30 happens twice.
  const amb = chi.resolve(2023, 11, 5, 1, 30, 0);
  t.same(amb, { kind: 'ambiguous', earlier: Date.UTC(2023, 10, 5, 6, 30), later: Date.UTC(2023, 10, 5, 7, 30) });
  t.equal(pickInstant(amb, undefined), Date.UTC(2023, 10, 5, 6, 30), 'first pass: daylight time');
  t.equal(pickInstant(amb, Date.UTC(2023, 10, 5, 6, 45)), Date.UTC(2023, 10, 5, 7, 30), 'after 01:45 CDT, a repeated 01:30 is standard time');
  // 2023-03-12 02:00 CST → 03:00 CDT: 02:30 does not exist.
  t.same(chi.resolve(2023, 3, 12, 2, 30, 0), { kind: 'nonexistent' });
  t.equal(pickInstant(chi.resolve(2023, 3, 12, 2, 30, 0), undefined), undefined);
  t.same(chi.resolve(2023, 3, 12, 3, 0, 0), { kind: 'exact', t: Date.UTC(2023, 2, 12, 8) });
  const ber = new ZoneConverter('Europe/Berlin');
  t.same(ber.resolve(2024, 10, 27, 2, 15, 0), { kind: 'ambiguous', earlier: Date.UTC(2024, 9, 27, 0, 15), later: Date.UTC(2024, 9, 27, 1, 15) });
  t.same(ber.resolve(2024, 3, 31, 2, 15, 0), { kind: 'nonexistent' });
});

t.test('value cells: plain numbers padded with blanks, and everything that is not one', async (t) => {
  const cells = new CellReader();
  const cases: Array<[string, number | null | undefined]> = [
    ['12.34', 12.34],
    [' -2.41', -2.41],
    ['  7  ', 7],
    ['+.5', 0.5],
    ['5.', 5],
    ['-0', -0],
    ['1e5', 1e5],
    ['2.5E-3', 0.0025],
    ['1e+2', 100],
    ['1,234.5', 1234.5],
    ['\t3', 3],
    ['', undefined],
    ['   ', undefined],
    ['ON', 1],
    [' off ', 0],
    ['No Data', null],
    ['data loss', null],
    ['.', NaN],
    ['-', NaN],
    ['1e', NaN],
    ['1e+', NaN],
    ['0x10', NaN],
    ['Infinity', NaN],
    ['-Infinity', NaN],
    ['1 2', NaN],
    ['12a', NaN],
    ['1.2.3', NaN],
    ['--1', NaN],
    ['1e5.5', NaN],
    ['١٢', NaN],
  ];
  for (const [cell, want] of cases) t.same(cells.read(cell), want, JSON.stringify(cell));
  t.equal(Object.is(cells.read('-0'), -0), true, '-0 stays negative zero');
  const comma = new CellReader({ decimalComma: true });
  t.equal(comma.read(' 1.234,5 '), 1234.5, 'decimal comma');
  t.equal(comma.read('12'), 12);
});

t.test('wall times resolved through the steady-hour cache equal those resolved one by one, around every rule change of a year', async (t) => {
  // Zones with whole-hour, half-hour (St John's, Lord Howe's 30 min DST) and 45 min offsets, and none.
  for (const zone of [CHICAGO, 'Europe/Berlin', 'America/St_Johns', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'Pacific/Chatham', 'UTC']) {
    const cached = new ZoneConverter(zone);
    const single = new ZoneConverter(zone, { steadyHours: false });
    let checked = 0;
    let differ = '';
    // Every 20 minutes of 2024 (rows in file order, as a report has them).
    for (let wall = Date.UTC(2024, 0, 1); wall < Date.UTC(2025, 0, 1) && !differ; wall += 20 * 60_000) {
      const d = new Date(wall);
      const args = [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), 0] as const;
      const a = cached.resolve(...args);
      const b = single.resolve(...args);
      if (JSON.stringify(a) !== JSON.stringify(b)) differ = `${d.toISOString().slice(0, 16)} wall: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
      checked++;
    }
    t.equal(differ, '', `${zone}: ${checked} wall times agree`);
  }
});

t.test('real sample: key block, settings, header, values, ON, gaps, leading spaces, trailer', async (t) => {
  const text = await readFile(FIXTURES + 'siemens-insight-trend-interval.csv');
  const p = parser();
  const out = await parseAll(p, text);
  t.equal(out.points.length, 162);
  t.equal(out.points[0]!.name, 'EV.CUH2.V');
  t.equal(out.points[161]!.name, 'OATEMP');
  t.same(out.points[98]!.meta, { trendDefinition: 'Trend COV (3.000)' });
  t.same(p.settings, { 'Time Interval': '15 Minutes', 'Date Range': '12/26/2017 00:00:00 - 1/2/2018 23:59:59', 'Report Timings': 'All Hours' });
  t.equal(out.rows.length, 16);
  const first = out.rows[0]!;
  t.equal(first.line, 169);
  t.equal(first.t, Date.UTC(2017, 11, 26, 6, 0), '12/26/2017 00:00 Chicago = 06:00Z');
  t.equal(first.values.get(0), 2.42);
  t.equal(first.values.get(161), -2.41, '" -2.41" with a leading space');
  t.equal(first.values.get(152), 1, 'ON → 1');
  const dataLoss = out.rows.find((r) => r.line === 181)!;
  t.equal(dataLoss.t, Date.UTC(2017, 11, 29, 9, 30));
  t.equal(dataLoss.values.get(98), null, 'Data Loss is a gap, not a zero');
  const last = out.rows.at(-1)!;
  t.equal(last.t, Date.UTC(2018, 0, 2, 9, 30));
  const lastRaw = text.toString('utf8').split('\n')[last.line - 1]!;
  t.equal([...last.values.values()].filter((v) => v === null).length, lastRaw.split('"No Data"').length - 1, 'No Data cells are gaps');
  t.equal([...last.values.values()].filter((v) => v === 0).length, lastRaw.split('"0.00"').length - 1, 'zeros stay zeros');
  t.equal(last.values.get(152), 1);
  const all = out.rows.flatMap((r) => [...r.values.values()]);
  t.equal(all.length, 16 * 162);
  t.equal(all.filter((v) => v === null).length, 149, '146 No Data + 3 Data Loss');
  t.notOk(all.some((v) => typeof v === 'number' && Number.isNaN(v)));
});

const small = {
  points: [
    { name: 'OATEMP', kind: 'outdoor' as const },
    { name: 'EV.HX2.ENA', kind: 'enable' as const },
    { name: 'EV.RM102.V', kind: 'valve' as const },
  ],
  start: Date.UTC(2024, 0, 15, 6),
  rows: 96,
  intervalMinutes: 15,
  timeZone: CHICAGO,
};

t.test('line-ending, BOM and Excel unquoted variants parse to the same values', async (t) => {
  const reference = await parseAll(parser(), reportText(small));
  t.equal(reference.rows.length, 96);
  t.ok(
    reference.rows.some((r) => r.values.get(1) === 0),
    'OFF → 0 present',
  );
  t.ok(
    reference.rows.some((r) => r.values.get(1) === 1),
    'ON → 1 present',
  );
  const variants: Array<[string, string | Buffer]> = [
    ['LF', reportText({ ...small, eol: '\n' })],
    ['CR only', reportText({ ...small, eol: '\r' })],
    ['BOM + CRLF', reportText({ ...small, bom: true })],
    ['Excel unquoted', reportText({ ...small, quoted: false })],
    // Excel pads short rows with empty fields to the widest row.
    ['Excel padded', reportText({ ...small, quoted: false }).replace(/^(Point_\d+:.*|Time Interval:.*|Date Range:.*|Report Timings:.*)$/gm, '$1,,,')],
  ];
  for (const [name, text] of variants) {
    for (const chunk of [7, 4096]) {
      const got = await parseAll(parser(), text, chunk);
      t.same(got.rows, reference.rows, `${name}, ${chunk}-byte chunks`);
    }
  }
});

t.test('DST days: autumn repeated hour goes to standard time, spring missing hour is skipped', async (t) => {
  // Generated through the real zone: the report lists 01:00–01:45 twice on 2023-11-05.
  const autumn = { ...small, start: Date.UTC(2023, 10, 5, 5), rows: 12 };
  const pa = parser();
  const a = await parseAll(pa, reportText(autumn));
  t.same(
    a.rows.map((r) => r.t),
    Array.from({ length: 12 }, (_, i) => autumn.start + i * 900_000),
    'every instant recovered in order',
  );
  t.equal(pa.stats.dstRepeatedRows, 4);
  // A spring report written on a fixed local grid includes 02:00–02:45, which never happened.
  const spring = ['"Key  Name:Suffix  Trend Definitions Used"', '"Point_1:","OATEMP","","15 minutes"', '"<>Date","Time","Point_1"'];
  for (const time of ['01:45:00', '02:00:00', '02:15:00', '02:30:00', '02:45:00', '03:00:00']) spring.push(`"3/12/2023","${time}","${time.slice(0, 2)}"`);
  spring.push('" *** End of Report ***"');
  const ps = parser();
  const s = await parseAll(ps, spring.join('\r\n'));
  t.same(
    s.rows.map((r) => r.t),
    [Date.UTC(2023, 2, 12, 7, 45), Date.UTC(2023, 2, 12, 8, 0)],
  );
  t.same(
    s.rows.map((r) => r.values.get(0)),
    [1, 3],
    'the 03:00 reading is not overwritten by a shifted 02:xx row',
  );
  t.equal(ps.stats.dstSkippedRows, 4);
});

t.test('Error: trend definitions are kept as point errors, their cells read as gaps', async (t) => {
  const text = [
    '"Key  Name:Suffix  Trend Definitions Used"',
    '"Point_1:","EV.RM102.V","","Error: Trend definition not found"',
    '"Point_2:","OATEMP","","15 minutes"',
    '"<>Date","Time","Point_1","Point_2"',
    '"1/15/2024","00:00:00","No Data","12.5"',
    '" *** End of Report ***"',
  ].join('\r\n');
  const out = await parseAll(parser(), text);
  t.equal(out.points[0]!.error, 'Error: Trend definition not found');
  t.equal(out.points[0]!.name, 'EV.RM102.V');
  t.same(
    [...out.rows[0]!.values],
    [
      [0, null],
      [1, 12.5],
    ],
  );
});

async function failure(text: string | Buffer): Promise<{ line: number; reason: string; message: string }> {
  try {
    await parseAll(parser(), text);
  } catch (err) {
    if (!isOutpostError(err, 'BMS_FILE_INVALID')) throw err;
    const d = err.details as { line: number; reason: string };
    return { ...d, message: err.message };
  }
  throw new Error('expected the file to be refused');
}

t.test('defects are refused with the line and the reason', async (t) => {
  const good = reportText(small).split('\r\n');
  const headerLine = good.findIndex((l) => l.startsWith('"<>Date"')) + 1;

  const truncatedMidRow = reportText(small).slice(0, reportText(small).lastIndexOf('End of Report') - 200);
  let f = await failure(truncatedMidRow);
  t.match(f.reason, /expected 5 columns .* \(truncated row\?\)|unterminated quote/);
  t.ok(f.line > headerLine);

  f = await failure(reportText({ ...small, truncate: true }));
  t.match(f.reason, /without the "End of Report" trailer/);

  const wrongCols = [...good];
  wrongCols[headerLine + 4] = wrongCols[headerLine + 4] + ',"7.0"';
  f = await failure(wrongCols.join('\r\n'));
  t.equal(f.line, headerLine + 5);
  t.match(f.reason, /expected 5 columns .* found 6/);

  const badDate = [...good];
  badDate[headerLine + 2] = badDate[headerLine + 2]!.replace(/^"[^"]+"/, '"2024-13-45"');
  f = await failure(badDate.join('\r\n'));
  t.equal(f.line, headerLine + 3);
  t.match(f.reason, /unparseable date\/time "2024-13-45"/);

  const feb30 = [...good];
  feb30[headerLine] = feb30[headerLine]!.replace(/^"[^"]+"/, '"2/30/2024"');
  f = await failure(feb30.join('\r\n'));
  t.match(f.message, new RegExp(`^line ${headerLine + 1}: unparseable date`));

  const badCell = [...good];
  badCell[headerLine + 1] = badCell[headerLine + 1]!.replace(/,"[^"]*"$/, ',"#VALUE!"');
  f = await failure(badCell.join('\r\n'));
  t.match(f.reason, /column 5 \(Point_3 EV\.RM102\.V\): cannot read "#VALUE!"/);

  const unknownColumn = [...good];
  unknownColumn[headerLine - 1] = unknownColumn[headerLine - 1]!.replace('"Point_3"', '"Point_9"');
  f = await failure(unknownColumn.join('\r\n'));
  t.equal(f.line, headerLine);
  t.match(f.reason, /"Point_9" has no entry in the Point_n key block/);

  f = await failure('');
  t.match(f.reason, /empty file/);
  f = await failure('\r\n\r\n');
  t.match(f.reason, /empty file/);

  const junk = randomBytes(64 * 1024);
  f = await failure(junk);
  t.equal(f.line >= 1, true);
  t.match(f.reason, /not a Siemens Insight trend interval report|binary data|longer than|unterminated quote/);

  f = await failure('"Location","Control Program","Name","Type"\r\n');
  t.equal(f.line, 1);
  t.match(f.reason, /not a Siemens Insight trend interval report/, 'an ALC file sent to the Insight route');

  f = await failure(good.slice(0, headerLine - 1).join('\r\n'));
  t.match(f.reason, /file ends before the .* column header/);
});
