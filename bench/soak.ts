/**
 * Soak (issue 11): a realistic site load against a real `outpost start` process for
 * OUTPOST_SOAK_MINUTES (default 60): 500 datapoints, each published once a second over MQTT
 * (QoS 1, from 5 device connections of 100 datapoints each, as a plant room's MQTT devices
 * would), plus one QoS 1 subscriber on every value topic. RSS is sampled every 10 s from
 * /proc/<pid>/status.
 *
 * Prints start / peak / end RSS and the growth per hour from a least-squares line through the
 * samples of the second half (the first half includes warm-up: V8 heap sizing, LevelDB
 * caches, the first rollup buckets). Passes when that growth stays below
 * GROWTH_BOUND_MB_PER_HOUR and the peak below PEAK_BOUND_MB, and every published value was
 * acknowledged and stored (read back from the metrics counter).
 *
 *   OUTPOST_SOAK_MINUTES=3 node --import tsx bench/soak.ts        (smoke run)
 *   node dist/bench/soak.js                                       (1 hour, built)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';

const here = dirname(fileURLToPath(import.meta.url));
const MINUTES = Number(process.env.OUTPOST_SOAK_MINUTES ?? 60);
const SAMPLE_EVERY_MS = 10_000;
const DATAPOINTS = 500;
const DEVICES = 5;
/** A 1 GB Raspberry Pi: the gateway may not creep more than this per hour once warm (≈ 0.5 GB in 2 weeks would already be a leak). */
const GROWTH_BOUND_MB_PER_HOUR = 10;
const PEAK_BOUND_MB = 300;

function outpostArgs(): string[] {
  if (process.env.OUTPOST_BENCH_CLI) return [process.env.OUTPOST_BENCH_CLI];
  const built = join(here, '..', 'runtime', 'cli.js');
  return existsSync(built) ? [built] : ['--import', 'tsx', join(here, '..', 'runtime', 'cli.ts')];
}

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // The child refuses OUTPOST_* variables that name no config key.
  for (const name of Object.keys(env)) if (/^OUTPOST_(BENCH|PROOF|SOAK|TEST)_/.test(name)) delete env[name];
  return env;
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) / 1024;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const dir = await mkdtemp(join(tmpdir(), 'outpost-soak-'));
const cfg = join(dir, 'outpost.yaml');
await writeFile(
  cfg,
  `gateway: { id: soak }\ndataDir: ${JSON.stringify(join(dir, 'data'))}\nlog: { level: warn }\nbroker: { mqtt: { host: 127.0.0.1, port: 0 } }\nhttp: { host: 127.0.0.1, port: 0 }\n`,
);
const child: ChildProcess = spawn(process.execPath, [...outpostArgs(), 'start', '-c', cfg], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
let out = '';
child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
  const timer = setInterval(() => {
    const m = /ready: (http:\/\/\S+)\s+\(MQTT on 127\.0\.0\.1:(\d+)/.exec(out);
    if (m) {
      clearInterval(timer);
      resolve(m);
    }
  }, 50);
  child.once('exit', (code) => {
    clearInterval(timer);
    reject(new Error(`outpost exited (${code}) before ready:\n${out}`));
  });
});
const httpUrl = ready[1]!;
const url = `mqtt://127.0.0.1:${ready[2]}`;
const pid = child.pid!;

let acked = 0;
let failed = 0;
let delivered = 0;
const subscriber = await mqtt.connectAsync(url, { clientId: 'soak-sub', reconnectPeriod: 0 });
subscriber.on('message', () => delivered++);
await subscriber.subscribeAsync('outpost/dp/+/value', { qos: 1 });
const devices = await Promise.all(Array.from({ length: DEVICES }, (_, d) => mqtt.connectAsync(url, { clientId: `soak-device-${d}`, reconnectPeriod: 0 })));

