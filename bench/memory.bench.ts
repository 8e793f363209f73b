/**
 * Memory and start-up benchmark (issue 11): RSS idle, RSS under an MQTT load, and time to
 * ready, for
 *   - Outpost core only (minimal config: broker, storage, HTTP; no adapters, no Node-RED),
 *   - Outpost with all adapters (`outpost demo` with OUTPOST_FLOWS_ENABLED=false: simulated,
 *     bms-files, mqtt, Modbus TCP and OCPP with their simulators),
 *   - Outpost with Node-RED (`outpost demo` as shipped),
 * against peers measured in the same run: a bare Node-RED process (empty flows, editor on)
 * and Mosquitto (Debian package). Every process is measured from outside, the same way:
 * VmRSS from /proc/<pid>/status; time to ready from spawn to its ready line (Outpost:
 * "ready: http://..."; Node-RED: "Started flows"; Mosquitto: its port accepts a connection).
 * The load is the same for every process with a broker: one QoS 1 subscriber on
 * `outpost/dp/+/value` and a
 * publisher sending LOAD_RATE value messages/s at QoS 1 over 500 datapoint topics.
 *
 *   npm run bench -- memory                                  (built Outpost in dist/)
 *   node --import tsx bench/memory.bench.ts                  (Outpost from source through tsx: RSS and start-up include tsx)
 *   OUTPOST_BENCH_CLI=/path/to/dist/runtime/cli.js node --import tsx bench/memory.bench.ts
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { connect as netConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const SETTLE_MS = Number(process.env.OUTPOST_BENCH_SETTLE_MS ?? 5000);
const LOAD_SECONDS = Number(process.env.OUTPOST_BENCH_LOAD_SECONDS ?? 8);
const LOAD_RATE = Number(process.env.OUTPOST_BENCH_LOAD_RATE ?? 1000);
const DATAPOINTS = 500;

/** The Outpost CLI: an explicit build, the build this file belongs to (dist/bench), or the sources through tsx. */
function outpostArgs(): { args: string[]; label: string } {
  const explicit = process.env.OUTPOST_BENCH_CLI;
  if (explicit) return { args: [explicit], label: `built (${explicit})` };
  const built = join(here, '..', 'runtime', 'cli.js');
  if (existsSync(built)) return { args: [built], label: 'built (dist)' };
  return { args: ['--import', 'tsx', join(here, '..', 'runtime', 'cli.ts')], label: 'from source through tsx (adds tsx to RSS and start-up)' };
}

/** The child refuses OUTPOST_* variables that name no config key; the bench's own switches stay here. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const name of Object.keys(env)) if (/^OUTPOST_(BENCH|PROOF|SOAK|TEST)_/.test(name)) delete env[name];
  return env;
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

function waitForLine(child: ChildProcess, re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no ${re} within ${timeoutMs} ms:\n${buf.slice(-2000)}`)), timeoutMs);
    const onData = (d: Buffer): void => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code ?? signal}) before ready:\n${buf.slice(-2000)}`));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error('exited before its port opened');
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(10);
  }
  throw new Error(`port ${port} not open within ${timeoutMs} ms`);
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

interface Started {
  child: ChildProcess;
  /** MQTT port when the process has a broker (the load runs against it). */
  mqttPort?: number;
}

interface Contender {
  name: string;
  start(dir: string): Promise<Started>;
}

interface Result {
  name: string;
  readyMs: number;
  idleKiB: number;
  loadKiB?: number;
  delivered?: number;
}

/**
 * The same MQTT load for every broker: a QoS 1 subscriber reading every value, and a
 * QoS 1 publisher at a fixed rate (not full speed: the point is memory under a steady site
 * load, not throughput). Returns the peak RSS and how many messages the subscriber got.
 */
