/**
 * Day/month order of slash dates (adapters/bms-files/date-order.ts): decided from the whole
 * file before any row is stored. A first field over 12 means day first, a second field over
 * 12 month first, both in one file is refused; a file where every date reads both ways is
 * refused under `timestampFormat: auto` with a message naming the setting, instead of being
 * read as month first without a word (05/11/2024 stored as May 11).
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { AlcParser, alcOptionsSchema } from '../../../adapters/bms-files/alc-webctrl.js';
import { decideDateOrder, detectDateOrder, formatFor, scanDateOrder, type DateOrderSource } from '../../../adapters/bms-files/date-order.js';
import { InsightParser } from '../../../adapters/bms-files/siemens-insight.js';
import { compileTimestampFormat } from '../../../adapters/bms-files/timestamps.js';
import { isOutpostError } from '../../../core/errors.js';
import { FIXTURES, parseAll } from './helpers.js';
import { tempDir, type Teardown } from '../../helpers/teardown.js';

const CHICAGO = 'America/Chicago';
const INSIGHT: DateOrderSource = { format: 'siemens-insight' };
const alcSource = (o: Record<string, unknown> = {}): DateOrderSource => ({ format: 'alc-webctrl', alc: alcOptionsSchema.parse(o) });

async function tempFile(t: Teardown, name: string, content: string | Buffer): Promise<string> {
  const dir = await tempDir(t, 'outpost-date-order-');
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

/** The BMS_FILE_INVALID refusal `p` ends in. */
async function refusal(p: Promise<unknown>): Promise<{ message: string; line?: number; reason?: string }> {
  try {
    await p;
  } catch (err) {
    if (!isOutpostError(err) || err.code !== 'BMS_FILE_INVALID') throw err;
    const d = err.details as { line?: number; reason?: string };
    return { message: err.message, line: d.line, reason: d.reason };
  }
  throw new Error('expected a refusal');
}

const scan = (text: string, source: DateOrderSource) => scanDateOrder(Readable.from(text.split('\n')), source);

t.test('evidence: a first field over 12 is day first, a second over 12 month first, equal fields read the same', async (t) => {
  const csv = (...stamps: string[]) => ['Time,A', ...stamps.map((s) => `${s},1`)].join('\n');
  t.match(await scan(csv('13/11/2024 00:00', '05/11/2024 00:00'), alcSource()), {
    order: 'DMY',
    dayFirst: { line: 2, text: '13/11/2024' },
    ambiguous: { line: 3 },
  });
  t.match(await scan(csv('05/11/2024 00:00', '11/13/2024 0:00'), alcSource()), { order: 'MDY', monthFirst: { line: 3, text: '11/13/2024' } });
  t.match(await scan(csv('05/11/2024 00:00', '06/11/2024 00:00'), alcSource()), {
    order: 'ambiguous',
    ambiguous: { line: 2, text: '05/11/2024', stamp: '05/11/2024 00:00' },
    dates: 2,
  });
  t.match(await scan(csv('5/5/2024 1:00 PM', '6/6/2024 1:00 PM'), alcSource()), { order: 'MDY', dates: 2 }, 'the same date either way: nothing to decide');
  t.match(await scan(csv('2024-11-05T00:00:00Z'), alcSource()), { order: 'n/a', dates: 0 }, 'ISO 8601');
  t.match(await scan(csv('1730764800000'), alcSource()), { order: 'n/a' }, 'epoch');
  t.match(await scan(csv('13/13/2024 00:00', '00/05/2024 00:00'), alcSource()), { order: 'n/a', dates: 0 }, "impossible dates are the parser's to refuse");
  t.match(await scan(csv('13/11/2024 00:00', '11/13/2024 00:00'), alcSource()), { order: 'ambiguous', dayFirst: { line: 2 }, monthFirst: { line: 3 } });
});

