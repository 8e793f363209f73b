/**
 * One measured run of the receiver: a fresh Mosquitto, `outpost central` on the given
 * database with `ingest.mqtt` on that broker, the simulated fleet (gateways-load.ts) emptying
 * its outboxes into the broker, and the receiver's own count of stored records
 * (`outpost_central_ingest_records_total`, from /metrics) until it holds them all. Every
 * message is acknowledged to the broker only after its commit, so "stored" there is durable.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import mqtt from 'mqtt';
import { hashToken } from '../../runtime/auth/passwords.js';
import type { FleetCommand, FleetData, FleetReport } from './gateways-load.js';
import { gatewayId, totalRecords, type IngestPlan } from './plan.js';
import { cpuSeconds, peakRss, startBroker, startReceiver, type Child } from './processes.js';

export interface ReceiverRunOptions {
  label: string;
  /** `level`, or a `postgres://` URL. */
  database: string;
  plan: IngestPlan;
  /** `ingest.mqtt.connections` of the receiver. */
  connections: number;
  window: number;
  cores: { receiver?: number; broker?: number };
  /** CPU seconds of the PostgreSQL cluster so far (none for the embedded store's run). */
  databaseCpu?: () => number;
  /** Runs once the receiver is up, before the fleet publishes (not timed). */
  beforeFleet?: () => Promise<void>;
  /** Runs once every record is stored, before the receiver stops (what the database did meanwhile). */
  afterIngest?: () => Promise<void>;
  /** Runs after the receiver stopped, with the data dir: checks what the store holds (throws on a mismatch). */
  verify(dataDir: string): Promise<string>;
}

export interface ReceiverRunResult {
  label: string;
  records: number;
  seconds: number;
  /** CPU seconds during the measured part. */
  cpu: { receiver: number; broker: number; database: number };
  receiverPeakRss: number;
  brokerPeakRss: number;
  commits: number;
  meanCommitMs: number;
  duplicates: number;
  refused: number;
  /** Fleet: encoded MQTT payload bytes and messages, and how long the broker took to acknowledge them all. */
  fleet: { bytes: number; messages: number; publishSeconds: number };
  verified: string;
  /** What the receiver logged (warnings and errors): a clean run logs nothing. */
  receiverLog: string;
}

const TOKEN = 'bench-central-ingest-token-0123456789';
const STALL_MS = 120_000;

/** Data dirs of runs under way, removed by `removeRunDirs` when the bench is interrupted. */
const runDirs = new Set<string>();

export function removeRunDirs(): void {
  for (const dir of runDirs) rmSync(dir, { recursive: true, force: true });
}

