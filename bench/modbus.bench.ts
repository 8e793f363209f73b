/**
 * Modbus adapter bench. Run: node --import tsx bench/modbus.bench.ts
 * (~75 s; MODBUS_BENCH_LONG=1 for 4–5× longer windows; MODBUS_BENCH_ROUNDS=n paired TCP rounds, default 9;
 * MODBUS_BENCH_RTU_ROUNDS=n, default 4; MODBUS_BENCH_ONLY=tcp|rtu.)
 *  1. Requests per poll cycle for an SDM630 template vs one request per datapoint.
 *  2. TCP: full-device polls/s of the adapter's polling engine vs a bare modbus-serial loop
 *     on the same in-process simulator. Both issue the SAME coalesced reads (the planner's
 *     5 blocks, not 37 single reads), one at a time (maxInFlight 1). Runs alternate
 *     bare/engine in paired rounds; each round's ratio is printed, the headline is the
 *     median. Process CPU per cycle (client + simulator, same for both) is printed too:
 *     on a loaded machine it is steadier than wall time. The pipelined engine (×8) and the
 *     engine feeding a real gateway (validation, LevelDB, retained publishes) are reported
 *     separately.
 *  3. RTU over a socat pty at 19200 and 115200 baud, the simulator holding each answer
 *     back for its real wire time plus the slave's t3.5: polls/s of the engine vs the
 *     frame-time limit, and vs a bare serialport master (writes the frame, waits for the
 *     answer, keeps t3.5) over the same pty, the best this pty and simulator allow.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { SerialPort } from 'serialport';
import { z } from 'zod';
import { defineAdapter, type AdapterContext } from '../runtime/adapter.js';
import { systemClock } from '../core/clock.js';
import { ModbusBus } from '../adapters/modbus/bus.js';
import { ModbusClient } from '../adapters/modbus/client.js';
import { crc16 } from '../adapters/modbus/codec.js';
import { DevicePoller } from '../adapters/modbus/device.js';
import { planReads, type ReadBlock } from '../adapters/modbus/planner.js';
import { ModbusSimulator, PtyPair } from '../adapters/modbus/simulator.js';
import { loadTemplates } from '../adapters/modbus/templates.js';
import { atOrAfter } from '../adapters/modbus/timing.js';
import { TcpLink } from '../adapters/modbus/transport-tcp.js';
import { RtuLine, bitsPerChar, interFrameGapMs } from '../adapters/modbus/transport-rtu.js';
import type { ModbusLink } from '../adapters/modbus/transport.js';
import { startTestGateway } from '../test/helpers/gateway.js';

const LONG = process.env.MODBUS_BENCH_LONG === '1';
// Many short paired windows rather than a few long ones: on a shared, loaded machine the load
// changes within seconds, and a pair measured back to back sees about the same load.
const WINDOW_MS = LONG ? 3_000 : 600;
const WARMUP_MS = 200;
const RTU_WINDOW_MS = LONG ? 10_000 : 2_500;
const ROUNDS = Number(process.env.MODBUS_BENCH_ROUNDS ?? 9);
const RTU_ROUNDS = Number(process.env.MODBUS_BENCH_RTU_ROUNDS ?? 4);
/** `tcp` or `rtu` runs only that part. */
const ONLY = process.env.MODBUS_BENCH_ONLY;
/** MODBUS_BENCH_VERBOSE=1 prints every round's rates and CPU. */
const VERBOSE = process.env.MODBUS_BENCH_VERBOSE === '1';
const template = loadTemplates().get('eastron-sdm630')!;
const sensors = template.points.filter((p) => p.kind === 'sensor');
const blocks = planReads(sensors, template);

// 1. Coalescing
console.log(
  `SDM630 (${sensors.length} sensor points): ${blocks.length} requests per cycle vs ${sensors.length} one-per-datapoint → ${(sensors.length / blocks.length).toFixed(1)}× fewer requests`,
);
console.log(`  reads: ${blocks.map((b) => `FC4 ${b.address}+${b.count}`).join(', ')}`);

interface Rate {
  cyclesPerS: number;
  /** Process CPU (user + system) per full cycle, µs; includes the in-process simulator. */
  cpuUsPerCycle: number;
}

/**
 * Rate over a window after a warm-up. With `stamps` (completion time of every cycle) the
 * rate is (completions − 1) / (last − first) inside the window, so a slow RTU cycle is not
 * quantised to whole cycles per window; otherwise `cycles()` is a counter.
 */
