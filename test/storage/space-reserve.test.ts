import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpaceReserve, isNoRoom } from '../../storage/level/space-reserve.js';

async function free(path: string): Promise<number> {
  const s = await statfs(path);
  return s.bavail * s.bsize;
}

t.test('the reserve is made only with room for twice its size, and given back whole', async (t) => {
  const mnt = await mkdtemp(join(tmpdir(), 'outpost-reserve-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    await rm(mnt, { recursive: true, force: true });
    t.skip(`needs root to mount a tmpfs: ${(err as Error).message.split('\n')[0]}`, () => undefined);
    return;
  }
  t.teardown(async () => {
    execFileSync('umount', ['-l', mnt]);
    await rm(mnt, { recursive: true, force: true });
  });
  const reserve = new SpaceReserve(join(mnt, 'space-reserve'), 6 << 20);
  t.equal(await reserve.present(), false, 'none at first');
  const before = await free(mnt);
  t.equal(await reserve.ensure(), true, 'made on an empty 20 MB disk');
  t.equal((await stat(reserve.path)).size, 6 << 20, 'at its size');
  t.ok(before - (await free(mnt)) >= 6 << 20, 'its blocks are taken (not a sparse file)');
  t.equal(await reserve.ensure(), true, 'a second ensure keeps it');

  t.equal(await reserve.release(), true, 'released');
  t.equal(await reserve.present(), false, 'gone');
  t.ok((await free(mnt)) >= before - 64 * 1024, 'its room is back');
  t.equal(await reserve.release(), false, 'nothing more to give up');

  // 10 MB free: less than twice 6 MiB, so making it would leave the disk nearly full.
  execFileSync('fallocate', ['-l', String((await free(mnt)) - 10 * 1024 * 1024), join(mnt, 'filler')]);
  t.equal(await reserve.ensure(), false, 'not made with less than twice its size free');
  t.same(await readdir(mnt), ['filler'], 'and nothing left behind');

  t.equal(await new SpaceReserve(join(mnt, 'none'), 0).ensure(), false, 'size 0: no reserve');
});

t.test('no-room errors are told apart from others, through causes', async (t) => {
  t.ok(isNoRoom(Object.assign(new Error('write failed'), { code: 'ENOSPC' })));
  t.ok(isNoRoom(new Error('open failed', { cause: new Error('IO error: /d/000005.ldb: No space left on device') })));
  t.ok(isNoRoom('EROFS: read-only file system'));
  t.notOk(isNoRoom(new Error('IO error: lock /d/LOCK: already held by process')));
  t.notOk(isNoRoom(undefined));
});