export async function runReceiver(o: ReceiverRunOptions): Promise<ReceiverRunResult> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-central-'));
  runDirs.add(dir);
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const broker = await startBroker(dir, o.cores.broker);
    stops.push(() => broker.stop());
    const yaml = join(dir, 'central.yaml');
    await writeFile(yaml, centralYaml(o, dir, broker.port));
    const observer = await sharedSubscriptions(broker.port);
    stops.unshift(() => observer.close());
    const receiver = await startReceiver(yaml, o.cores.receiver);
    stops.unshift(() => receiver.stop());
    await observer.until(3 * o.connections);
    await o.beforeFleet?.();

    const worker = fleetWorker({ host: '127.0.0.1', port: broker.port, plan: o.plan, window: o.window });
    const reports: FleetReport[] = [];
    const waiters: Array<() => void> = [];
    worker.on('message', (r: FleetReport) => {
      reports.push(r);
      for (const w of waiters.splice(0)) w();
    });
    worker.on('error', (err) => {
      reports.push({ type: 'failed', error: err.message });
      for (const w of waiters.splice(0)) w();
    });
    const next = async (type: FleetReport['type']): Promise<FleetReport> => {
      for (;;) {
        const failed = reports.find((r) => r.type === 'failed');
        if (failed) throw new Error(`fleet: ${(failed as { error: string }).error}`);
        const r = reports.find((x) => x.type === type);
        if (r) return r;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    };
    stops.unshift(async () => {
      worker.postMessage({ type: 'close' } satisfies FleetCommand);
      await Promise.race([next('closed'), new Promise((r) => setTimeout(r, 10_000))]).catch(() => undefined);
      await worker.terminate();
    });
    const ready = (await next('ready')) as Extract<FleetReport, { type: 'ready' }>;

    const total = totalRecords(o.plan);
    const metrics = () => scrape(receiver.url);
    const cpu0 = cpuNow(receiver, broker, o.databaseCpu);
    const started = performance.now();
    const startNs = process.hrtime.bigint();
    worker.postMessage({ type: 'go' } satisfies FleetCommand);
    let m = await metrics();
    let lastMoved = performance.now();
    let lastStored = 0;
    let lastPrinted = started;
    // Done when every record is stored: a duplicate (a redelivery) does not count towards it.
    while (m.stored < total) {
      for (const child of [receiver, broker])
        if (child.exit() !== undefined) throw new Error(`${child === receiver ? 'receiver' : 'broker'} died (${child.exit()}): ${child.output().slice(-2000)}`);
      const failed = reports.find((r) => r.type === 'failed' || (r.type === 'done' && r.errors.length > 0));
      if (failed) throw new Error(`fleet: ${JSON.stringify(failed)}`);
      if (m.stored > lastStored) {
        lastStored = m.stored;
        lastMoved = performance.now();
      } else if (performance.now() - lastMoved > STALL_MS)
        throw new Error(`${o.label}: nothing stored for ${STALL_MS / 1000} s at ${m.stored} of ${total}: ${receiver.output().slice(-2000)}`);
      // Poll more often near the end, so the end time is within ~50 ms without scraping all the time
      // (a scrape reads every gateway's state from the store).
      const elapsed = (performance.now() - started) / 1000;
      const rate = m.stored / Math.max(elapsed, 0.001);
      const left = rate > 0 ? (total - m.stored) / rate : 1;
      await new Promise((r) => setTimeout(r, Math.min(2000, Math.max(50, (left * 1000) / 4))));
      m = await metrics();
      if (performance.now() - lastPrinted >= 10_000) {
        lastPrinted = performance.now();
        const s = (lastPrinted - started) / 1000;
        console.log(
          `  ${s.toFixed(0)} s: ${m.stored.toLocaleString('en-US')} stored (${Math.round(m.stored / s).toLocaleString('en-US')}/s), ${m.duplicates} duplicates, ${m.commits} commits`,
        );
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const cpu1 = cpuNow(receiver, broker, o.databaseCpu);
    const receiverPeakRss = peakRss(receiver.pid);
    const brokerPeakRss = peakRss(broker.pid);
    const done = (await next('done')) as Extract<FleetReport, { type: 'done' }>;
    if (done.errors.length || done.acked !== ready.messages)
      throw new Error(`fleet: ${done.acked} of ${ready.messages} acknowledged: ${done.errors.join('; ')}`);
    await o.afterIngest?.();
    for (const stop of stops.splice(0)) await stop();
    const receiverLog = receiver
      .output()
      .split('\n')
      // Its warnings and errors (pino JSON, level ≥ 40); not the ready line or the first admin's password.
      .filter((l) => /^\{"level":[4-6]\d/.test(l))
      .join('\n');
    const verifyStarted = performance.now();
    const verified = `${await o.verify(join(dir, 'data'))} (checked in ${((performance.now() - verifyStarted) / 1000).toFixed(1)} s)`;
    return {
      label: o.label,
      records: m.stored,
      seconds,
      cpu: {
        receiver: cpu1.receiver - cpu0.receiver,
        broker: cpu1.broker - cpu0.broker,
        database: cpu1.database - cpu0.database,
      },
      receiverPeakRss,
      brokerPeakRss,
      commits: m.commits,
      meanCommitMs: m.commits ? (m.commitSeconds / m.commits) * 1000 : Number.NaN,
      duplicates: m.duplicates,
      refused: m.refused,
      fleet: { bytes: ready.encodedBytes, messages: ready.messages, publishSeconds: Number(done.lastAckNs - startNs) / 1e9 },
      verified,
      receiverLog,
    };
  } finally {
    for (const stop of stops) await stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    runDirs.delete(dir);
  }
}

/** The fleet's worker: built, the .js next to this file; from the sources, the .ts through tsx's loader (workers do not inherit `--import`). */
function fleetWorker(data: FleetData): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./gateways-load.js', import.meta.url), { workerData: data });
  const entry = new URL('./gateways-load.ts', import.meta.url).href;
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(code, { eval: true, workerData: data });
}

function centralYaml(o: ReceiverRunOptions, dir: string, brokerPort: number): string {
  const gateways: string[] = [];
  for (let g = 0; g < o.plan.gateways; g++) gateways.push(`  - id: ${gatewayId(g)}`);
  return [
    'id: bench-receiver',
    `dataDir: ${join(dir, 'data')}`,
    `database: ${JSON.stringify(o.database)}`,
    'log: { level: warn }',
    `http: { host: 127.0.0.1, port: 0, tokens: ["${hashToken(TOKEN)}"] }`,
    'ingest:',
    `  mqtt: { url: "mqtt://127.0.0.1:${brokerPort}", clientId: bench-receiver, connections: ${o.connections}, messagesInFlight: ${process.env.OUTPOST_BENCH_IN_FLIGHT ?? 16} }`,
    ...(o.database.startsWith('postgres')
      ? [
          // The store's defaults unless a knob says otherwise (central-ingest.bench.ts header).
          `postgres: { commitConcurrency: ${process.env.OUTPOST_BENCH_COMMIT_CONCURRENCY ?? 2}, commitMaxRecords: ${process.env.OUTPOST_BENCH_COMMIT_MAX_RECORDS ?? 10_000}, rollupRefreshSeconds: ${process.env.OUTPOST_BENCH_ROLLUP_SECONDS ?? 60} }`,
        ]
      : []),
    ...(o.database === 'level' && process.env.OUTPOST_BENCH_LEVEL_CACHE ? [`level: { cacheDatapoints: ${process.env.OUTPOST_BENCH_LEVEL_CACHE} }`] : []),
    'gateways:',
    ...gateways,
    '',
  ].join('\n');
}

function cpuNow(receiver: Child, broker: Child, database?: () => number) {
  return { receiver: cpuSeconds(receiver.pid), broker: cpuSeconds(broker.pid), database: database ? database() : 0 };
}

interface Scraped {
  stored: number;
  duplicates: number;
  refused: number;
  commits: number;
  commitSeconds: number;
}

/** The receiver's counters from its /metrics (Prometheus text). */
async function scrape(url: string): Promise<Scraped> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  if (!res.ok) throw new Error(`GET /metrics: HTTP ${res.status}`);
  const text = await res.text();
  const s: Scraped = { stored: 0, duplicates: 0, refused: 0, commits: 0, commitSeconds: 0 };
  for (const line of text.split('\n')) {
    const m = /^(\w+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const [, name, labels = '', raw] = m;
    const v = Number(raw);
    if (name === 'outpost_central_ingest_records_total') {
      if (labels.includes('result="stored"')) s.stored += v;
      else if (labels.includes('result="duplicate"')) s.duplicates += v;
      else if (labels.includes('result="refused"')) s.refused += v;
    } else if (name === 'outpost_central_ingest_commit_seconds_count') s.commits += v;
    else if (name === 'outpost_central_ingest_commit_seconds_sum') s.commitSeconds += v;
  }
  return s;
}

/**
 * Watches the broker's count of shared subscriptions: a batch published before the receiver
 * subscribed would go to no one. Mosquitto publishes `$SYS/broker/shared_subscriptions/count`
 * only when it changes, so the observer subscribes before the receiver starts.
 */
async function sharedSubscriptions(port: number): Promise<{ until(count: number): Promise<void>; close(): Promise<void> }> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'bench-observer', reconnectPeriod: 0 });
  let current = 0;
  const waiters: Array<() => void> = [];
  client.on('message', (_topic, payload) => {
    current = Number(payload.toString());
    for (const w of waiters.splice(0)) w();
  });
  await client.subscribeAsync('$SYS/broker/shared_subscriptions/count');
  return {
    async until(count) {
      const deadline = Date.now() + 60_000;
      while (current < count) {
        if (Date.now() > deadline) throw new Error(`the receiver did not subscribe within 60 s (${current} of ${count} shared subscriptions)`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 1000);
        });
      }
    },
    close: () => client.endAsync(),
  };
}