async function underLoad(pid: number, port: number): Promise<{ peakKiB: number; delivered: number }> {
  const url = `mqtt://127.0.0.1:${port}`;
  const sub = await mqtt.connectAsync(url, { clientId: 'bench-sub', reconnectPeriod: 0 });
  const pub = await mqtt.connectAsync(url, { clientId: 'bench-pub', reconnectPeriod: 0 });
  let delivered = 0;
  // Only the load's own values count (the demo's adapters publish on the same tree).
  sub.on('message', (topic) => {
    if (topic.startsWith('outpost/dp/bench.p')) delivered++;
  });
  await sub.subscribeAsync('outpost/dp/+/value', { qos: 1 });
  let peak = rssKiB(pid);
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssKiB(pid));
    } catch (err) {
      console.error(`RSS sample failed: ${(err as Error).message}`);
    }
  }, 200);
  const tBase = Date.now() - 3_600_000;
  const total = LOAD_RATE * LOAD_SECONDS;
  const started = Date.now();
  const inflight = new Set<Promise<unknown>>();
  for (let i = 0; i < total; i++) {
    // Paced: message i leaves no earlier than i / LOAD_RATE seconds after the start.
    const due = started + (i * 1000) / LOAD_RATE;
    if (due > Date.now()) await sleep(due - Date.now());
    const p = pub.publishAsync(`outpost/dp/bench.p${i % DATAPOINTS}/value`, JSON.stringify({ v: i, t: tBase + i }), { qos: 1 });
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    // A broker that cannot keep up slows the publisher instead of growing the client's queue.
    if (inflight.size >= 1000) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  const deadline = Date.now() + 10_000;
  while (delivered < total && Date.now() < deadline) await sleep(50);
  clearInterval(sampler);
  peak = Math.max(peak, rssKiB(pid));
  await Promise.all([sub.endAsync(true), pub.endAsync(true)]);
  return { peakKiB: peak, delivered };
}

async function measure(c: Contender): Promise<Result> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-mem-'));
  const t0 = performance.now();
  const started = await c.start(dir);
  const readyMs = performance.now() - t0;
  try {
    await sleep(SETTLE_MS);
    // Median of 5 samples, 200 ms apart: the idle figure.
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      samples.push(rssKiB(started.child.pid!));
      await sleep(200);
    }
    samples.sort((a, b) => a - b);
    const idleKiB = samples[2]!;
    if (started.mqttPort === undefined) return { name: c.name, readyMs, idleKiB };
    const load = await underLoad(started.child.pid!, started.mqttPort);
    return { name: c.name, readyMs, idleKiB, loadKiB: load.peakKiB, delivered: load.delivered };
  } finally {
    await stop(started.child);
    await rm(dir, { recursive: true, force: true });
  }
}

const outpost = outpostArgs();

