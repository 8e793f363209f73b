import t from 'tap';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { connectAsync } from 'mqtt';
import iridium from '../../../adapters/iridium/index.js';
import { CreditBudget } from '../../../adapters/iridium/budget.js';
import { MoCodec, type Reading } from '../../../adapters/iridium/codec.js';
import { IridiumSimulator } from '../../../adapters/iridium/simulator.js';
import { serialPortIo } from '../../../adapters/iridium/at-transport.js';
import { eventually, startTestGateway } from '../../helpers/gateway.js';
import type { AdapterType } from '../../../runtime/adapter.js';
import type { Clock } from '../../../core/clock.js';
import { FAST_TIMING, openSerial, ptyPair } from './harness.js';
import { tempDir } from '../../helpers/teardown.js';

const datapoints = [
  { id: 'tank.level', decimals: 2 },
  { id: 'tank.overflow', type: 'boolean' as const, alarm: true },
];
const codecTable = datapoints.map((d) => ({ id: d.id, decimals: d.decimals ?? 0, type: d.type ?? ('number' as const) }));
const FAST = { ...FAST_TIMING, signalRetryMs: 100 };

// Issue 22: an alarm waiting for the satellite sat in an in-memory queue and was lost at restart.
t.test('an alarm waiting through an outage survives a restart and goes first after it', async (t) => {
  const { a, b } = await ptyPair(t);
  const sim = new IridiumSimulator(serialPortIo(await openSerial(t, b)), { echo: true, signal: 0 }); // no satellite in view
  t.teardown(() => sim.close());
  const dataDir = await tempDir(t, 'outpost-iridium-restart-');
  const config = {
    gateway: { id: 'cabin-3' },
    adapters: [{ id: 'sat', type: 'iridium', port: a, datapoints, sendIntervalMs: 3_600_000, budget: { dailyCredits: 20, alarmReserve: 5 }, timing: FAST }],
  };
  const types = [iridium as unknown as AdapterType];

  const first = await startTestGateway(t, config, { types, dataDir });
  await eventually(() => first.gateway.store.latest('sat.link_state')?.v === 'idle');
  const client = await connectAsync(first.mqttUrl);
  const t0 = Math.floor(Date.now() / 1000) * 1000 - 60_000;
  for (let i = 0; i < 5; i++) await client.publishAsync('outpost/dp/tank.level/value', JSON.stringify({ v: 2 + i / 10, t: t0 + i * 10_000 }), { qos: 1 });
  await client.publishAsync('outpost/dp/tank.overflow/value', JSON.stringify({ v: true, t: t0 + 55_000 }), { qos: 1 });
  await eventually(() => first.gateway.store.latest('sat.link_state')?.v === 'no_signal');
  await eventually(() => first.gateway.store.latest('sat.queue')?.v === 1);
  await client.endAsync();
  await first.stop();
  t.equal(sim.received.length, 0, 'nothing went out before the restart');

  sim.signal = 5; // the satellite is back
  const second = await startTestGateway(t, config, { types, dataDir });
  const codec = new MoCodec({ timeResolutionMs: 1000, datapoints: codecTable });
  await eventually(() => sim.received.length >= 1, 8000);
  const readings = codec.decode(sim.received[0]!.bytes).readings;
  t.ok(
    readings.some((r) => r.id === 'tank.overflow' && r.v === true && r.t === t0 + 55_000),
    'the alarm is in the first message after the restart',
  );
  // The buffered readings were saved at stop too, and ride in the same paid credit.
  t.same(
    readings.filter((r) => r.id === 'tank.level').map((r) => r.v),
    [2, 2.1, 2.2, 2.3, 2.4],
    'the level readings buffered at the stop came along',
  );
  t.equal(sim.received.length, 1, 'one message');
  await eventually(() => second.gateway.store.latest('sat.queue')?.v === 0);
});

const noLog = pino({ level: 'silent' });
const clock: Clock = { now: () => Date.now(), sleep: async () => undefined };

t.test('forwarding queue: bounded, the message in doubt goes again as it was, a damaged file is set aside', async (t) => {
  // Imported here, so the restart test above also runs (and fails) against the code before the queue existed.
  const { ForwardQueue } = await import('../../../adapters/iridium/mo-queue.js');
  const dir = await tempDir(t, 'outpost-iridium-queue-');
  const codec = new MoCodec({ timeResolutionMs: 1000, datapoints: codecTable });
  let seq = 100;
  const open = () => ForwardQueue.open({ dataDir: dir, codec, takeSeq: async () => seq++, maxReadings: 20, maxAlarms: 3, log: noLog });
  const budget = await CreditBudget.open(dir, { dailyCredits: 100, alarmReserve: 0, historyShare: 1 }, clock, 'UTC');
  const T = Date.UTC(2025, 5, 1);
  const q = await open();
  for (let i = 0; i < 5; i++) await q.addAlarm({ id: 'tank.overflow', t: T + i * 1000, v: true });
  const batch: Reading[] = Array.from({ length: 30 }, (_, i) => ({ id: 'tank.level', t: T + i * 60_000, v: i / 10 }));
  await q.release(batch);
  t.equal(q.readings, 3 + 20, 'at most 3 alarms and 20 other readings kept');
  t.equal(q.dropped, 2 + 10, 'the oldest dropped');

  const taken = await q.take(budget);
  t.ok(taken, 'a message');
  t.equal(taken!.priority, 'alarm');
  const decoded = codec.decode(taken!.bytes);
  t.equal(decoded.seq, 100);
  t.same(
    decoded.readings.filter((r) => r.id === 'tank.overflow').map((r) => r.t),
    [T + 2000, T + 3000, T + 4000],
    'the newest alarms, all in the first message',
  );

  // A restart before the session finished: the same bytes (same message number) go again.
  const again = await open();
  t.equal(again.size, 1, 'only the message in doubt');
  t.same((await again.take(budget))!.bytes, taken!.bytes);
  await again.sent();
  t.equal((await open()).size, 0, 'sent: nothing left after another restart');

  await writeFile(join(dir, 'mo-queue.json'), '{"version": 1, "alarms": [');
  const fresh = await open();
  t.equal(fresh.size, 0, 'a damaged file does not stop the adapter');
  const files = await readdir(dir);
  t.ok(
    files.some((f) => f.startsWith('mo-queue.json.damaged-')),
    'it is kept aside for a look',
  );
  t.ok((await readFile(join(dir, files.find((f) => f.startsWith('mo-queue.json.damaged-'))!), 'utf8')).startsWith('{"version"'));
});
