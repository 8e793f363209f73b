/**
 * Issue 19, satellite part: the gateway's storage state as an MO message (mo-storage.ts), the
 * forwarding queue's one slot for it (mo-queue.ts: alarm class, first, on disk), and the
 * session loop not sending a message again when the credit spend cannot be saved (a full disk).
 */
import t from 'tap';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { CreditBudget } from '../../../adapters/iridium/budget.js';
import { CODEC_EPOCH_MS, creditsFor } from '../../../adapters/iridium/codec.js';
import { moKind } from '../../../adapters/iridium/mo-ack.js';
import { decodeStorageStatus, encodeStorageStatus, type StorageStatus } from '../../../adapters/iridium/mo-storage.js';
import { ForwardQueue } from '../../../adapters/iridium/mo-queue.js';
import { OutpostError } from '../../../core/errors.js';
import { tempDir } from '../../helpers/teardown.js';
import { threePointCodec } from './harness.js';
import { linkRig, recordingClock, waitFor } from './link-rig.js';

const SINCE = Date.UTC(2025, 5, 1, 12, 30, 15, 123);
const ENOSPC = 'IO error: /var/lib/outpost/db/000123.log: No space left on device';

t.test('storage status message: round trip', async (t) => {
  const ok: StorageStatus = { state: 'ok', since: SINCE };
  const bytes = encodeStorageStatus(ok);
  t.equal(moKind(bytes), 'storage', 'first byte 4: a storage state');
  t.same(decodeStorageStatus(bytes), ok);
  t.ok(bytes.length <= 8, `recovery in ${bytes.length} bytes`);

  const readOnly: StorageStatus = { state: 'read-only', error: 'write failed: No space left on device', since: SINCE };
  const ro = encodeStorageStatus(readOnly);
  t.same(decodeStorageStatus(ro), readOnly, 'the error text and the time to the millisecond');
  t.equal(creditsFor(ro.length), 1, `one credit (${ro.length} bytes)`);
  // LevelDB's error names the file first and the cause last: the middle goes.
  const leveldb = encodeStorageStatus({ state: 'read-only', error: ENOSPC, since: SINCE });
  t.equal(leveldb.length, 50, 'a longer error is cut to one credit');
  t.same(decodeStorageStatus(leveldb), { state: 'read-only', error: 'IO error: /v…g: No space left on device', since: SINCE }, 'what failed and why are kept');
  t.equal(decodeStorageStatus(encodeStorageStatus({ state: 'ok', since: CODEC_EPOCH_MS })).since, CODEC_EPOCH_MS, 'the epoch itself');

  // Characters of 1 to 4 bytes: every cut falls between two of them.
  for (let shift = 0; shift < 8; shift++) {
    const long = `${'é'.repeat(shift)}Disque plein — écriture refusée 🚫 ${'x'.repeat(shift)}`.repeat(4);
    const cut = encodeStorageStatus({ state: 'read-only', error: long, since: SINCE });
    const back = decodeStorageStatus(cut); // a split character would fail as "not UTF-8"
    const error = back.state === 'read-only' ? back.error : '';
    const [head, tail] = error.split('…') as [string, string];
    t.ok(
      cut.length <= 50 && long.startsWith(head) && long.endsWith(tail) && head.length > 5 && tail.length > 10,
      `${cut.length} bytes: ${JSON.stringify(error)}`,
    );
  }
});

