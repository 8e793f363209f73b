/**
 * The import journal (adapters/bms-files/journal.ts): during an import it is written at most
 * every `persistEveryMs`; what a crash leaves is always a consistent pair of progress and
 * counters, and a stop (flush) or the end of a file writes everything.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ImportJournal, MAX_NOTED } from '../../../adapters/bms-files/journal.js';
import { OutpostError } from '../../../core/errors.js';
import { tempDir } from '../../helpers/teardown.js';

const FILE = '/drop/a.csv';
const progress = (line: number, rows: number) => ({ size: 100, mtimeMs: 1, committedLine: line, rows, points: rows * 3, gaps: 0, startedAt: 5 });

async function onDisk(dir: string): Promise<ImportJournal> {
  const j = new ImportJournal(dir);
  await j.load();
  return j;
}

t.test('checkpoints in between writes are kept in memory; flush and finish write them', async (t) => {
  const dir = await tempDir(t, 'outpost-journal-');
  const journal = new ImportJournal(dir, 60_000);
  await journal.checkpoint(FILE, progress(10, 10), { rows: 10, points: 30, gaps: 0 });
  t.equal((await onDisk(dir)).progress(FILE)?.committedLine, 10, 'the first checkpoint is written');
  await journal.checkpoint(FILE, progress(20, 20), { rows: 10, points: 30, gaps: 0 });
  await journal.checkpoint(FILE, progress(30, 30), { rows: 10, points: 30, gaps: 0 });
  t.equal(journal.counters.rows, 30, 'counters in memory are current');
  const crashed = await onDisk(dir);
  t.same(
    [crashed.progress(FILE)?.committedLine, crashed.counters.rows],
    [10, 10],
    'a crash now resumes after line 10 with the rows up to it counted: replayed rows count once',
  );
  await journal.flush();
  const stopped = await onDisk(dir);
  t.same([stopped.progress(FILE)?.committedLine, stopped.counters.rows, stopped.counters.points], [30, 30, 90], 'flush writes the last checkpoint');
  await journal.checkpoint(FILE, progress(40, 40), { rows: 10, points: 30, gaps: 0 });
  await journal.finish(FILE, { ok: true, summary: { file: 'a.csv', at: 9, rows: 40, points: 120, gaps: 0, ms: 4 } });
  const done = await onDisk(dir);
  t.same([done.progress(FILE), done.counters.rows, done.counters.files], [undefined, 40, 1], 'finish writes the counters of every batch');
});

const fileNotes = (o: Partial<Parameters<ImportJournal['note']>[0]> = {}) => ({ unmapped: [], pointErrors: [], dstSkippedRows: 0, dstRepeatedRows: 0, ...o });

t.test('status notes (unmapped points, point errors, DST rows, last file failed) survive a restart', async (t) => {
  const dir = await tempDir(t, 'outpost-journal-notes-');
  const journal = new ImportJournal(dir, 60_000);
  journal.note(
    fileNotes({ unmapped: ['EV.X', 'EV.Y'], pointErrors: [{ name: 'EV.RM208.RT', error: 'Error: Trend not defined' }], dstSkippedRows: 4, dstRepeatedRows: 1 }),
  );
  await journal.finish(FILE, { ok: true, summary: { file: 'a.csv', at: 9, rows: 40, points: 120, gaps: 0, ms: 4 } });
  journal.note(fileNotes({ unmapped: ['EV.Y', 'EV.Z'], pointErrors: [{ name: 'EV.RM208.RT', error: 'Error: Trend not defined' }], dstSkippedRows: 4 }));
  await journal.finish('/drop/b.csv', { ok: false, failure: { file: 'b.csv', at: 10, reason: 'bad' } });
  const after = await onDisk(dir);
  t.same(after.notes, {
    unmappedPoints: ['EV.X', 'EV.Y', 'EV.Z'],
    pointErrors: [{ name: 'EV.RM208.RT', error: 'Error: Trend not defined' }],
    dstSkippedRows: 8,
    dstRepeatedRows: 1,
    lastFileFailed: true,
  });
  // A later file lists the point without an error: its entry goes; the lists stay bounded.
  after.note(fileNotes({ pointNames: ['EV.RM208.RT', 'OATEMP'], unmapped: Array.from({ length: 80 }, (_, i) => `P${i}`) }));
  await after.finish(FILE, { ok: true, summary: { file: 'a.csv', at: 11, rows: 1, points: 1, gaps: 0, ms: 1 } });
  const again = await onDisk(dir);
  t.same(again.notes.pointErrors, []);
  t.equal(again.notes.unmappedPoints.length, MAX_NOTED);
  t.equal(again.notes.lastFileFailed, false, 'an imported file clears it');
});

t.test('journals written before the notes load with empty notes and the last outcome from the counters', async (t) => {
  const dir = await tempDir(t, 'outpost-journal-old-');
  // As the previous version wrote it.
  const old = {
    version: 1,
    counters: {
      files: 3,
      rows: 48,
      points: 7776,
      gaps: 447,
      failures: 1,
      lastImport: { file: 'a.csv', at: 100, rows: 16, points: 2592, gaps: 149, ms: 50 },
      lastFailure: { file: 'b.csv', at: 200, reason: 'line 2: x' },
    },
    inProgress: {},
  };
  await writeFile(join(dir, 'import-journal.json'), JSON.stringify(old));
  const j = await onDisk(dir);
  t.same(j.counters, old.counters);
  t.same(j.notes, { unmappedPoints: [], pointErrors: [], dstSkippedRows: 0, dstRepeatedRows: 0, lastFileFailed: true });
  j.note(fileNotes({ dstRepeatedRows: 2 }));
  await j.save();
  const written = JSON.parse(await readFile(join(dir, 'import-journal.json'), 'utf8'));
  t.same(written.counters, old.counters, 'counters as they were: an older version still reads the file');
  t.equal(written.version, 1);
  // Damaged or partial notes (a hand edit) start from what is readable.
  await writeFile(
    join(dir, 'import-journal.json'),
    JSON.stringify({ ...old, notes: { unmappedPoints: ['A', 7], pointErrors: [{ name: 'B' }], dstSkippedRows: 'x' } }),
  );
  t.same((await onDisk(dir)).notes, { unmappedPoints: ['A'], pointErrors: [], dstSkippedRows: 0, dstRepeatedRows: 0, lastFileFailed: false });
});

t.test('pruneUnmapped: names the current rules map are dropped at start; a rule that refuses keeps them', async (t) => {
  const dir = await tempDir(t, 'outpost-journal-prune-');
  const j = new ImportJournal(dir);
  j.note(fileNotes({ unmapped: ['OATEMP', 'EV.X', 'EV.Y'] }));
  await j.save();
  const later = await onDisk(dir);
  await later.pruneUnmapped((name) => {
    if (name === 'EV.Y') throw new OutpostError('BMS_POINT_UNMAPPED', 'unknownPoints: fail');
    return name !== 'OATEMP'; // a rule for OATEMP was added
  });
  t.same((await onDisk(dir)).notes.unmappedPoints, ['EV.X', 'EV.Y']);
  await t.rejects(
    later.pruneUnmapped(() => {
      throw new TypeError('bug');
    }),
    TypeError,
    'anything but a rule refusal is not hidden',
  );
});
