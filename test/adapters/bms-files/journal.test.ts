/**
 * The import journal (adapters/bms-files/journal.ts): during an import it is written at most
 * every `persistEveryMs`; what a crash leaves is always a consistent pair of progress and
 * counters, and a stop (flush) or the end of a file writes everything.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImportJournal } from '../../../adapters/bms-files/journal.js';

const FILE = '/drop/a.csv';
const progress = (line: number, rows: number) => ({ size: 100, mtimeMs: 1, committedLine: line, rows, points: rows * 3, gaps: 0, startedAt: 5 });

async function onDisk(dir: string): Promise<ImportJournal> {
  const j = new ImportJournal(dir);
  await j.load();
  return j;
}

t.test('checkpoints in between writes are kept in memory; flush and finish write them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-journal-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const journal = new ImportJournal(dir, 60_000);
  await journal.checkpoint(FILE, progress(10, 10), { rows: 10, points: 30, gaps: 0 });
  t.equal((await onDisk(dir)).progress(FILE)?.committedLine, 10, 'the first checkpoint is written');
  await journal.checkpoint(FILE, progress(20, 20), { rows: 10, points: 30, gaps: 0 });
  await journal.checkpoint(FILE, progress(30, 30), { rows: 10, points: 30, gaps: 0 });
  t.equal(journal.counters.rows, 30, 'counters in memory are current');
  const crashed = await onDisk(dir);
  t.same([crashed.progress(FILE)?.committedLine, crashed.counters.rows], [10, 10], 'a crash now resumes after line 10 with the rows up to it counted: replayed rows count once');
  await journal.flush();
  const stopped = await onDisk(dir);
  t.same([stopped.progress(FILE)?.committedLine, stopped.counters.rows, stopped.counters.points], [30, 30, 90], 'flush writes the last checkpoint');
  await journal.checkpoint(FILE, progress(40, 40), { rows: 10, points: 30, gaps: 0 });
  await journal.finish(FILE, { ok: true, summary: { file: 'a.csv', at: 9, rows: 40, points: 120, gaps: 0, ms: 4 } });
  const done = await onDisk(dir);
  t.same([done.progress(FILE), done.counters.rows, done.counters.files], [undefined, 40, 1], 'finish writes the counters of every batch');
});
