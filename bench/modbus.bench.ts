/**
 * Modbus adapter bench. Run: node --import tsx bench/modbus.bench.ts
 * (MODBUS_BENCH_LONG=1 for 5× longer runs.)
 *  1. Requests per poll cycle for an SDM630 template vs one request per datapoint.
 *  2. TCP: full-device polls/s of the adapter's polling engine vs a bare modbus-serial loop
 *     reading the same blocks from the same simulator, in the same run.
 *  3. RTU over a socat pty at 19200 and 115200 baud, with the simulator holding each answer
 *     back for its real wire time: polls/s vs the theoretical frame-time limit.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import type { AdapterContext } from '../runtime/adapter.js';
import { systemClock } from '../runtime/clock.js';
import { ModbusBus } from '../adapters/modbus/bus.js';
import { ModbusClient } from '../adapters/modbus/client.js';
import { DevicePoller } from '../adapters/modbus/device.js';
import { planReads } from '../adapters/modbus/planner.js';
import { ModbusSimulator, PtyPair } from '../adapters/modbus/simulator.js';
import { loadTemplates } from '../adapters/modbus/templates.js';
import { TcpLink } from '../adapters/modbus/transport-tcp.js';
import { RtuLine, bitsPerChar, interFrameGapMs } from '../adapters/modbus/transport-rtu.js';
import type { ModbusLink } from '../adapters/modbus/transport.js';

const LONG = process.env.MODBUS_BENCH_LONG === '1';
const DURATION_MS = LONG ? 10_000 : 1_500;
const template = loadTemplates().get('eastron-sdm630')!;
const sensors = template.points.filter((p) => p.kind === 'sensor');
const blocks = planReads(sensors, template);

// 1. Coalescing
console.log(`SDM630 (${sensors.length} sensor points): ${blocks.length} requests per cycle vs ${sensors.length} one-per-datapoint → ${(sensors.length / blocks.length).toFixed(1)}× fewer requests`);
console.log(`  reads: ${blocks.map((b) => `FC4 ${b.address}+${b.count}`).join(', ')}`);

/** The smallest AdapterContext the poller needs; values are counted, not stored, so the figure is the polling engine's. */
function benchContext(): { ctx: AdapterContext; published: () => number } {
  let n = 0;
  const ctx = {
    id: 'bench',
    log: pino({ level: 'silent' }),
    clock: systemClock,
    datapoints: { register: async () => [], get: () => undefined, list: () => [] },
    bus: { publishValues: async (points: unknown[]) => (n += points.length), publishValue: async () => ({ v: 0, t: 0 }) },
    setStatus: () => undefined,
    fail: (err: unknown) => {
      throw err;
    },
  } as unknown as AdapterContext;
  return { ctx, published: () => n };
}

async function runPoller(link: ModbusLink, unit: number): Promise<{ cyclesPerS: number; requestsPerCycle: number }> {
  const bus = new ModbusBus(link);
  const { ctx } = benchContext();
  // interval 0: the next cycle starts as soon as the last answer is decoded (throughput, not schedule).
  const poller = new DevicePoller(ctx, bus, { name: 'm', bus: 'b', unit, prefix: 'bench.m', model: template.model, interval: 0, timeoutMs: 1000, maxRegisters: template.maxRegisters, maxGap: template.maxGap, backoff: { initialMs: 100, maxMs: 100 }, points: sensors }, () => undefined);
  await poller.start();
  await new Promise((r) => setTimeout(r, 300)); // warm-up
  const c0 = poller.status.cycles;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, DURATION_MS));
  const cycles = poller.status.cycles - c0;
  const elapsed = performance.now() - t0;
  await poller.stop();
  if (poller.status.errors > 0) throw new Error(`poller saw ${poller.status.errors} errors: ${poller.status.lastError}`);
  return { cyclesPerS: (cycles * 1000) / elapsed, requestsPerCycle: blocks.length };
}