async function measure(cycles: () => number, stamps?: number[], windowMs = WINDOW_MS): Promise<Rate> {
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  const c0 = cycles();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, windowMs));
  const t1 = performance.now();
  const n = cycles() - c0;
  const cpu = process.cpuUsage(cpu0);
  const cpuUsPerCycle = (cpu.user + cpu.system) / Math.max(1, n);
  const inWindow = stamps?.filter((t) => t >= t0 && t <= t1) ?? [];
  if (inWindow.length >= 3) return { cyclesPerS: ((inWindow.length - 1) * 1000) / (inWindow.at(-1)! - inWindow[0]!), cpuUsPerCycle };
  return { cyclesPerS: (n * 1000) / (t1 - t0), cpuUsPerCycle };
}

/** The smallest AdapterContext the poller needs; values are counted, not stored, so the figure is the polling engine's. */
function benchContext(stamps?: number[]): AdapterContext {
  return {
    id: 'bench',
    log: pino({ level: 'silent' }),
    clock: systemClock,
    datapoints: { register: async () => [], get: () => undefined, list: () => [] },
    bus: {
      // One batch per cycle: its arrival is the cycle's completion time.
      publishValues: async (points: unknown[]) => {
        stamps?.push(performance.now());
        return points.length;
      },
      publishValue: async () => ({ v: 0, t: 0 }),
    },
    setStatus: () => undefined,
    fail: (err: unknown) => {
      throw err;
    },
  } as unknown as AdapterContext;
}

