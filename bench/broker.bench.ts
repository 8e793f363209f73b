/**
 * Broker benchmark: MQTT throughput of Outpost (storage on: every value validated, stored in
 * LevelDB, fsync before PUBACK for QoS 1) side by side with bare Aedes and Mosquitto, under the
 * same load generator (bench/mqtt-load/): N publisher connections, each a worker thread with a
 * raw socket and pre-encoded packets (QoS 0 pipelined, QoS 1 with a window in flight), and one
 * raw subscriber on `outpost/dp/+/value`. The headline figure is messages delivered to that one
 * subscriber per second. Each broker runs in its own process pinned to core 0; this process and
 * its workers are pinned to core 1. A TCP sink on core 0 shows the tool's own ceiling first.
 * The Outpost process must survive every run. BENCH_RUNS rounds (default 3) run every broker in
 * turn, each time in a fresh process; the ratios are of the medians.
 *
 *   npm run bench -- broker            (or: npm run build && node dist/bench/broker.bench.js)
 *   BENCH_PUBLISHERS=4 BENCH_WINDOW=64 BENCH_MESSAGES=<per publisher, both QoS>
 *   BENCH_RUNS=10 BENCH_BROKERS=outpost   (the crash check: ten fresh Outpost processes)
 *   BENCH_BROKERS=sink,outpost,aedes,mosquitto (any subset)
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findMosquitto, hasTaskset, startAedes, startMosquitto, startOutpost, startSink, type BrokerProcess } from './mqtt-load/brokers.js';
import { runLoad, threadAffinities, type LoadResult } from './mqtt-load/load.js';

const here = dirname(fileURLToPath(import.meta.url));
const BROKER_CORE = 0;
const LOAD_CORE = 1;
const DATAPOINTS = 100;
const ALL_BROKERS = ['sink', 'outpost', 'aedes', 'mosquitto'] as const;
type BrokerKey = (typeof ALL_BROKERS)[number];

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

const PUBLISHERS = envInt('BENCH_PUBLISHERS', 4);
const WINDOW = envInt('BENCH_WINDOW', 64);
// Packet ids cycle through 1..65535: a larger window would reuse an id still in flight.
if (WINDOW >= 65_535) throw new Error('BENCH_WINDOW must be below 65535 (MQTT packet ids)');
// Per publisher, the same for every broker. Sized so a run lasts about 4 s (Mosquitto) to 16 s
// (Outpost) here; BENCH_MESSAGES=50000 is the issue's 4 x 50,000 QoS 0 load.
const MESSAGES: Record<0 | 1, number> = { 0: envInt('BENCH_MESSAGES', 150_000), 1: envInt('BENCH_MESSAGES', 75_000) };
const RUNS = envInt('BENCH_RUNS', 3);
const SELECTED = selectedBrokers(process.env.BENCH_BROKERS);
const TARGETS = { 0: 0.8, 1: 0.5 } as const;
// The sink takes the brokers' load in a fraction of a second; three times as many messages
// make its QoS 1 runs last about a second (QoS 0 stays too fast to time closely: an order of
// magnitude above any broker is all it has to show).
const SINK_SCALE = 3;

function selectedBrokers(raw: string | undefined): Set<BrokerKey> {
  if (!raw) return new Set(ALL_BROKERS);
  const names = raw
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const unknown = names.filter((n) => !(ALL_BROKERS as readonly string[]).includes(n));
  if (unknown.length) throw new Error(`BENCH_BROKERS: unknown ${unknown.join(', ')} (known: ${ALL_BROKERS.join(', ')})`);
  return new Set(names as BrokerKey[]);
}

interface Row {
  broker: string;
  key: BrokerKey;
  qos: 0 | 1;
  withSubscriber: boolean;
  result?: LoadResult;
  /** How the broker process ended, if it died during this measurement. */
  died?: string;
  stderrTail?: string;
  failure?: string;
}