// 2. TCP
{
  const sim = new ModbusSimulator({ devices: [{ unit: 1, template: 'eastron-sdm630' }] });
  const port = await sim.listenTcp({ port: 0 });
  const bareLoop = async (): Promise<number> => {
    const client = new ModbusClient();
    await client.connectTCP('127.0.0.1', { port });
    client.setID(1);
    client.setTimeout(1000);
    const bareEnd = performance.now() + 300 + DURATION_MS;
    let cycles = 0;
    let t0 = 0;
    while (performance.now() < bareEnd) {
      if (!t0 && performance.now() > bareEnd - DURATION_MS) t0 = performance.now();
      for (const b of blocks) await client.readInputRegisters(b.address, b.count);
      if (t0) cycles++;
    }
    const rate = (cycles * 1000) / (performance.now() - t0);
    await new Promise<void>((r) => client.close(() => r()));
    return rate;
  };
  const engineLoop = async (): Promise<number> => {
    const link = new TcpLink({ host: '127.0.0.1', port, maxInFlight: 1, connectTimeoutMs: 1000, reconnectMs: 100 });
    const r = await runPoller(link, 1);
    await link.close();
    return r.cyclesPerS;
  };
  // Alternate the two and keep each one's best run, so warm-up and order do not favour either.
  const bare = Math.max(await bareLoop(), await bareLoop());
  const engine = { cyclesPerS: Math.max(await engineLoop(), await engineLoop()) };
  const pipelined = new TcpLink({ host: '127.0.0.1', port, maxInFlight: 8, connectTimeoutMs: 1000, reconnectMs: 100 });
  const engineP = await runPoller(pipelined, 1);
  await pipelined.close();
  await sim.close();
  console.log(`TCP loopback, full SDM630 cycle (${blocks.length} reads):`);
  console.log(`  bare modbus-serial loop      ${bare.toFixed(0)} cycles/s (${(bare * blocks.length).toFixed(0)} req/s)`);
  console.log(`  adapter engine, 1 in flight  ${engine.cyclesPerS.toFixed(0)} cycles/s → ${((engine.cyclesPerS / bare) * 100).toFixed(0)}% of bare (target ≥ 80%)`);
  console.log(`  adapter engine, pipelined ×8 ${engineP.cyclesPerS.toFixed(0)} cycles/s → ${((engineP.cyclesPerS / bare) * 100).toFixed(0)}% of bare (device must allow pipelining)`);
}

// 3. RTU over a pty with emulated wire time
const dir = await mkdtemp(join(tmpdir(), 'outpost-modbus-bench-'));
try {
  for (const baudRate of [19200, 115200]) {
    const pty = new PtyPair(join(dir, `sim${baudRate}`), join(dir, `gw${baudRate}`));
    await pty.open();
    const sim = new ModbusSimulator({ devices: [{ unit: 1, template: 'eastron-sdm630' }] });
    await sim.attachRtu(pty.a, { baudRate, emulateWireTime: true });
    const settings = { path: pty.b, baudRate, parity: 'none', dataBits: 8, stopBits: 1 } as const;
    const line = new RtuLine(settings, { reopenMs: 100 });
    await line.start();
    const result = await runPoller(line, 1);
    await line.close();
    await sim.close();
    await pty.close();
    // Theoretical limit: every byte of request and response on the wire, plus t3.5 before the answer and before the next request.
    const charMs = (bitsPerChar(settings) * 1000) / baudRate;
    const gap = interFrameGapMs(settings);
    const cycleMs = blocks.reduce((sum, b) => sum + (8 + 5 + 2 * b.count) * charMs + 2 * gap, 0);
    const limit = 1000 / cycleMs;
    console.log(`RTU ${baudRate} baud over a pty (wire time emulated): ${result.cyclesPerS.toFixed(2)} cycles/s vs frame-time limit ${limit.toFixed(2)} → ${((result.cyclesPerS / limit) * 100).toFixed(0)}% (target ≥ 90%)`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