async function startOutpost(args: string[], env: Record<string, string> = {}): Promise<Started> {
  const child = spawn(process.execPath, [...outpost.args, ...args], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const m = await waitForLine(child, /ready: http:\/\/\S+\s+\(MQTT on 127\.0\.0\.1:(\d+)/, 60_000);
  return { child, mqttPort: Number(m[1]) };
}

/** The demo binds 8080/1883 by default; ports 0 keep it off anything else on this machine. */
const DEMO_PORTS = { OUTPOST_HTTP_PORT: '0', OUTPOST_BROKER_MQTT_PORT: '0' };

const contenders: Contender[] = [
  {
    name: 'Outpost core only',
    async start(dir) {
      const cfg = join(dir, 'outpost.yaml');
      await writeFile(
        cfg,
        `gateway: { id: bench }\ndataDir: ${JSON.stringify(join(dir, 'data'))}\nlog: { level: warn }\nbroker: { mqtt: { host: 127.0.0.1, port: 0 } }\nhttp: { host: 127.0.0.1, port: 0 }\n`,
      );
      return startOutpost(['start', '-c', cfg]);
    },
  },
  {
    name: 'Outpost, all adapters (demo, no Node-RED)',
    start: (dir) => startOutpost(['demo', '--data-dir', join(dir, 'data')], { ...DEMO_PORTS, OUTPOST_FLOWS_ENABLED: 'false', OUTPOST_LOG_LEVEL: 'warn' }),
  },
  {
    name: 'Outpost + Node-RED (demo)',
    start: (dir) => startOutpost(['demo', '--data-dir', join(dir, 'data')], { ...DEMO_PORTS, OUTPOST_LOG_LEVEL: 'warn' }),
  },
  {
    name: 'bare Node-RED (empty flows)',
    async start(dir) {
      await writeFile(
        join(dir, 'settings.js'),
        `module.exports = { uiHost: '127.0.0.1', flowFile: 'flows.json', credentialSecret: 'bench-credential-secret-0123456789',
          telemetry: { enabled: false }, diagnostics: { enabled: false }, editorTheme: { tours: false } };\n`,
      );
      const redJs = join(dirname(require.resolve('node-red/package.json')), 'red.js');
      const child = spawn(process.execPath, [redJs, '-u', dir, '-s', join(dir, 'settings.js'), '-p', '0'], {
        env: childEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      await waitForLine(child, /Started flows/, 60_000);
      return { child };
    },
  },
];

const hasMosquitto = spawnSync('which', ['mosquitto']).status === 0;
if (hasMosquitto) {
  contenders.push({
    name: 'Mosquitto',
    async start(dir) {
      const port = await freePort();
      const conf = join(dir, 'mosquitto.conf');
      // persistence false: Mosquitto keeps nothing on disk, Outpost stores every value (a conservative comparison for Outpost).
      await writeFile(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 0\nmax_queued_messages 10000\n`);
      const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
      await waitForPort(port, child, 10_000);
      return { child, mqttPort: port };
    },
  });
}

const results: Result[] = [];
for (const c of contenders) {
  try {
    results.push(await measure(c));
  } catch (err) {
    console.error(`${c.name}: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}

const mb = (k: number | undefined): string => (k === undefined ? '—' : `${(k / 1024).toFixed(1)} MB`);
console.log(
  `Outpost ${outpost.label}; settle ${SETTLE_MS / 1000} s; load: QoS 1 subscriber on outpost/dp/+/value + QoS 1 publisher at ${LOAD_RATE} msg/s for ${LOAD_SECONDS} s over ${DATAPOINTS} datapoints`,
);
console.log(
  `${'process'.padEnd(44)} ${'ready'.padStart(9)} ${'RSS idle'.padStart(10)} ${'RSS load'.padStart(10)} ${'delivered'.padStart(10)}  (of ${LOAD_RATE * LOAD_SECONDS})`,
);
for (const r of results) {
  console.log(
    `${r.name.padEnd(44)} ${`${(r.readyMs / 1000).toFixed(2)} s`.padStart(9)} ${mb(r.idleKiB).padStart(10)} ${mb(r.loadKiB).padStart(10)} ${(r.delivered === undefined ? '—' : String(r.delivered)).padStart(10)}`,
  );
}
const byName = (prefix: string): Result | undefined => results.find((r) => r.name.startsWith(prefix));
const ratio = (a: Result | undefined, b: Result | undefined, key: 'readyMs' | 'idleKiB' | 'loadKiB'): string => {
  const x = a?.[key];
  const y = b?.[key];
  return x === undefined || y === undefined ? 'n/a' : `${(x / y).toFixed(2)}×`;
};
const core = byName('Outpost core');
const all = byName('Outpost, all');
const red = byName('Outpost + Node-RED');
const bareRed = byName('bare Node-RED');
const mosq = byName('Mosquitto');
console.log('ratios (RSS idle / RSS under load / time to ready):');
console.log(`  Outpost core / Mosquitto                   ${ratio(core, mosq, 'idleKiB')} / ${ratio(core, mosq, 'loadKiB')} / ${ratio(core, mosq, 'readyMs')}`);
console.log(
  `  Outpost + Node-RED / bare Node-RED         ${ratio(red, bareRed, 'idleKiB')} / n/a (bare Node-RED has no broker) / ${ratio(red, bareRed, 'readyMs')}`,
);
console.log(`  Outpost all adapters / Outpost core        ${ratio(all, core, 'idleKiB')} / ${ratio(all, core, 'loadKiB')} / ${ratio(all, core, 'readyMs')}`);
console.log(`  Outpost + Node-RED / Outpost all adapters  ${ratio(red, all, 'idleKiB')} / ${ratio(red, all, 'loadKiB')} / ${ratio(red, all, 'readyMs')}`);
if (red && all) console.log(`  Node-RED's share inside Outpost: ${mb(red.idleKiB - all.idleKiB)} idle`);