t.test('storage status message: bad bytes and bad input get a clear error', async (t) => {
  const good = encodeStorageStatus({ state: 'read-only', error: 'disk full', since: SINCE });
  const bad = (bytes: Uint8Array | number[], message: RegExp, what: string): void => {
    t.throws(() => decodeStorageStatus(Uint8Array.from(bytes)), { code: 'IRIDIUM_CODEC', message }, what);
  };
  bad([], /truncated/, 'empty');
  bad([4], /truncated/, 'the kind alone');
  bad(good.subarray(0, 2), /truncated/, 'cut in the time');
  bad(good.subarray(0, good.length - 1), /truncated/, 'cut in the error text');
  bad([3, 1, 2, 0], /not a storage status message \(first byte is 3/, 'an acknowledgement is not a storage state');
  bad([9, 0, 0], /first byte is 9/, 'an unknown kind');
  bad([4, 7, 0], /unknown storage state code 7/, 'an unknown state code');
  bad([...encodeStorageStatus({ state: 'ok', since: SINCE }), 0], /1 bytes after the storage status/, 'trailing bytes');
  bad([4, 1, 0, 2, 0xc3, 0x28], /not UTF-8/, 'an error text that is not UTF-8');
  bad([4, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], /varint is too long/, 'a time beyond any varint');
  t.equal(moKind(Uint8Array.from([9])), 'unknown');
  t.throws(() => encodeStorageStatus({ state: 'ok', since: Date.UTC(2019, 11, 31) }), { code: 'IRIDIUM_CODEC', message: /after 2020/ });
  t.throws(() => encodeStorageStatus({ state: 'full' } as unknown as StorageStatus), { code: 'IRIDIUM_CODEC', message: /"full" is not ok or read-only/ });
});

async function openQueue(dir: string): Promise<ForwardQueue> {
  let seq = 0;
  return ForwardQueue.open({ dataDir: dir, codec: threePointCodec(), takeSeq: async () => seq++, maxReadings: 100, log: pino({ level: 'silent' }) });
}

t.test('forwarding queue: one storage slot, first, paid from the alarm reserve, kept on disk', async (t) => {
  const dir = await tempDir(t, 'outpost-iridium-storage-');
  const clock = recordingClock();
  const budget = await CreditBudget.open(dir, { dailyCredits: 6, alarmReserve: 2, historyShare: 1 }, clock, 'UTC');
  await budget.record(4); // latest values spent theirs: only the alarm reserve is left
  const queue = await openQueue(dir);
  await queue.release([{ id: 'a.level', t: SINCE, v: 1.5 }]);
  t.equal(queue.ready(budget), undefined, 'latest values wait: their share of the day is spent');

  await queue.setStorage({ state: 'read-only', error: ENOSPC, since: SINCE }, clock.now());
  await queue.setStorage({ state: 'read-only', error: 'newer', since: SINCE + 1000 }, clock.now());
  t.equal(queue.size, 2, 'one slot: the newer state replaced the older (plus the readings)');
  t.equal(queue.ready(budget), 'alarm', 'the storage state may spend the alarm reserve');
  await queue.addAlarm({ id: 'c.alarm', t: SINCE, v: true });
  const first = await queue.take(budget);
  t.same(first && decodeStorageStatus(first.bytes), { state: 'read-only', error: 'newer', since: SINCE + 1000 }, 'sent before an alarm reading');
  t.equal(first?.priority, 'alarm');

  // Recovered during the session: the recovery still goes after the read-only state is sent.
  await queue.setStorage({ state: 'ok', since: SINCE + 5000 }, clock.now());
  await queue.sent();
  t.same(queue.storageWaiting, { state: 'ok', since: SINCE + 5000 }, 'the newer state stays for the next session');

  // A restart: the slot comes back from mo-queue.json.
  const file = JSON.parse(await readFile(join(dir, 'mo-queue.json'), 'utf8'));
  t.same(file.storage, { state: 'ok', since: SINCE + 5000 }, 'on disk');
  const reopened = await openQueue(dir);
  t.same(reopened.storageWaiting, { state: 'ok', since: SINCE + 5000 }, 'restored after a restart');
  await reopened.setStorage(undefined, clock.now());
  t.same(reopened.storageWaiting, { state: 'ok', since: SINCE + 5000 }, 'a gateway that starts with nothing to report keeps a waiting recovery');
  const next = await reopened.take(budget);
  t.same(next && decodeStorageStatus(next.bytes), { state: 'ok', since: SINCE + 5000 });
  await reopened.sent();
  t.equal(reopened.storageWaiting, undefined, 'sent: the slot is empty');
  t.equal((await reopened.take(budget))?.priority, 'alarm', 'then the alarm reading');
  await reopened.setStorage(undefined, clock.now());
  t.equal(reopened.storageWaiting, undefined, 'nothing to report and nothing waiting: nothing is sent');

  // A read-only state left from before a restart after which storage was fine: not true any more.
  await reopened.setStorage({ state: 'read-only', error: ENOSPC, since: SINCE + 9000 }, clock.now());
  const third = await openQueue(dir);
  await third.setStorage(undefined, SINCE + 20_000);
  t.same(third.storageWaiting, { state: 'ok', since: SINCE + 20_000 }, 'a stale read-only state becomes the recovery, since the start');

  await budget.record(2);
  t.equal(third.ready(budget), undefined, 'the reserve spent too: it waits for the next day');
  t.equal(await third.take(budget), undefined);

  const dropped = await openQueue(dir);
  await dropped.take(await CreditBudget.open(await tempDir(t), { dailyCredits: 6, alarmReserve: 2, historyShare: 1 }, clock, 'UTC'));
  await dropped.drop(new OutpostError('IRIDIUM_SESSION_FAILED', 'MO status 12'));
  t.equal(dropped.storageWaiting, undefined, 'a message the gateway refuses for good is dropped (and logged)');
});

t.test('forwarding queue: a storage slot that makes no sense sets the file aside; bad states and clocks', async (t) => {
  const dir = await tempDir(t, 'outpost-iridium-storage-');
  await writeFile(join(dir, 'mo-queue.json'), JSON.stringify({ version: 1, alarms: [], latest: [], history: [], storage: { state: 'full', since: SINCE } }));
  const queue = await openQueue(dir);
  t.equal(queue.storageWaiting, undefined, 'started empty');
  t.match(await readdir(dir), [/^mo-queue\.json\.damaged-\d+$/], 'the file is kept aside for a person to look at');
  await queue.setStorage({ state: 'read-only', error: 'disk full', since: 5_000 }, 5_000);
  t.same(
    queue.storageWaiting,
    { state: 'read-only', error: 'disk full', since: CODEC_EPOCH_MS },
    'a clock not set yet: the alarm goes, its time as 2020-01-01',
  );
  await t.rejects(
    queue.setStorage({ state: 'full', since: SINCE } as unknown as StorageStatus, Date.now()),
    { code: 'IRIDIUM_CODEC' },
    'a state the wire format has not',
  );
  t.equal(queue.storageWaiting?.state, 'read-only', 'does not take the slot');
  await t.rejects(queue.setStorage({ state: 'ok', since: Number.NaN }, Date.now()), { code: 'IRIDIUM_CODEC' }, 'a time that is not one');
});

t.test('a sent message whose credit spend cannot be saved (full disk) is not sent again', async (t) => {
  const r = await linkRig(t, {}, { dailyCredits: 10, alarmReserve: 2, historyShare: 1 });
  // credits.json cannot be written any more (its directory is gone), as on a full disk.
  await rm(r.dir, { recursive: true, force: true });
  r.link.start();
  const sending = r.link.send(encodeStorageStatus({ state: 'read-only', error: ENOSPC, since: SINCE }), 'alarm');
  sending.catch(() => undefined); // asserted below; the link's stop fails it if it never resolved
  await waitFor(() => r.sim.received.length >= 1);
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal(r.sim.received.length, 1, 'once: not again and again, each time billed');
  const sent = await Promise.race([sending, new Promise<undefined>((resolve) => setTimeout(resolve, 2000, undefined))]);
  t.equal(sent?.credits, 1, 'the sender is told: sent and billed');
  t.equal(r.budget.today, 1, 'the spend is counted in memory');
});
