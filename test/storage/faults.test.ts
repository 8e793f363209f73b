import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStore } from '../../storage/level/level-store.js';
import { spawnOutpost } from '../helpers/process.js';
import { isOutpostError } from '../../core/errors.js';

const T0 = Date.UTC(2025, 0, 1);

t.test('disk full: writes fail into a visible read-only alarm, refused until the disk recovers', async (t) => {
  const mnt = await mkdtemp(join(tmpdir(), 'outpost-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
  } catch (err) {
    await rm(mnt, { recursive: true, force: true });
    t.skip(`needs root to mount a small tmpfs: ${(err as Error).message}`, () => undefined);
    return;
  }
  t.teardown(async () => {
    execFileSync('umount', ['-l', mnt]);
    await rm(mnt, { recursive: true, force: true });
  });
  const alarms: Array<string | undefined> = [];
  const store = new LevelStore({ path: join(mnt, 'db'), probeIntervalMs: 200, onAlarm: (e) => alarms.push(e) });
  await store.open();
  t.teardown(() => store.close().catch(() => undefined));
  // A filler file takes most of the space, so the database hits "no space" quickly.
  await writeFile(join(mnt, 'filler'), Buffer.alloc(3 * 1024 * 1024));
  let failure: unknown;
  let n = 0;
  const text = 'x'.repeat(200);
  for (let i = 0; i < 2000 && !failure; i++) {
    try {
      await store.write(Array.from({ length: 100 }, (_, j) => ({ id: 'full', t: T0 + n++, v: `${text}${i}-${j}` })));
    } catch (err) {
      failure = err;
    }
  }
  t.ok(isOutpostError(failure, 'STORAGE_WRITE_FAILED'), 'the failing write is rejected with STORAGE_WRITE_FAILED', { found: failure });
  const s = store.stats();
  t.ok(s.readOnly, 'stats().readOnly');
  t.match(s.error, /space|No space|IO error/i, 'stats().error says why');
  t.equal(alarms.length, 1, 'onAlarm called once on entering the alarm state');
  try {
    await store.write([{ id: 'full', t: T0 - 1, v: 1 }]);
    t.fail('write during alarm must be refused');
  } catch (err) {
    t.ok(isOutpostError(err, 'STORAGE_WRITE_FAILED') && /read-only/.test((err as Error).message), 'refused at once while read-only');
  }
  await rm(join(mnt, 'filler'));
  await new Promise((r) => setTimeout(r, 250));
  let recovered = false;
  for (let i = 0; i < 20 && !recovered; i++) {
    try {
      await store.write([{ id: 'ok', t: T0, v: 1 }]);
      recovered = true;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  t.ok(recovered, 'a probe write succeeds once space is back');
  t.notOk(store.stats().readOnly, 'alarm cleared');
  t.equal(alarms.at(-1), undefined, 'onAlarm reports the recovery');
});

t.test('a damaged database is reported with the repair command, and repair makes it open', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-corrupt-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'db');
  const store = new LevelStore({ path });
  await store.open();
  await store.write(Array.from({ length: 1000 }, (_, i) => ({ id: 'c', t: T0 + i, v: i })));
  await store.close();
  const manifest = (await readdir(path)).find((f) => f.startsWith('MANIFEST-'))!;
  await writeFile(join(path, manifest), Buffer.from('this is not a manifest'));
  const broken = new LevelStore({ path });
  try {
    await broken.open();
    t.fail('open must fail');
  } catch (err) {
    t.ok(isOutpostError(err, 'STORAGE_CORRUPT'), 'STORAGE_CORRUPT', { found: err });
    t.match((err as Error).message, `outpost repair --db ${path}`, 'message names the repair command');
  }
  // The command the message names, run as the operator would.
  const repair = spawnOutpost(['repair', '--db', path]);
  const { code } = await repair.exited;
  t.equal(code, 0, `outpost repair --db exits 0 (${repair.stderr()})`);
  t.match(repair.stdout(), /done: start the gateway again/);
  const repaired = new LevelStore({ path });
  await repaired.open();
  t.equal((await repaired.query('c', { limit: 5000 })).length, 1000, 'data back after repair');
  await repaired.close();
});