async function runPoller(link: ModbusLink, real?: { ctx: AdapterContext; prefix: string }, windowMs = WINDOW_MS): Promise<Rate & { dropped: number }> {
  const bus = new ModbusBus(link);
  const stamps: number[] = [];
  const ctx = real?.ctx ?? benchContext(stamps);
  const prefix = real?.prefix ?? 'bench.m';
  // interval 0: the next cycle starts as soon as the last answer is decoded (throughput, not schedule).
  const poller = new DevicePoller(
    ctx,
    bus,
    {
      name: 'm',
      bus: 'b',
      unit: 1,
      prefix,
      model: template.model,
      interval: 0,
      timeoutMs: 1000,
      maxRegisters: template.maxRegisters,
      maxGap: template.maxGap,
      backoff: { initialMs: 100, maxMs: 100 },
      points: sensors,
    },
    () => undefined,
  );
  await poller.start();
  const rate = await measure(() => poller.status.cycles, real ? undefined : stamps, windowMs);
  await poller.stop();
  bus.close();
  if (poller.status.errors > 0) throw new Error(`poller saw ${poller.status.errors} errors: ${poller.status.lastError}`);
  return { ...rate, dropped: poller.status.droppedBatches ?? 0 };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;

// 2. TCP
if (ONLY !== 'rtu') {
  const sim = new ModbusSimulator({ devices: [{ unit: 1, template: 'eastron-sdm630' }] });
  const port = await sim.listenTcp({ port: 0 });
  const bareLoop = async (): Promise<Rate> => {
    const client = new ModbusClient();
    await client.connectTCP('127.0.0.1', { port });
    client.setID(1);
    client.setTimeout(1000);
    let cycles = 0;
    let running = true;
    const loop = (async () => {
      while (running) {
        for (const b of blocks) await client.readInputRegisters(b.address, b.count);
        cycles++;
      }
    })();
    const rate = await measure(() => cycles);
    running = false;
    await loop;
    await new Promise<void>((r) => client.close(() => r()));
    return rate;
  };
  const engineLoop = async (maxInFlight: number): Promise<Rate> => {
    const link = new TcpLink({ host: '127.0.0.1', port, maxInFlight, connectTimeoutMs: 1000, reconnectMs: 100 });
    const r = await runPoller(link);
    await link.close();
    return r;
  };
  const rounds: Array<{ bare: Rate; engine: Rate }> = [];
  for (let i = 0; i < ROUNDS; i++) {
    // Alternate the order so neither side always runs on a warmer process.
    if (i % 2 === 0) rounds.push({ bare: await bareLoop(), engine: await engineLoop(1) });
    else {
      const engine = await engineLoop(1);
      rounds.push({ bare: await bareLoop(), engine });
    }
  }
  // Three windows, median: one short window is at the mercy of the load of the moment.
  const pipelinedRuns = [await engineLoop(8), await engineLoop(8), await engineLoop(8)];
  const pipelined = { cyclesPerS: median(pipelinedRuns.map((r) => r.cyclesPerS)) };

  // The engine feeding a real gateway: datapoint validation, LevelDB write, retained publish per value.
  let captured: AdapterContext | undefined;
  const probe = defineAdapter({
    type: 'bench-modbus-ctx',
    description: 'hands the bench a real adapter context',
    schema: z.strictObject({}),
    create: () => ({
      async start(ctx: AdapterContext) {
        captured = ctx;
      },
      async stop() {},
    }),
  });
  const teardowns: Array<() => unknown> = [];
  const gw = await startTestGateway(
    { teardown: (fn) => teardowns.push(fn) },
    { log: { level: 'warn' }, adapters: [{ id: 'benchmb', type: 'bench-modbus-ctx' }] },
    { types: [probe] },
  );
  const ingestLink = new TcpLink({ host: '127.0.0.1', port, maxInFlight: 1, connectTimeoutMs: 1000, reconnectMs: 100 });
  // Count the batches the gateway has durably stored (publishValues resolved), with their times.
  const real = captured!;
  const storedAt: number[] = [];
  const countingBus = Object.create(real.bus) as AdapterContext['bus'];
  countingBus.publishValues = async (points) => {
    const n = await real.bus.publishValues(points);
    storedAt.push(performance.now());
    return n;
  };
  const t0 = performance.now();
  const withIngest = await runPoller(ingestLink, { ctx: { ...real, bus: countingBus }, prefix: 'benchmb.m' });
  const storedInWindow = storedAt.filter((t) => t >= t0 + WARMUP_MS);
  const storedPerS = storedInWindow.length > 2 ? ((storedInWindow.length - 1) * 1000) / (storedInWindow.at(-1)! - storedInWindow[0]!) : 0;
  await ingestLink.close();
  await gw.stop();
  for (const fn of teardowns.reverse()) await fn();
  await sim.close();

  const ratios = rounds.map((r) => r.engine.cyclesPerS / r.bare.cyclesPerS);
  const bareMed = median(rounds.map((r) => r.bare.cyclesPerS));
  console.log(`TCP loopback, full SDM630 cycle (${blocks.length} coalesced reads, both sequential), ${ROUNDS} paired rounds of ${WINDOW_MS / 1000} s:`);
  if (!VERBOSE) console.log(`  per-round ratios: ${ratios.map(pct).join(' ')}`);
  for (const [i, r] of rounds.entries()) {
    if (!VERBOSE) break;
    console.log(
      `  round ${i + 1}: bare ${r.bare.cyclesPerS.toFixed(0)} cycles/s (${r.bare.cpuUsPerCycle.toFixed(0)} µs CPU/cycle), engine ${r.engine.cyclesPerS.toFixed(0)} cycles/s (${r.engine.cpuUsPerCycle.toFixed(0)} µs CPU/cycle) → ${pct(ratios[i]!)}; engine overhead ${(r.engine.cpuUsPerCycle - r.bare.cpuUsPerCycle).toFixed(0)} µs CPU/cycle`,
    );
  }
  console.log(
    `  adapter engine, 1 in flight: median ${pct(median(ratios))} of bare (range ${pct(Math.min(...ratios))}–${pct(Math.max(...ratios))}; target ≥ 80%)`,
  );
  const overhead = rounds.map((r) => r.engine.cpuUsPerCycle - r.bare.cpuUsPerCycle);
  console.log(
    `  process CPU per cycle (client + in-process simulator): bare ${median(rounds.map((r) => r.bare.cpuUsPerCycle)).toFixed(0)} µs, engine ${median(rounds.map((r) => r.engine.cpuUsPerCycle)).toFixed(0)} µs (medians); bare/engine ${pct(median(rounds.map((r) => r.bare.cpuUsPerCycle / r.engine.cpuUsPerCycle)))}; engine overhead median ${median(overhead).toFixed(0)} µs/cycle`,
  );
  console.log(
    `  adapter engine, pipelined ×8 (median of 3 windows): ${pipelined.cyclesPerS.toFixed(0)} cycles/s → ${pct(pipelined.cyclesPerS / bareMed)} of the median bare (device must allow pipelining)`,
  );
  console.log(
    `  engine + real gateway ingest (validate, LevelDB, retained publish): ${withIngest.cyclesPerS.toFixed(0)} cycles/s polled → ${pct(withIngest.cyclesPerS / bareMed)} of the median bare; ${storedPerS.toFixed(0)} cycles/s stored (${(storedPerS * sensors.length).toFixed(0)} values/s), ${withIngest.dropped} batches dropped by the bounded queue (16) because storage lagged`,
  );
  console.log(
    `    → storage/ingest, not polling, bounds end-to-end throughput: ${pct(storedPerS / bareMed)} of the bare poll rate is stored; process CPU ${withIngest.cpuUsPerCycle.toFixed(0)} µs per polled cycle`,
  );
}

// 3. RTU over a pty with emulated wire time
/** Request frame for an FC4 read: unit, fc, address, count, CRC (Modbus over Serial Line §2.5.1). */
function readFrame(unit: number, b: ReadBlock): Buffer {
  const f = Buffer.alloc(8);
  f[0] = unit;
  f[1] = 4;
  f.writeUInt16BE(b.address, 2);
  f.writeUInt16BE(b.count, 4);
  f.writeUInt16LE(crc16(f.subarray(0, 6)), 6);
  return f;
}

/** The peer: a bare serialport master that sends each frame, waits for its whole answer, then keeps t3.5 before the next. */
async function bareSerialLoop(path: string, baudRate: number): Promise<Rate> {
  const settings = { baudRate, parity: 'none', dataBits: 8, stopBits: 1 } as const;
  const gapMs = interFrameGapMs(settings);
  const port = new SerialPort({ path, ...settings, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  const frames = blocks.map((b) => ({ frame: readFrame(1, b), expect: 5 + 2 * b.count }));
  let cycles = 0;
  const stamps: number[] = [];
  let running = true;
  let got = 0;
  let wanted = 0;
  let answered: (() => void) | undefined;
  port.on('data', (chunk: Buffer) => {
    got += chunk.length;
    if (got >= wanted && answered) {
      const a = answered;
      answered = undefined;
      a();
    }
  });
  const loop = (async () => {
    while (running) {
      for (const f of frames) {
        got = 0;
        wanted = f.expect;
        const answer = new Promise<void>((r) => (answered = r));
        port.write(f.frame);
        await answer;
        const end = performance.now();
        await new Promise<void>((r) => atOrAfter(end + gapMs, r));
      }
      cycles++;
      stamps.push(performance.now());
    }
  })();
  const rate = await measure(() => cycles, stamps, RTU_WINDOW_MS);
  running = false;
  await loop;
  await new Promise<void>((r) => port.close(() => r()));
  return rate;
}

const dir = await mkdtemp(join(tmpdir(), 'outpost-modbus-bench-'));
try {
  for (const baudRate of ONLY === 'tcp' ? [] : [19200, 115200]) {
    const pty = new PtyPair(join(dir, `sim${baudRate}`), join(dir, `gw${baudRate}`));
    await pty.open();
    const sim = new ModbusSimulator({ devices: [{ unit: 1, template: 'eastron-sdm630' }] });
    await sim.attachRtu(pty.a, { baudRate, emulateWireTime: true });
    const settings = { path: pty.b, baudRate, parity: 'none', dataBits: 8, stopBits: 1 } as const;
    const engineRun = async (): Promise<Rate> => {
      const line = new RtuLine(settings, { reopenMs: 100 });
      await line.start();
      const r = await runPoller(line, undefined, RTU_WINDOW_MS);
      await line.close();
      return r;
    };
    // Paired rounds in alternating order; a loaded machine delays socat's copying unevenly.
    const peers: Rate[] = [];
    const engines: Rate[] = [];
    for (let i = 0; i < RTU_ROUNDS; i++) {
      if (i % 2 === 0) {
        peers.push(await bareSerialLoop(pty.b, baudRate));
        engines.push(await engineRun());
      } else {
        engines.push(await engineRun());
        peers.push(await bareSerialLoop(pty.b, baudRate));
      }
    }
    await sim.close();
    await pty.close();
    // Theoretical limit: every byte of request and response on the wire, t3.5 before the answer (the slave
    // sees the request end) and t3.5 before the next request (§2.5.1.1); nothing else.
    const charMs = (bitsPerChar(settings) * 1000) / baudRate;
    const gap = interFrameGapMs(settings);
    const cycleMs = blocks.reduce((sum, b) => sum + (8 + 5 + 2 * b.count) * charMs + 2 * gap, 0);
    const limit = 1000 / cycleMs;
    console.log(
      `RTU ${baudRate} baud over a socat pty (wire time + slave t3.5 emulated), frame-time limit ${limit.toFixed(2)} cycles/s (${cycleMs.toFixed(1)} ms/cycle):`,
    );
    for (let i = 0; i < RTU_ROUNDS; i++) {
      if (!VERBOSE) break;
      console.log(
        `  round ${i + 1}: bare serialport master ${peers[i]!.cyclesPerS.toFixed(2)} cycles/s (${pct(peers[i]!.cyclesPerS / limit)} of the limit), engine ${engines[i]!.cyclesPerS.toFixed(2)} cycles/s (${pct(engines[i]!.cyclesPerS / limit)} of the limit, ${pct(engines[i]!.cyclesPerS / peers[i]!.cyclesPerS)} of the peer)`,
      );
    }
    const best = (rs: Rate[]): number => Math.max(...rs.map((r) => r.cyclesPerS));
    const worst = (rs: Rate[]): number => Math.min(...rs.map((r) => r.cyclesPerS));
    console.log(`  bare serialport master (peer): ${pct(worst(peers) / limit)}–${pct(best(peers) / limit)} of the limit (what this pty + simulator allow)`);
    const vsPeer = engines.map((e, i) => e.cyclesPerS / peers[i]!.cyclesPerS);
    console.log(
      `  adapter engine: ${pct(worst(engines) / limit)}–${pct(best(engines) / limit)} of the limit, median ${pct(median(engines.map((e) => e.cyclesPerS)) / limit)} (target ≥ 90%); vs the peer in the same round: median ${pct(median(vsPeer))} (${vsPeer.map(pct).join(' ')})`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
