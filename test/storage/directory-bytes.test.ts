import t from 'tap';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { directoryBytes } from '../../storage/directory-bytes.js';

// Seen in CI: a retention pass failed with ENOENT because LevelDB's compaction removed a
// .log file between the directory listing and its stat. A file that goes away meanwhile
// takes no room any more; it is not counted, and the measurement goes on.
t.test('directoryBytes: files removed while it measures are left out, no ENOENT', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-dirbytes-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const names = Array.from({ length: 400 }, (_, i) => `${String(i).padStart(6, '0')}.log`);
  for (let round = 0; round < 5; round++) {
    await Promise.all(names.map((name) => writeFile(join(dir, name), Buffer.alloc(100))));
    t.equal(await directoryBytes(dir), 40_000, `round ${round}: all files counted`);
    // Remove them while it measures, as a compaction does.
    const measuring = directoryBytes(dir);
    await Promise.all(names.map((name) => unlink(join(dir, name))));
    const bytes = await measuring;
    t.ok(bytes >= 0 && bytes <= 40_000 && bytes % 100 === 0, `round ${round}: ${bytes} bytes, the files still there`);
  }
});
