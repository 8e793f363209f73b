import t from 'tap';
import type { Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStore } from '../../storage/level/level-store.js';
import { isOutpostError } from '../../core/errors.js';

/**
 * Recovery from a full disk loses nothing that was acknowledged. After a failed write
 * LevelDB's log may end in a torn record, and LevelDB 1.20 appends after it as if it were
 * whole; the next open reads the log back in 32 KB blocks and drops everything behind the
 * tear. Before, the store took the first write that succeeded once there was room as the
 * recovery, and readings acknowledged after it (fsynced) were gone after a restart: 1,443 of
 * the 1,501 of the 100-byte case here, every time. Now the store reopens the database before it
 * takes writes again.
 */

const T0 = Date.UTC(2025, 0, 1);

async function mountTmpfs(t: Test, size: string): Promise<string | undefined> {
  const mnt = await mkdtemp(join(tmpdir(), 'outpost-recover-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    await rm(mnt, { recursive: true, force: true });
    t.skip(`needs root to mount a small tmpfs: ${(err as Error).message.split('\n')[0]}`, () => undefined);
    return undefined;
  }
  t.teardown(async () => {
    execFileSync('umount', ['-l', mnt]);
    await rm(mnt, { recursive: true, force: true });
  });
  return mnt;
}

async function free(path: string): Promise<number> {
  const s = await statfs(path);
  return s.bavail * s.bsize;
}

for (const size of [100, 333, 1000]) {
  t.test(`readings of ${size} bytes: every one acknowledged after the disk had room again survives a reopen`, async (t) => {
    const mnt = await mountTmpfs(t, '8m');
    if (!mnt) return;
    const alarms: Array<string | undefined> = [];
    const store = new LevelStore({ path: join(mnt, 'db'), probeIntervalMs: 100, onAlarm: (e) => alarms.push(e) });
    await store.open();
    t.teardown(() => store.close().catch(() => undefined));
    // Half a megabyte left: the log fills it within a few hundred writes.
    await writeFile(join(mnt, 'filler'), Buffer.alloc((await free(mnt)) - 512 * 1024));
    const acked: number[] = [];
    let n = 0;
    const write = async (): Promise<boolean> => {
      const i = n++;
      try {
        await store.write([{ id: 'full', t: T0 + i, v: `${'x'.repeat(size)}${i}` }]);
        acked.push(i);
        return true;
      } catch (err) {
        if (!isOutpostError(err, 'STORAGE_WRITE_FAILED')) throw err;
        return false;
      }
    };
    let failures = 0;
    while (failures < 3 && n < 100_000) if (!(await write())) failures++;
    t.ok(store.readOnly, 'the disk filled up: storage is read-only');
    const before = acked.length;

    await rm(join(mnt, 'filler'));
    // Writes are refused until the store recovered (today: reopened) by itself.
    const deadline = Date.now() + 10_000;
    while (!(await write())) {
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    t.notOk(store.readOnly, 'writable again once there is room, without a restart');
    t.equal(alarms.at(-1), undefined, 'the recovery is reported');
    let refused = 0;
    for (let i = 0; i < 1500; i++) if (!(await write())) refused++;
    t.equal(refused, 0, `1,500 more readings acknowledged after the recovery`);
    await store.close();

    const again = new LevelStore({ path: join(mnt, 'db') });
    await again.open();
    const stored = new Set((await again.query('full', { limit: 100_000 })).map((p) => p.t - T0));
    await again.close();
    const lost = acked.filter((i) => !stored.has(i));
    t.same(lost.length, 0, `no acknowledged reading lost (${before} before the disk filled, ${acked.length - before} after it had room again)`, {
      lost: lost.slice(0, 5),
    });
  });
}
