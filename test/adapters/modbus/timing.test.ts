import t from 'tap';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { SerialPort } from 'serialport';
import type { AdapterContext } from '../../../runtime/adapter.js';
import { systemClock } from '../../../core/clock.js';
import { ModbusBus } from '../../../adapters/modbus/bus.js';
import { crc16 } from '../../../adapters/modbus/codec.js';
import { DevicePoller } from '../../../adapters/modbus/device.js';
import { ModbusSimulator, PtyPair } from '../../../adapters/modbus/simulator.js';
import { loadTemplates } from '../../../adapters/modbus/templates.js';
import { atOrAfter } from '../../../adapters/modbus/timing.js';
import { RtuLine, bitsPerChar, interFrameGapMs } from '../../../adapters/modbus/transport-rtu.js';
import { tempDir } from '../../helpers/teardown.js';

t.test('atOrAfter never runs before its deadline, and a cancelled wait never runs', async (t) => {
  // Waits around the 1-2 ms of an RTU gap, where a whole-millisecond timer can fire ~1 ms early.
  const early: string[] = [];
  for (let i = 0; i < 150; i++) {
    const wait = (i % 30) / 10; // 0 .. 2.9 ms
    const deadline = performance.now() + wait;
    const firedAt = await new Promise<number>((resolve) => atOrAfter(deadline, () => resolve(performance.now())));
    if (firedAt < deadline) early.push(`${wait} ms wait fired ${(deadline - firedAt).toFixed(3)} ms early`);
  }
  t.same(early, [], 'no wait ended early');
  let ran = false;
  const cancel = atOrAfter(performance.now() + 2, () => (ran = true));
  cancel();
  const cancelSoon = atOrAfter(performance.now() + 0.2, () => (ran = true));
  cancelSoon();
  await new Promise((r) => setTimeout(r, 20));
  t.equal(ran, false);
});

function context(): AdapterContext {
  return {
    id: 'mb',
    log: pino({ level: 'silent' }),
    clock: systemClock,
    datapoints: { register: async () => [] },
    bus: { publishValues: async () => 0, publishValue: async () => ({}) },
    setStatus: () => undefined,
    fail: (err: unknown) => {
      throw err;
    },
  } as unknown as AdapterContext;
}

for (const baudRate of [19200, 115200]) {
  t.test(`RTU at ${baudRate} baud: every request waits at least t3.5 after the last frame, also after a timeout`, async (t) => {
    const dir = await tempDir(t, 'outpost-modbus-');
    const pty = new PtyPair(join(dir, 'sim'), join(dir, 'gw'));
    await pty.open();
    t.teardown(() => pty.close());
    const sim = new ModbusSimulator({
      devices: [
        { unit: 1, template: 'eastron-sdm630' },
        { unit: 2, template: 'eastron-sdm120', fault: { kind: 'timeout' } },
      ],
    });
    t.teardown(() => sim.close());
    await sim.attachRtu(pty.a, { baudRate });
    const line = new RtuLine({ path: pty.b, baudRate, parity: 'none', dataBits: 8, stopBits: 1 }, { reopenMs: 100 });
    await line.start();
    t.teardown(() => line.close());
    // Record when each transaction is handed to the port and when its answer (or timeout) came back.
    const starts: number[] = [];
    const ends: number[] = [];
    const execute = line.execute.bind(line);
    line.execute = (unit, request, timeoutMs, done) => {
      starts.push(performance.now());
      execute(unit, request, timeoutMs, (err, res) => {
        ends.push(performance.now());
        done(err, res);
      });
    };
    const bus = new ModbusBus(line);
    t.teardown(() => bus.close());
    const sdm630 = loadTemplates().get('eastron-sdm630')!;
    const sdm120 = loadTemplates().get('eastron-sdm120')!;
    const common = { bus: 'b', interval: 50, maxGap: 8, maxRegisters: 125, backoff: { initialMs: 50, maxMs: 50 } };
    const healthy = new DevicePoller(
      context(),
      bus,
      {
        ...common,
        name: 'healthy',
        unit: 1,
        prefix: 'mb.healthy',
        model: sdm630.model,
        timeoutMs: 1000,
        points: sdm630.points.filter((p) => p.kind === 'sensor'),
      },
      () => undefined,
    );
    const dead = new DevicePoller(
      context(),
      bus,
      { ...common, name: 'dead', unit: 2, prefix: 'mb.dead', model: sdm120.model, timeoutMs: 30, points: sdm120.points.filter((p) => p.kind === 'sensor') },
      () => undefined,
    );
    await healthy.start();
    await dead.start();
    while (starts.length < 60 || dead.status.errors < 3) await new Promise((r) => setTimeout(r, 20));
    await healthy.stop();
    await dead.stop();
    const gapMs = interFrameGapMs(line.settings);
    const gaps = starts.slice(1).map((s, i) => s - ends[i]!);
    t.equal(ends.length >= starts.length - 1, true, 'one transaction at a time');
    t.ok(
      gaps.every((g) => g >= gapMs),
      `smallest gap ${Math.min(...gaps).toFixed(3)} ms over ${gaps.length} frames ≥ t3.5 = ${gapMs.toFixed(3)} ms`,
    );
    t.ok(healthy.status.cycles > 3 && dead.status.errors >= 3, 'both devices were polled, the dead one timed out');
  });
}

t.test('the simulator answers no sooner than request + t3.5 + response on a real line', async (t) => {
  const dir = await tempDir(t, 'outpost-modbus-');
  const pty = new PtyPair(join(dir, 'sim'), join(dir, 'gw'));
  await pty.open();
  t.teardown(() => pty.close());
  const baudRate = 19200;
  const sim = new ModbusSimulator({ devices: [{ unit: 1, template: 'eastron-sdm630' }] });
  t.teardown(() => sim.close());
  await sim.attachRtu(pty.a, { baudRate, emulateWireTime: true });
  const port = new SerialPort({ path: pty.b, baudRate, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  t.teardown(() => new Promise<void>((r) => port.close(() => r())));
  const frame = Buffer.from([1, 4, 0, 0, 0, 20, 0, 0]);
  frame.writeUInt16LE(crc16(frame.subarray(0, 6)), 6);
  const expected = 5 + 2 * 20;
  const charMs = (bitsPerChar({ parity: 'none', dataBits: 8, stopBits: 1 }) * 1000) / baudRate;
  const minimum = (8 + expected) * charMs + interFrameGapMs({ baudRate, parity: 'none', dataBits: 8, stopBits: 1 });
  for (let i = 0; i < 5; i++) {
    let got = 0;
    const sent = performance.now();
    const rtt = await new Promise<number>((resolve) => {
      const onData = (chunk: Buffer): void => {
        got += chunk.length;
        if (got >= expected) {
          port.off('data', onData);
          resolve(performance.now() - sent);
        }
      };
      port.on('data', onData);
      port.write(frame);
    });
    t.ok(rtt >= minimum, `round trip ${rtt.toFixed(2)} ms ≥ ${minimum.toFixed(2)} ms`);
  }
});
