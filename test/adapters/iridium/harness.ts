import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort, SerialPortMock } from 'serialport';
import { AtTransport, serialPortIo } from '../../../adapters/iridium/at-transport.js';
import { IridiumModem, type ModemOptions } from '../../../adapters/iridium/modem.js';
import { IridiumSimulator, mockDeviceIo, type SimulatorOptions } from '../../../adapters/iridium/simulator.js';
import { MoCodec } from '../../../adapters/iridium/codec.js';
import { mulberry32 } from '../../helpers/rng.js';
import type { Teardown } from '../../helpers/teardown.js';
import type { TestGateway } from '../../helpers/gateway.js';

/** Short waits so the suite runs in seconds; the real defaults are minutes. */
export const FAST_TIMEOUTS = { atMs: 400, startupMs: 2_000, startupProbeMs: 150, sessionMs: 1_500, sbdwbMs: 1_000, sbdrbOkMs: 150 };

/** The adapter's `timing` option for a gateway test on a pty: short waits, quick retries. */
export const FAST_TIMING = {
  atMs: 500,
  startupMs: 3000,
  startupProbeMs: 200,
  sessionMs: 2000,
  sbdwbMs: 1000,
  sbdrbOkMs: 200,
  backoffInitialMs: 50,
  backoffMaxMs: 200,
  budgetRetryMs: 200,
};

/** `outpost_adapter_info{adapter,key}` values from the gateway's /metrics. */
export async function adapterInfo(gw: TestGateway, adapter: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${gw.httpUrl}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^outpost_adapter_info\{([^}]*)\} (\S+)$/gm)) {
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (labels.adapter === adapter) out[labels.key!] = Number(m[2]);
  }
  return out;
}

/**
 * A real pseudo-terminal pair from socat (the `.ci/run` image installs it):
 * the driver opens `a`, the simulated modem `b`.
 */
export async function ptyPair(t: Teardown): Promise<{ a: string; b: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-iridium-pty-'));
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  const socat = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  socat.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  t.teardown(async () => {
    if (socat.exitCode === null) {
      const exited = new Promise((r) => socat.once('exit', r));
      socat.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  });
  const end = Date.now() + 5000;
  while (!stderr.includes('starting data transfer loop') || !existsSync(a) || !existsSync(b)) {
    if (socat.exitCode !== null) throw new Error(`socat exited: ${stderr}`);
    if (Date.now() > end) throw new Error(`socat did not create the pty pair: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { a, b };
}

export async function openSerial(t: Teardown, path: string): Promise<SerialPort> {
  const port = new SerialPort({ path, baudRate: 19200, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  t.teardown(() => (port.isOpen ? new Promise<void>((r) => port.close(() => r())) : undefined));
  return port;
}

export interface Rig {
  sim: IridiumSimulator;
  transport: AtTransport;
  modem: IridiumModem;
}

/** Driver on one end of a real pty, simulator on the other. */
export async function ptyRig(t: Teardown, sim: SimulatorOptions = {}, modem: ModemOptions = {}): Promise<Rig> {
  const { a, b } = await ptyPair(t);
  const device = await openSerial(t, b);
  const host = await openSerial(t, a);
  return rig(t, serialPortIo(device), serialPortIo(host), sim, modem);
}

let mockPorts = 0;
/** Same, over the serialport mock binding (no kernel involved; faster). */
export async function mockRig(t: Teardown, sim: SimulatorOptions = {}, modem: ModemOptions = {}): Promise<Rig> {
  const path = `/dev/iridium-mock-${process.pid}-${mockPorts++}`;
  SerialPortMock.binding.createPort(path, { echo: false, record: false });
  const host = new SerialPortMock({ path, baudRate: 19200, autoOpen: false });
  await new Promise<void>((resolve, reject) => host.open((err) => (err ? reject(err) : resolve())));
  t.teardown(() => (host.isOpen ? new Promise<void>((r) => host.close(() => r())) : undefined));
  return rig(t, mockDeviceIo(host), serialPortIo(host), sim, modem);
}

function rig(
  t: Teardown,
  deviceIo: ReturnType<typeof serialPortIo>,
  hostIo: ReturnType<typeof serialPortIo>,
  simOptions: SimulatorOptions,
  modemOptions: ModemOptions,
): Rig {
  const sim = new IridiumSimulator(deviceIo, simOptions);
  const transport = new AtTransport(hostIo);
  const modem = new IridiumModem(transport, { ...modemOptions, timeouts: { ...FAST_TIMEOUTS, ...modemOptions.timeouts } });
  t.teardown(() => {
    transport.close();
    sim.close();
  });
  return { sim, transport, modem };
}

/** Deterministic PRNG for property tests. */
export const seeded = mulberry32;

/** A codec of three datapoints, `a.level` and `b.temp` (numbers) and `c.alarm` (a flag), for the packing and link tests. */
export function threePointCodec(): MoCodec {
  return new MoCodec({
    timeResolutionMs: 1000,
    datapoints: [
      { id: 'a.level', decimals: 2, type: 'number' },
      { id: 'b.temp', decimals: 1, type: 'number' },
      { id: 'c.alarm', decimals: 0, type: 'boolean' },
    ],
  });
}