const rows: Row[] = [];
const notes: string[] = [];

/** This process and every thread it has (V8, libuv) to the load core; workers started later inherit it. */
function pinSelf(): void {
  if (hasTaskset) spawnSync('taskset', ['-a', '-p', '-c', String(LOAD_CORE), String(process.pid)]);
}

async function measure(broker: BrokerProcess, key: BrokerKey, label: string, qos: 0 | 1, withSubscriber: boolean): Promise<Row> {
  const row: Row = { broker: label, key, qos, withSubscriber };
  const messages = MESSAGES[qos] * (key === 'sink' ? SINK_SCALE : 1);
  try {
    row.result = await runLoad({
      host: '127.0.0.1',
      port: broker.port,
      qos,
      publishers: PUBLISHERS,
      messages,
      window: WINDOW,
      datapoints: DATAPOINTS,
      withSubscriber,
      label: `bench-${label.replace(/\W+/g, '')}-q${qos}-${Date.now()}`,
    });
  } catch (err) {
    row.failure = (err as Error).message;
  }
  // The run ends 2 s after the last delivery: long enough for a dead broker's exit to be seen.
  const died = broker.death();
  if (died) Object.assign(row, { died, stderrTail: broker.stderrTail() });
  rows.push(row);
  console.log(formatRow(row));
  return row;
}

/** Both QoS against one broker process; stops early if the broker died. */
async function measureBroker(broker: BrokerProcess, key: BrokerKey, label: string): Promise<void> {
  for (const qos of [0, 1] as const) {
    const row = await measure(broker, key, label, qos, true);
    if (row.died) return console.log(`${label}: DIED during QoS ${qos} (${row.died}); last stderr:\n${indent(row.stderrTail ?? '')}`);
    // Alive but not answering (no CONNACK/SUBACK): the next QoS would only wait as long again.
    if (!row.result) {
      notes.push(`${label}: measurement failed with the process alive, rest skipped; last stderr:\n${indent(broker.stderrTail())}`);
      return;
    }
  }
}

async function runSink(): Promise<void> {
  const sink = await startSink(join(here, 'mqtt-load', 'sink-server.js'), BROKER_CORE);
  try {
    for (const qos of [0, 1] as const) await measure(sink, 'sink', 'sink (publishers only)', qos, false);
    for (const qos of [0, 1] as const) await measure(sink, 'sink', 'sink relay (+ subscriber)', qos, true);
  } finally {
    await sink.stop();
  }
}

/** Run `run` of Outpost, in a fresh process and data dir. */
async function runOutpost(dir: string, run: number): Promise<void> {
  const runDir = join(dir, `outpost-${run}`);
  const broker = await startOutpost(join(here, '..', 'runtime', 'cli.js'), runDir, BROKER_CORE);
  try {
    await measureBroker(broker, 'outpost', RUNS > 1 ? `outpost #${run}` : 'outpost');
  } finally {
    await broker.stop();
    await rm(runDir, { recursive: true, force: true });
  }
}

async function runPeer(start: () => Promise<BrokerProcess>, key: BrokerKey, run: number): Promise<void> {
  const broker = await start();
  try {
    await measureBroker(broker, key, RUNS > 1 ? `${broker.name} #${run}` : broker.name);
  } finally {
    await broker.stop();
  }
}

const f = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const indent = (s: string) =>
  (s.trim() ? s.trimEnd() : '(empty)')
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');

function formatRow(r: Row): string {
  const name = `${r.broker.padEnd(26)} ${String(r.qos).padStart(3)}`;
  if (!r.result) return `${name}  failed: ${r.failure}${r.died ? ` (broker ${r.died})` : ''}`;
  const x = r.result;
  const delivered = r.withSubscriber ? `${f(x.delivered)} (${((100 * x.delivered) / Math.max(1, x.sent)).toFixed(1)}%)` : '-';
  const cells = [
    f(x.sent).padStart(9),
    (x.qos === 1 ? f(x.acked) : '-').padStart(9),
    delivered.padStart(17),
    f(x.publishedPerSecond).padStart(11),
    (x.qos === 1 ? f(x.ackedPerSecond) : '-').padStart(9),
    (r.withSubscriber ? f(x.deliveredPerSecond) : '-').padStart(11),
    x.seconds.toFixed(1).padStart(6),
  ];
  return `${name}  ${cells.join(' ')}${r.died ? `  DIED (${r.died})` : ''}`;
}