t.test('evidence: only the timestamp column of rows, after skipLines and the header; points lists have none', async (t) => {
  // The report title has a day-first date; the rows are month first in column "Datum" with a separate time column.
  const csv = ['Report 13/11/2024', 'Value;Datum;Zeit', '1;11/5/2024;13:00:00', '2;11/14/2024;13:15:00'].join('\n');
  t.match(await scan(csv, alcSource({ skipLines: 1, delimiter: ';', timestampColumn: 'datum', timeColumn: 'Zeit' })), {
    order: 'MDY',
    ambiguous: { line: 3, stamp: '11/5/2024 13:00:00' },
    monthFirst: { line: 4 },
  });
  const points = await readFile(FIXTURES + 'alc-webctrl-points-list.csv', 'utf8');
  t.match(await scan(points, alcSource()), { order: 'n/a', dates: 0 });
  t.match(
    await scan(['Stamp,A', '13/5/2024 1:00,1'].join('\n'), alcSource({ timestampColumn: 'Nope' })),
    { order: 'n/a' },
    'unknown column: the parser reports it',
  );
  // Insight: the heading's `Date Range:` (12/26/2017 … 1/2/2018) is not a row.
  const insight = await readFile(FIXTURES + 'siemens-insight-trend-interval.csv', 'utf8');
  t.match(await scan(insight, INSIGHT), { order: 'MDY', dates: 16, monthFirst: { text: '12/26/2017' } });
});

t.test('detectDateOrder streams the file, in any encoding; contradictory dates are refused', async (t) => {
  t.equal(await detectDateOrder(FIXTURES + 'siemens-insight-trend-interval.csv', INSIGHT), 'MDY');
  t.equal(await detectDateOrder(FIXTURES + 'siemens-insight-trend-interval.utf16be.csv', INSIGHT), 'MDY');
  t.equal(await detectDateOrder(FIXTURES + 'alc-webctrl-trend-wide.utf16le.csv', alcSource()), 'MDY');
  t.equal(await detectDateOrder(FIXTURES + 'alc-webctrl-trend-day-first.csv', alcSource()), 'DMY');
  t.equal(await detectDateOrder(FIXTURES + 'alc-webctrl-trend-ambiguous.csv', alcSource()), 'ambiguous');
  t.equal(await detectDateOrder(FIXTURES + 'alc-webctrl-points-list.csv', alcSource()), 'n/a');
  const mixed = await tempFile(t, 'mixed.csv', ['Time,A', '13/11/2024 00:00,1', '12/14/2024 00:00,2', ''].join('\r\n'));
  const r = await refusal(detectDateOrder(mixed, alcSource()));
  t.equal(r.line, 3);
  t.match(r.reason, /^dates disagree on the order of day and month: 13\/11\/2024 \(line 2\) has the day first, 12\/14\/2024 the month first/);
});

t.test('ALC auto: an all-ambiguous file is refused naming alc.timestampFormat with formats that read it', async (t) => {
  const r = await refusal(decideDateOrder(FIXTURES + 'alc-webctrl-trend-ambiguous.csv', alcSource()));
  t.equal(r.line, 0, 'the whole file, not one line');
  t.equal(
    r.message,
    'dates such as 05/11/2024 (line 2) could be May 11 or 5 November, and no date in the file has a day over 12 to tell; set alc.timestampFormat to "M/D/YYYY H:mm" or "D/M/YYYY H:mm"',
  );
  t.equal(formatFor('M/D/YYYY', '5/11/2024 1:05:00 PM'), 'M/D/YYYY h:mm:ss A');
  t.equal(formatFor('D/M/YYYY', '05/11/2024 13:05:09'), 'D/M/YYYY H:mm:ss');
  // What the message suggests does read the file.
  for (const [format, month, day] of [
    ['M/D/YYYY H:mm', 5, 11],
    ['D/M/YYYY H:mm', 11, 5],
  ] as const) {
    const out = await parseAll(
      new AlcParser(alcOptionsSchema.parse({ timestampFormat: format }), CHICAGO),
      await readFile(FIXTURES + 'alc-webctrl-trend-ambiguous.csv'),
    );
    t.equal(new Date(out.rows[0]!.t).getUTCMonth() + 1, month, `${format}: month ${month}`);
    t.equal(new Date(out.rows[0]!.t - 6 * 3_600_000).getUTCDate(), day);
    t.equal(
      await decideDateOrder(FIXTURES + 'alc-webctrl-trend-ambiguous.csv', alcSource({ timestampFormat: format })),
      undefined,
      `${format}: an explicit format decides, the file is not refused`,
    );
  }
});