const started = Date.now();
const endAt = started + MINUTES * 60_000;
/** V8's used heap as the gateway reports it: tells a JavaScript leak from native (LevelDB) growth. */
async function heapUsedMiB(): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  return Number(/^outpost_nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1] ?? NaN) / 2 ** 20;
}
const samples: Array<{ s: number; mib: number; heap: number }> = [{ s: 0, mib: rssMiB(pid), heap: await heapUsedMiB() }];
const sampler = setInterval(() => {
  void (async () => {
    try {
      const s = (Date.now() - started) / 1000;
      const mib = rssMiB(pid);
      samples.push({ s, mib, heap: await heapUsedMiB() });
      if (process.env.OUTPOST_SOAK_VERBOSE === '1')
        console.log(`  t=${s.toFixed(0)} s RSS ${mib.toFixed(1)} MB heap used ${samples.at(-1)!.heap.toFixed(1)} MB`);
    } catch (err) {
      console.error(`RSS sample failed (process gone?): ${(err as Error).message}`);
    }
  })();
}, SAMPLE_EVERY_MS);

// Every second, every datapoint gets a value: a sine with noise, as a meter would give.
let tick = 0;
let published = 0;
while (Date.now() < endAt && child.exitCode === null) {
  const t = started + tick * 1000;
  for (let i = 0; i < DATAPOINTS; i++) {
    const device = devices[i % DEVICES]!;
    const v = Math.round((Math.sin((tick + i) / 60) * 100 + Math.random()) * 100) / 100;
    published++;
    device.publish(`outpost/dp/soak.d${i % DEVICES}.p${i}/value`, JSON.stringify({ v, t }), { qos: 1 }, (err) => (err ? failed++ : acked++));
  }
  tick++;
  const next = started + tick * 1000;
  if (next > Date.now()) await sleep(next - Date.now());
}
const deadline = Date.now() + 15_000;
while (acked + failed < published && Date.now() < deadline) await sleep(100);
clearInterval(sampler);
samples.push({ s: (Date.now() - started) / 1000, mib: rssMiB(pid), heap: await heapUsedMiB() });
const metrics = await (await fetch(`${httpUrl}/metrics`)).text();
const stored = Number(/^outpost_points_stored_total\{adapter="mqtt"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
await Promise.all([...devices, subscriber].map((c) => c.endAsync(true)));
child.kill('SIGTERM');
await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
await rm(dir, { recursive: true, force: true });

const second = samples.filter((x) => x.s >= (MINUTES * 60) / 2);
const perHour =
  second.length >= 2
    ? slope(
        second.map((x) => x.s),
        second.map((x) => x.mib),
      ) * 3600
    : Number.NaN;
const peak = Math.max(...samples.map((x) => x.mib));
const heapPerHour =
  second.length >= 2
    ? slope(
        second.map((x) => x.s),
        second.map((x) => x.heap),
      ) * 3600
    : Number.NaN;
console.log(
  `soak: ${MINUTES} min, ${DATAPOINTS} datapoints at 1 s over ${DEVICES} MQTT connections (QoS 1) + 1 subscriber; RSS every ${SAMPLE_EVERY_MS / 1000} s (${samples.length} samples)`,
);
console.log(`  published ${published}, acknowledged ${acked}, failed ${failed}, stored ${stored}, delivered to the subscriber ${delivered}`);
console.log(`  RSS start ${samples[0]!.mib.toFixed(1)} MB, peak ${peak.toFixed(1)} MB, end ${samples.at(-1)!.mib.toFixed(1)} MB`);
console.log(
  `  V8 heap used: start ${samples[0]!.heap.toFixed(1)} MB, end ${samples.at(-1)!.heap.toFixed(1)} MB, second-half trend ${heapPerHour.toFixed(1)} MB/h`,
);
console.log(
  `  growth over the second half (least squares, ${second.length} samples): ${perHour.toFixed(1)} MB/h (bound ${GROWTH_BOUND_MB_PER_HOUR} MB/h), peak bound ${PEAK_BOUND_MB} MB`,
);
if (MINUTES < 30) console.log('  note: a run this short extrapolates warm-up into the per-hour figure; the bound is meant for the 1 h run');
const pass =
  Number.isFinite(perHour) && perHour < GROWTH_BOUND_MB_PER_HOUR && peak < PEAK_BOUND_MB && failed === 0 && acked === published && stored >= published;
console.log(`  ${pass ? 'PASS' : 'FAIL'}`);
if (!pass) process.exitCode = 1;