const HEADER = `${'broker'.padEnd(26)} QoS  ${['sent', 'acked', 'delivered', 'published/s', 'acked/s', 'delivered/s', 'secs'].map((h, i) => h.padStart([9, 9, 17, 11, 9, 11, 6][i]!)).join(' ')}`;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Delivered/s of a broker at a QoS: the median over its runs that completed without the broker dying. */
function delivered(key: BrokerKey, qos: 0 | 1): number {
  return median(rows.filter((r) => r.key === key && r.qos === qos && r.withSubscriber && r.result && !r.died).map((r) => r.result!.deliveredPerSecond));
}

function printRatios(): void {
  const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) : 'n/a');
  const out = { 0: delivered('outpost', 0), 1: delivered('outpost', 1) };
  const basis = RUNS > 1 ? ` (medians of ${RUNS} rounds, runs where the broker died left out)` : '';
  console.log(`\nratios of messages delivered to one subscriber per second${basis}:`);
  const perSecond = (n: number) => (Number.isFinite(n) ? `${f(n)}/s` : 'n/a (no run completed)');
  if (RUNS > 1) {
    for (const [key, name] of [
      ['outpost', 'outpost'],
      ['aedes', 'bare aedes'],
      ['mosquitto', 'mosquitto'],
    ] as const) {
      if (Number.isFinite(delivered(key, 0)) || Number.isFinite(delivered(key, 1)))
        console.log(`  ${name.padEnd(10)} median: QoS 0 ${perSecond(delivered(key, 0))}, QoS 1 ${perSecond(delivered(key, 1))}`);
    }
  }
  let peers = 0;
  for (const [key, name] of [
    ['aedes', 'bare aedes'],
    ['mosquitto', 'mosquitto'],
  ] as const) {
    const peer = { 0: delivered(key, 0), 1: delivered(key, 1) };
    if (!Number.isFinite(peer[0]) && !Number.isFinite(peer[1])) continue;
    peers++;
    const parts = ([0, 1] as const).map((q) => {
      const r = ratio(out[q], peer[q]);
      const target = key === 'aedes' ? ` (target >= ${TARGETS[q].toFixed(1)}x: ${r === 'n/a' ? 'n/a' : Number(r) >= TARGETS[q] ? 'met' : 'NOT met'})` : '';
      return `QoS ${q} ${r === 'n/a' ? r : `${r}x`}${target}`;
    });
    console.log(`  outpost / ${name.padEnd(10)}: ${parts.join(', ')}`);
  }
  if (peers === 0) console.log('  no peer broker measured in this run (BENCH_BROKERS)');
}

function printCrashCheck(): void {
  if (!SELECTED.has('outpost')) return;
  const outpostRows = rows.filter((r) => r.key === 'outpost');
  const deaths = outpostRows.filter((r) => r.died);
  const crashedRuns = new Set(deaths.map((r) => r.broker)).size;
  console.log(
    `\ncrash check: outpost died in ${crashedRuns} of ${RUNS} run${RUNS > 1 ? 's' : ''} (each a fresh process: QoS 0 then QoS 1)${crashedRuns === 0 ? ', alive after every measurement' : ''}`,
  );
  const printed = new Map<string, string>();
  for (const r of deaths) {
    const tail = r.stderrTail ?? '';
    const same = printed.get(tail);
    console.log(`  ${r.broker} QoS ${r.qos}: ${r.died}; ${same ? `same last 2 KB of stderr as ${same}` : `last 2 KB of stderr:\n${indent(tail)}`}`);
    if (!same) printed.set(tail, r.broker);
  }
}