t.test('ALC auto: a day-first file is read day first (13 November, not refused, not a month 13)', async (t) => {
  const path = FIXTURES + 'alc-webctrl-trend-day-first.csv';
  const order = await decideDateOrder(path, alcSource());
  t.equal(order, 'DMY');
  const out = await parseAll(new AlcParser(alcOptionsSchema.parse({}), CHICAGO, {}, { dateOrder: order }), await readFile(path));
  t.equal(out.rows.length, 8);
  t.equal(out.rows[0]!.t, Date.UTC(2024, 10, 14, 5), '13/11/2024 23:00 CST');
  t.equal(out.rows[4]!.t, Date.UTC(2024, 10, 14, 6), '14/11/2024 00:00 CST');
  t.equal(await decideDateOrder(FIXTURES + 'alc-webctrl-trend-wide.csv', alcSource()), 'MDY');
  const auto = compileTimestampFormat('auto', 'DMY');
  t.match(auto('5/11/2024 1:05:00 PM'), { month: 11, day: 5, hour: 13 });
  t.match(auto('2024-11-05T13:05:00Z'), { month: 11, day: 5, offsetMs: 0 }, 'ISO stays ISO');
  t.match(compileTimestampFormat('auto')('5/11/2024 13:05'), { month: 5, day: 11 }, 'default order unchanged');
  // Without the decided order (as before): the day-first file fails at its first day over 12.
  await t.rejects(
    parseAll(new AlcParser(alcOptionsSchema.parse({}), CHICAGO), await readFile(path)),
    /line 2: unparseable timestamp "13\/11\/2024 23:00" \(timestampFormat: auto\)/,
  );
  const mixed = await tempFile(t, 'mixed.csv', ['Time,A', '1/13/2024 00:00,1', '13/1/2024 00:00,2'].join('\n'));
  await t.rejects(decideDateOrder(mixed, alcSource()), /line 3: dates disagree/);
});

t.test('Siemens Insight stays M/D/YYYY; a file whose dates prove day first is refused up front and in the parser', async (t) => {
  t.equal(await decideDateOrder(FIXTURES + 'siemens-insight-trend-interval.csv', INSIGHT), undefined, 'the parser has its fixed order');
  // The sample re-saved with day-first dates: 26/12/2017 … 2/1/2018.
  const text = (await readFile(FIXTURES + 'siemens-insight-trend-interval.csv', 'utf8')).replace(/^"(\d{1,2})\/(\d{1,2})\/(\d{4})"/gm, '"$2/$1/$3"');
  const path = await tempFile(t, 'insight-day-first.csv', text);
  const r = await refusal(decideDateOrder(path, INSIGHT));
  t.equal(text.split('\n')[r.line! - 1]!.slice(0, 12), '"26/12/2017"', 'at the first row that proves it');
  t.match(r.reason, /^date 26\/12\/2017 has the day first \(26 is no month\), but Siemens Insight writes M\/D\/YYYY/);
  const p = await refusal(parseAll(new InsightParser({ timeZone: CHICAGO }), text));
  t.match(p.reason, /unparseable date\/time "26\/12\/2017" "00:00:00" \(expected M\/D\/YYYY and HH:MM:SS; the day comes first/);
});
