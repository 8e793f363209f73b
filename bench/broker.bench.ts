/**
 * Broker benchmark: QoS 0 and QoS 1 publish→subscribe throughput and latency (p50/p99),
 * Outpost (storage on, fsync group commit) vs bare Aedes vs Mosquitto, same load generator.
 * Each broker runs in its own process pinned to core 0; this load generator runs on core 1.
 *   npm run bench -- broker            (BENCH_MESSAGES=50000 for a longer run)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';

const here = dirname(fileURLToPath(import.meta.url));
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 20_000);
const LATENCY_RATE = 2000; // msg/s for the latency run, well below saturation of all three
const LATENCY_SECONDS = 3;
const DATAPOINTS = 100;
const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
if (hasTaskset) spawnSync('taskset', ['-pc', '1', String(process.pid)]);

interface Broker {
  name: string;
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

function pinned(cmd: string, args: string[]): ChildProcess {
  return hasTaskset ? spawn('taskset', ['-c', '0', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

function waitFor(child: ChildProcess, re: RegExp, stream: 'stdout' | 'stderr' = 'stdout'): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    child[stream]!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m) resolve(m);
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${buf}`)));
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.on('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
}

async function startOutpost(dir: string): Promise<Broker> {
  const cfg = join(dir, 'outpost.yaml');
  await writeFile(cfg, `gateway: { id: bench }\ndataDir: ${join(dir, 'data')}\nlog: { level: warn }\nbroker: { mqtt: { port: 0 } }\nhttp: { port: 0 }\n`);
  const child = pinned(process.execPath, [join(here, '..', 'runtime', 'cli.js'), 'start', '-c', cfg]);
  const m = await waitFor(child, /MQTT on 127\.0\.0\.1:(\d+)/);
  return { name: 'outpost (storage on)', port: Number(m[1]), child, stop: () => stopChild(child) };
}

async function startAedes(): Promise<Broker> {
  const child = pinned(process.execPath, [join(here, 'peers', 'aedes-server.js')]);
  const m = await waitFor(child, /listening (\d+)/);
  return { name: 'bare aedes', port: Number(m[1]), child, stop: () => stopChild(child) };
}

async function startMosquitto(dir: string): Promise<Broker | undefined> {
  if (spawnSync('which', ['mosquitto']).status !== 0) return undefined;
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n# Aedes has no per-client in-flight cap; lift Mosquitto's default of 20 so QoS 1 is compared like for like.\nmax_inflight_messages 0\n`);
  const child = pinned('mosquitto', ['-c', conf, '-v']);
  await waitFor(child, /running|Opening ipv4 listen socket/, 'stderr').catch(() => undefined);
  await new Promise((r) => setTimeout(r, 300));
  return { name: 'mosquitto', port, child, stop: () => stopChild(child) };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function throughput(port: number, qos: 0 | 1): Promise<number> {
  const url = `mqtt://127.0.0.1:${port}`;
  const sub = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  const pub = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  pub.stream.setMaxListeners(0); // MQTT.js adds one drain listener per queued publish
  let received = 0;
  const done = new Promise<void>((resolve) => sub.on('message', () => ++received === MESSAGES && resolve()));
  await sub.subscribeAsync('outpost/dp/+/value', { qos });
  const start = process.hrtime.bigint();
  const window = qos === 1 ? 1000 : 5000; // keep the in-flight window bounded for all brokers alike
  let inflight: Promise<unknown>[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    inflight.push(pub.publishAsync(`outpost/dp/bench.p${i % DATAPOINTS}/value`, JSON.stringify({ v: i, t: Date.now() }), { qos }));
    if (inflight.length >= window) {
      await Promise.all(inflight);
      inflight = [];
    }
  }
  await Promise.all(inflight);
  await Promise.race([done, new Promise((_, rej) => setTimeout(() => rej(new Error(`only ${received}/${MESSAGES} received`)), 120_000))]);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await Promise.all([sub.endAsync(), pub.endAsync()]);
  return MESSAGES / seconds;
}

async function latency(port: number, qos: 0 | 1): Promise<{ p50: number; p99: number }> {
  const url = `mqtt://127.0.0.1:${port}`;
  const sub = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  const pub = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  const samples: number[] = [];
  const sent = new Map<number, bigint>();
  sub.on('message', (_t, payload) => {
    const v = (JSON.parse(payload.toString()) as { v: number }).v;
    const at = sent.get(v);
    if (at !== undefined) samples.push(Number(process.hrtime.bigint() - at) / 1e6);
  });
  await sub.subscribeAsync('outpost/dp/+/value', { qos });
  const total = LATENCY_RATE * LATENCY_SECONDS;
  const start = Date.now();
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / LATENCY_RATE;
    const wait = due - Date.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    sent.set(i, process.hrtime.bigint());
    void pub.publishAsync(`outpost/dp/bench.l${i % DATAPOINTS}/value`, JSON.stringify({ v: i, t: Date.now() }), { qos });
  }
  await new Promise((r) => setTimeout(r, 1000));
  await Promise.all([sub.endAsync(), pub.endAsync()]);
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-broker-'));
const rows: Array<{ name: string; q0: number; q1: number; l0: { p50: number; p99: number }; l1: { p50: number; p99: number } }> = [];
try {
  for (const start of [() => startOutpost(dir), () => startAedes(), () => startMosquitto(dir)]) {
    const broker = await start();
    if (!broker) continue;
    try {
      const q0 = await throughput(broker.port, 0);
      const q1 = await throughput(broker.port, 1);
      const l0 = await latency(broker.port, 0);
      const l1 = await latency(broker.port, 1);
      rows.push({ name: broker.name, q0, q1, l0, l1 });
    } finally {
      await broker.stop();
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

const f = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => n.toFixed(2);
console.log(`broker: ${MESSAGES} messages over ${DATAPOINTS} topics, payload {"v":i,"t":ms}; brokers pinned to core 0, load generator ${hasTaskset ? 'on core 1' : 'unpinned (no taskset)'}`);
console.log('broker                 | QoS0 msg/s | QoS1 msg/s | QoS0 p50/p99 ms | QoS1 p50/p99 ms');
for (const r of rows) {
  console.log(`${r.name.padEnd(22)} | ${f(r.q0).padStart(10)} | ${f(r.q1).padStart(10)} | ${ms(r.l0.p50)} / ${ms(r.l0.p99)} | ${ms(r.l1.p50)} / ${ms(r.l1.p99)}`);
}
const outpost = rows.find((r) => r.name.startsWith('outpost'));
for (const peer of rows.filter((r) => r !== outpost)) {
  if (!outpost) break;
  console.log(`ratio outpost/${peer.name}: QoS0 throughput ${(outpost.q0 / peer.q0).toFixed(2)}, QoS1 throughput ${(outpost.q1 / peer.q1).toFixed(2)}, QoS1 p99 latency ${(outpost.l1.p99 / peer.l1.p99).toFixed(2)}`);
}