function collectOddities(): void {
  for (const r of rows) {
    const x = r.result;
    // A broker that died is in the crash check; lost messages and connections only follow from it.
    if (!x || r.died) continue;
    const what = `${r.broker} QoS ${r.qos}`;
    if (r.withSubscriber && x.delivered < x.sent)
      notes.push(`${what}: subscriber got ${f(x.delivered)} of ${f(x.sent)} sent (${f(x.sent - x.delivered)} missing)`);
    if (r.withSubscriber && x.delivered > x.sent) notes.push(`${what}: subscriber got ${f(x.delivered)}, more than the ${f(x.sent)} sent (duplicates)`);
    if (x.sent < x.messages) notes.push(`${what}: only ${f(x.sent)} of ${f(x.messages)} were written`);
    if (x.qos === 1 && x.acked < x.sent) notes.push(`${what}: ${f(x.sent - x.acked)} publications never acknowledged`);
    if (x.unexpectedAcks > 0) notes.push(`${what}: ${x.unexpectedAcks} PUBACKs for ids not in flight`);
    // Outpost retains each datapoint's newest value, so its QoS 1 subscriber first gets one replay per datapoint.
    const expectedRetained = r.key === 'outpost' && r.qos === 1 ? DATAPOINTS : 0;
    if (x.retained !== expectedRetained) notes.push(`${what}: ${x.retained} retained replays on subscribing (not counted as delivered)`);
    if (x.subscriberClosed) notes.push(`${what}: the subscriber's connection was closed by the broker`);
    if (x.stuck) notes.push(`${what}: nothing moved for 30 s, run abandoned`);
    for (const e of x.errors) notes.push(`${what}: ${e}`);
    if (x.affinities.some((a) => a !== String(LOAD_CORE)))
      notes.push(`${what}: load generator threads not all on core ${LOAD_CORE} (${x.affinities.join(' / ')})`);
  }
}

pinSelf();
console.log(
  `broker: ${PUBLISHERS} publishers x ${f(MESSAGES[0])} msgs at QoS 0 (pipelined), x ${f(MESSAGES[1])} at QoS 1 (window ${WINDOW} each); ` +
    `${DATAPOINTS} datapoints, payload {"v":i}; one subscriber on outpost/dp/+/value; ` +
    (hasTaskset
      ? `brokers on core ${BROKER_CORE}, load generator threads on core ${LOAD_CORE} (${threadAffinities().join(' / ')})`
      : 'NOT pinned (no taskset)'),
);
console.log(HEADER);
const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-broker-'));
try {
  if (SELECTED.has('sink')) await runSink();
  const mosquitto = SELECTED.has('mosquitto') ? findMosquitto() : undefined;
  if (SELECTED.has('mosquitto') && !mosquitto) notes.push('mosquitto: skipped, no mosquitto binary (Debian: apt-get install mosquitto)');
  // Rounds of every broker in turn: this VM's speed drifts by up to 2x within an hour, and
  // interleaving puts each ratio's two sides in the same stretch of it; medians over the rounds.
  for (let run = 1; run <= RUNS; run++) {
    if (SELECTED.has('outpost')) await runOutpost(dir, run);
    if (SELECTED.has('aedes')) await runPeer(() => startAedes(join(here, 'peers', 'aedes-server.js'), BROKER_CORE), 'aedes', run);
    if (mosquitto) await runPeer(() => startMosquitto(mosquitto, dir, BROKER_CORE), 'mosquitto', run);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

console.log(`\n${HEADER}`);
for (const r of rows) console.log(formatRow(r));
printRatios();
printCrashCheck();
collectOddities();
if (notes.length) console.log(`\nnotes:\n${notes.map((n) => `  - ${n}`).join('\n')}`);
