import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { Receiver, inOrderPerDatapoint } from './helpers/receiver.js';
import { sensors, startSync, writeReadings } from './helpers/sync.js';
import { tempDir } from '../helpers/teardown.js';

const IDS = ['plant.m1.power', 'plant.m2.power', 'yard.temp'];
const N = 20_000;

t.test('gateway killed (SIGKILL) mid-drain restarts from the durable cursor: every record once after dedupe', async (t) => {
  const broker = await Mosquitto.create(t);
  const receiver = await Receiver.connect(t, broker.url, { clientId: 'central-kill', clean: false });
  const dataDir = await tempDir(t, 'outpost-kill-');

  const first = await startTestGateway(t, { datapoints: sensors(IDS) }, { dataDir });
  await writeReadings(first, IDS, N, Date.UTC(2025, 0, 1));
  await first.stop();

  // A separate process drains (bandwidth-capped so it is still busy when killed).
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'drain-child.ts'), dataDir, broker.url], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  // Kill once the drain is well under way and has made its cursor durable at least once (the
  // receiver can hold 2,000 records before the first acknowledgement is written on a loaded machine).
  const cursorFile = join(dataDir, 'sync', 'cursor.json');
  await eventually(() => receiver.records.length >= 2000 && existsSync(cursorFile), 30_000);
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
  const atKill = receiver.records.length;
  t.ok(atKill < N, `killed mid-drain (${atKill} of ${N} received)`);

  const cursor = JSON.parse(await readFile(cursorFile, 'utf8')).acked as number;
  t.ok(cursor > 0 && cursor < N, `durable cursor ${cursor} survived the kill`);
  t.ok(cursor <= receiver.records.length, 'the cursor never runs ahead of what the receiver has');

  // Restart: the full gateway on the same data dir, sync from the cursor.
  const second = await startTestGateway(t, { datapoints: sensors(IDS), storage: { sync: false } }, { dataDir });
  const { sync, logs } = await startSync(t, second, {
    pollMs: 20,
    datapointsIntervalMs: 0,
    links: [{ name: 'central', type: 'mqtt', url: broker.url, reconnectMs: 100 }],
  });
  const resumedAt = logs.find((l) => l.msg === 'sync starting from the durable cursor')?.cursor as number;
  t.ok(resumedAt >= cursor && resumedAt < N, `resumed from ${resumedAt}, not from 0`);
  await eventually(() => receiver.records.length === N, 30_000);
  t.same(
    receiver.records.map((r) => r.seq),
    Array.from({ length: N }, (_, i) => i + 1),
    'every record once, in order',
  );
  t.notOk(inOrderPerDatapoint(receiver.records));
  // Resent after the restart: only what was sent but not yet durably acknowledged (bounded by the window).
  t.ok(receiver.duplicates <= atKill - cursor + 4 * 200, `duplicates (${receiver.duplicates}) bounded by the in-flight window`);
  await eventually(async () => (await sync.snapshot()).backlogRecords === 0);
});
