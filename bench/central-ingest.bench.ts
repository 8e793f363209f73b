/**
 * Central ingest (issue 25): a fleet of simulated gateways — 1,000 by default, 100 datapoints
 * each — empties its outboxes over MQTT (QoS 1 batches exactly as the gateway's `mqtt` sync
 * link publishes them, each gateway its own client and TCP connection) through Mosquitto into
 * ONE `outpost central` receiver, a child process pinned to a core of its own, on
 *   - `database: level`: the embedded store (our LevelDB engine, fsync per group commit);
 *   - `database: postgres://…`: PostgreSQL (fsync on, as in production);
 * side by side with the physical limit: the same rows loaded with `COPY … FROM STDIN` into
 * plain tables with the same keys in the same cluster. Prints records/s of each, the ratios
 * to COPY (target: the PostgreSQL receiver ≥ 50 % of COPY), CPU seconds per process (which
 * one bounds the figure) and the receiver's peak RSS; after each run checks what the store
 * holds: every gateway all its readings and seqs, each once, its status, its newest values.
 *
 *   npm run bench -- central-ingest          (or: node --import tsx bench/central-ingest.bench.ts)
 *   OUTPOST_BENCH_GATEWAYS=1000  OUTPOST_BENCH_DATAPOINTS=100  OUTPOST_BENCH_READINGS=10 (per datapoint)
 *   OUTPOST_BENCH_LEVEL_READINGS=3 (per datapoint, for the embedded store: it is slow at 100,000 datapoints)
 *   OUTPOST_BENCH_BATCH=100 (records per MQTT batch)  OUTPOST_BENCH_CONNECTIONS=8 (receiver's ingest.mqtt.connections)
 *   OUTPOST_BENCH_WINDOW=16 (batches in flight per gateway)  OUTPOST_BENCH_ENGINES=copy,level,postgres
 *   OUTPOST_BENCH_PIN=0 (no taskset)
 *   OUTPOST_BENCH_COMMIT_CONCURRENCY=2 (postgres.commitConcurrency)  OUTPOST_BENCH_ROLLUP_SECONDS=60 (postgres.rollupRefreshSeconds)
 *   OUTPOST_BENCH_PROFILE=<dir> (the receiver writes a V8 CPU profile there when it stops)
 *   OUTPOST_BENCH_GC_LOG=<file> (the receiver runs with --trace-gc; its lines are appended there)
 *   OUTPOST_BENCH_RECEIVER_FLAGS='<node flags>' (for the receiver alone, e.g. --single-threaded-gc)
 *   OUTPOST_BENCH_IN_FLIGHT=16 (ingest.mqtt.messagesInFlight)  OUTPOST_BENCH_COMMIT_MAX_RECORDS=10000 (postgres.commitMaxRecords)
 *   OUTPOST_BENCH_WARM=1 (postgres: the fleet's gateways and datapoints registered before the receiver
 *     starts, as in a fleet that has been running — the receiver reads them at open, as a restarted
 *     one does; the COPY baseline registers nothing either)
 *   OUTPOST_BENCH_LEVEL_CACHE=<n> (level: the receiver's level.cacheDatapoints; unset: central's default, 200,000)
 *   OUTPOST_BENCH_SAMPLE=1 (postgres: what the receiver's backends were doing, sampled from pg_stat_activity)
 *   OUTPOST_BENCH_COPY_RUNS=3 (the COPY limit is the median of this many runs, each into its own database)
 *
 * Cores (2 here): the receiver alone on core 0, Mosquitto on core 1, this process (the fleet's
 * worker thread, the COPY client) on core 1 too — it is idle once the fleet has published,
 * in the first second or two; PostgreSQL is not pinned (the scheduler gives it what is free).
 */
import pg from 'pg';
import { startThrowawayPostgres } from '../test/helpers/postgres.js';
import type { CentralStore } from '../central/store/contract.js';
import { LevelCentralStore } from '../central/store/level.js';
import { PostgresCentralStore } from '../central/store/postgres.js';
import { type CopyResult, copyBaseline, copyCounts } from './central/copy-baseline.js';
import { datapointId, gatewayId, recordsPerGateway, readingTime, totalRecords, readingValue, type IngestPlan } from './central/plan.js';
import { clusterCpuSeconds, hasTaskset, killChildren, pinSelf, postmasterPid } from './central/processes.js';
import { type ActivitySampler, sampleActivity } from './central/pg-activity.js';
import { resetStatements, topStatements } from './central/pg-statements.js';
import { removeRunDirs, runReceiver, type ReceiverRunResult } from './central/receiver-run.js';

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

const ENGINES = ['copy', 'level', 'postgres'] as const;
type Engine = (typeof ENGINES)[number];
const selected = (process.env.OUTPOST_BENCH_ENGINES ?? ENGINES.join(','))
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
for (const e of selected)
  if (!(ENGINES as readonly string[]).includes(e)) throw new Error(`OUTPOST_BENCH_ENGINES: unknown "${e}" (known: ${ENGINES.join(', ')})`);

const fleetPlan: IngestPlan = {
  gateways: envInt('OUTPOST_BENCH_GATEWAYS', 1000),
  datapoints: envInt('OUTPOST_BENCH_DATAPOINTS', 100),
  readings: envInt('OUTPOST_BENCH_READINGS', 10),
  batchRecords: envInt('OUTPOST_BENCH_BATCH', 100),
  t0: Math.floor(Date.now() / 1000) * 1000 - 86_400_000,
};
/**
 * The embedded store takes 1,600–3,300 records/s at 100,000 datapoints here (its newest-chunk caches
 * hold 20,000: storage/level/caches.ts), so it gets fewer rounds of the same fleet, or its run
 * alone would take ten minutes and its check two more.
 */
const LEVEL_READINGS = envInt('OUTPOST_BENCH_LEVEL_READINGS', 3);
const CONNECTIONS = envInt('OUTPOST_BENCH_CONNECTIONS', 8);
const WINDOW = envInt('OUTPOST_BENCH_WINDOW', 16);
const WARM = process.env.OUTPOST_BENCH_WARM === '1';
const SAMPLE = process.env.OUTPOST_BENCH_SAMPLE === '1';
const PIN = process.env.OUTPOST_BENCH_PIN !== '0' && hasTaskset;
const cores = PIN ? { receiver: 0, broker: 1 } : {};
const TARGET = 0.5;
const COPY_RUNS = envInt('OUTPOST_BENCH_COPY_RUNS', 3);

const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-';
const mb = (n: number): string => (Number.isFinite(n) ? `${Math.round(n / 1024 / 1024)} MB` : '-');

interface Row {
  engine: Engine;
  records: number;
  seconds: number;
  /** `COPY`: the median time of its readings alone. */
  readingsSeconds?: number;
  cpu?: ReceiverRunResult['cpu'];
  result?: ReceiverRunResult;
}

/**
 * What the store must hold: every gateway's seqs each once (`countSeqs`: the marks are written in
 * the same atomic commit as the readings), its readings each once (`countReadings`), its
 * `online` status, and the newest reading of every datapoint as sent. `countReadings` on the
 * embedded store reads every series (about 1 ms a datapoint here): with `sampleReadings` only
 * every 25th gateway's readings are counted.
 */
async function verifyStore(store: CentralStore, plan: IngestPlan, sampleReadings: boolean): Promise<string> {
  const expected = recordsPerGateway(plan);
  const bad: string[] = [];
  let counted = 0;
  for (let g = 0; g < plan.gateways && bad.length < 5; g++) {
    const gw = gatewayId(g);
    const [seqs, state] = await Promise.all([store.countSeqs(gw), store.gatewayState(gw)]);
    if (seqs !== expected) bad.push(`${gw}: ${seqs} seqs, expected ${expected}`);
    if (state?.status?.state !== 'online') bad.push(`${gw}: status ${JSON.stringify(state?.status)}`);
    if (!sampleReadings || g % 25 === 0 || g === plan.gateways - 1) {
      counted++;
      const readings = await store.countReadings(gw);
      if (readings !== expected) bad.push(`${gw}: ${readings} readings, expected ${expected}`);
    }
    // The newest reading of each datapoint: the last round's value and time.
    for (let d = 0; d < plan.datapoints; d++) {
      const k = expected - plan.datapoints + d;
      const latest = await store.latest(gw, datapointId(d));
      if (latest?.t !== readingTime(plan, k) || latest.v !== readingValue(g, k))
        bad.push(`${gw}/${datapointId(d)}: newest ${JSON.stringify(latest)}, expected t ${readingTime(plan, k)} v ${readingValue(g, k)}`);
    }
  }
  if (bad.length) throw new Error(`the store does not hold what was sent:\n  ${bad.join('\n  ')}`);
  const readings = counted === plan.gateways ? 'all gateways' : `${counted} gateways (every 25th)`;
  return `seqs of all ${fmt(plan.gateways)} gateways (${fmt(expected)} each) and readings of ${readings} stored once; statuses online; newest value of every datapoint as sent`;
}

async function main(): Promise<void> {
  if (PIN) pinSelf(1);
  const teardowns: Array<() => unknown> = [];
  const interrupted = async (signal: string) => {
    killChildren();
    removeRunDirs();
    for (const fn of teardowns.splice(0).reverse()) await Promise.resolve(fn()).catch(() => undefined);
    console.error(`interrupted (${signal})`);
    process.exit(1);
  };
  process.once('SIGINT', () => void interrupted('SIGINT'));
  process.once('SIGTERM', () => void interrupted('SIGTERM'));
  const rows: Row[] = [];
  const p = fleetPlan;
  console.log(
    `fleet: ${fmt(p.gateways)} gateways × ${p.datapoints} datapoints × ${p.readings} readings (embedded store: ${LEVEL_READINGS}) = ${fmt(totalRecords(p))} records, ` +
      `${p.batchRecords} records per QoS 1 batch, ${WINDOW} batches in flight per gateway; receiver ingest.mqtt.connections ${CONNECTIONS}`,
  );
  console.log(PIN ? 'cores: receiver 0, Mosquitto 1, fleet and COPY client 1, PostgreSQL not pinned' : 'NOT pinned (no taskset, or OUTPOST_BENCH_PIN=0)');
  try {
    const cluster = await startThrowawayPostgres({ teardown: (fn) => teardowns.push(fn) }, { fsync: true });
    // One server configuration for COPY and the store alike: a database that takes bulk
    // ingest (shared buffers for the indexes, checkpoints not forced by WAL volume).
    const admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    await admin.query(`ALTER SYSTEM SET shared_buffers = '512MB'`);
    await admin.query(`ALTER SYSTEM SET max_wal_size = '4GB'`);
    // Where the store's time goes (printed after its run); the same small overhead for COPY.
    await admin.query(`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`);
    await admin.end();
    await cluster.stop();
    await cluster.start();
    const client = new pg.Client({ connectionString: cluster.url });
    await client.connect();
    const dataDirectory = (await client.query<{ data_directory: string }>('SHOW data_directory')).rows[0]!.data_directory;
    const settings = (
      await client.query<{ name: string; setting: string }>(
        `SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'shared_buffers', 'max_wal_size')`,
      )
    ).rows;
    await client.end();
    console.log(`PostgreSQL: ${settings.map((s) => `${s.name} ${s.setting}`).join(', ')}`);
    const postmaster = postmasterPid(dataDirectory);
    const databaseCpu = () => clusterCpuSeconds(postmaster);
    const checkpoint = async (url: string) => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query('CHECKPOINT');
      await c.end();
    };

    for (const engine of selected as Engine[]) {
      const plan = engine === 'level' ? { ...fleetPlan, readings: LEVEL_READINGS } : fleetPlan;
      console.log(`\n--- ${engine}: ${fmt(totalRecords(plan))} records`);
      if (engine === 'copy') {
        // A single COPY's rate varies by a third from run to run here: the limit is the median of
        // COPY_RUNS, each into a database of its own, dropped after it.
        const runs: CopyResult[] = [];
        for (let i = 1; i <= COPY_RUNS; i++) {
          const url = await cluster.createDatabase(`bench_copy_${i}`);
          const r = await copyBaseline(url, plan, databaseCpu);
          const counts = await copyCounts(url, plan);
          const expected = recordsPerGateway(plan);
          for (let g = 0; g < plan.gateways; g++)
            if (counts.readings.get(gatewayId(g)) !== expected || counts.seqs.get(gatewayId(g)) !== expected)
              throw new Error(`COPY: ${gatewayId(g)} rows missing`);
          runs.push(r);
          // Dropped, so that its pages do not fill the shared buffers the receiver's run needs next.
          const admin = new pg.Client({ connectionString: cluster.url });
          await admin.connect();
          await admin.query(`DROP DATABASE bench_copy_${i}`);
          await admin.end();
          console.log(
            `COPY ${i}/${COPY_RUNS}: ${fmt(r.rows)} rows in ${fmt(r.seconds, 1)} s = ${fmt(r.rows / r.seconds)} rows/s (the readings alone ${fmt(r.readingsSeconds, 1)} s = ${fmt(r.rows / r.readingsSeconds)} rows/s); every gateway's rows present`,
          );
        }
        const r = runs.sort((a, b) => a.seconds - b.seconds)[Math.floor((runs.length - 1) / 2)]!;
        const readingsAlone = runs.map((x) => x.readingsSeconds).sort((a, b) => a - b)[Math.floor((runs.length - 1) / 2)]!;
        rows.push({ engine, records: r.rows, seconds: r.seconds, readingsSeconds: readingsAlone, cpu: { receiver: 0, broker: 0, database: r.databaseCpu } });
        console.log(`COPY: the median of ${runs.length} runs, ${fmt(r.rows / r.seconds)} rows/s, is the limit below`);
        continue;
      }
      let database = 'level';
      let sampler: ActivitySampler | undefined;
      if (engine === 'postgres') {
        database = await cluster.createDatabase('bench_central');
        // Registered before the receiver starts, as in a fleet that has been running: the
        // receiver reads them into its catalog at open (catalog.ts), as a restarted one does.
        if (WARM) await registerFleet(database, plan);
        await resetStatements(database);
        await checkpoint(database);
      }
      const result = await runReceiver({
        label: engine,
        database,
        plan,
        connections: CONNECTIONS,
        window: WINDOW,
        cores,
        ...(engine === 'postgres'
          ? {
              databaseCpu,
              beforeFleet: async () => {
                if (SAMPLE) {
                  const started = await sampleActivity(database);
                  sampler = started;
                  // Ended here too if the run fails before its report.
                  teardowns.push(() => started.stop());
                }
              },
              afterIngest: async () => {
                console.log(`PostgreSQL statements by time (pg_stat_statements):\n  ${(await topStatements(database)).join('\n  ')}`);
                if (sampler) console.log(`the receiver's backends, mean over the run (pg_stat_activity):\n  ${(await sampler.stop()).join('\n  ')}`);
              },
            }
          : {}),
        verify: async (dataDir) => {
          const store = engine === 'level' ? new LevelCentralStore({ dataDir }) : new PostgresCentralStore({ url: database, refreshMs: 0 });
          await store.open();
          try {
            return await verifyStore(store, plan, engine === 'level');
          } finally {
            await store.close();
          }
        },
      });
      rows.push({ engine, records: result.records, seconds: result.seconds, cpu: result.cpu, result });
      console.log(
        `${fmt(result.records)} records in ${fmt(result.seconds, 1)} s (the fleet's ${fmt(result.fleet.messages)} messages, ${mb(result.fleet.bytes)}, ` +
          `all acknowledged by the broker after ${fmt(result.fleet.publishSeconds, 1)} s); ${fmt(result.commits)} commits, mean ${fmt(result.meanCommitMs, 1)} ms; ` +
          `duplicates ${result.duplicates}, refused ${result.refused}; Mosquitto peak RSS ${mb(result.brokerPeakRss)}`,
      );
      console.log(`check: ${result.verified}`);
      if (result.receiverLog) console.log(`receiver log (last lines):\n${result.receiverLog.split('\n').slice(-10).join('\n')}`);
    }
    report(rows);
  } finally {
    killChildren();
    for (const fn of teardowns.splice(0).reverse()) await fn();
  }
}

/** The fleet's gateways and datapoints, as the store registers them at first contact (OUTPOST_BENCH_WARM). */
async function registerFleet(url: string, plan: IngestPlan): Promise<void> {
  // The schema, as the receiver creates it at its first open.
  const store = new PostgresCentralStore({ url, refreshMs: 0 });
  await store.open();
  await store.close();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const gateways = Array.from({ length: plan.gateways }, (_, g) => gatewayId(g));
    const datapoints = Array.from({ length: plan.datapoints }, (_, d) => datapointId(d));
    await c.query('INSERT INTO outpost.gateways (id, first_seen) SELECT g, now() FROM unnest($1::text[]) AS g', [gateways]);
    await c.query(
      'INSERT INTO outpost.datapoints (gateway, id, first_seen, last_seen) SELECT g, d, now(), now() FROM unnest($1::text[]) AS g, unnest($2::text[]) AS d',
      [gateways, datapoints],
    );
    await c.query('VACUUM ANALYZE outpost.gateways, outpost.datapoints');
    console.log(`warm: ${fmt(gateways.length)} gateways and ${fmt(gateways.length * datapoints.length)} datapoints registered before the clock starts`);
  } finally {
    await c.end();
  }
}

function report(rows: Row[]): void {
  const copy = rows.find((r) => r.engine === 'copy' && r.seconds > 0);
  const rate = (r: Row) => r.records / r.seconds;
  console.log('\nengine       records   seconds   records/s   / COPY   receiver CPU   PostgreSQL CPU   Mosquitto CPU   receiver RSS peak');
  for (const r of rows) {
    const ratio = copy ? `${fmt(rate(r) / rate(copy), 2)}×` : '-';
    const cpu = (s: number | undefined) => (s ? `${fmt(s, 1)} s (${fmt((s / r.records) * 1e6, 1)} µs/rec)` : '-');
    console.log(
      `${r.engine.padEnd(10)} ${fmt(r.records).padStart(10)} ${fmt(r.seconds, 1).padStart(9)} ${fmt(rate(r)).padStart(11)} ${ratio.padStart(8)}   ` +
        `${cpu(r.cpu?.receiver).padStart(12)}   ${cpu(r.cpu?.database).padStart(14)}   ${cpu(r.cpu?.broker).padStart(13)}   ${mb(r.result?.receiverPeakRss ?? Number.NaN).padStart(8)}`,
    );
  }
  if (copy) {
    for (const r of rows.filter((x) => x.engine !== 'copy')) {
      const ratio = rate(r) / rate(copy);
      const target = r.engine === 'postgres' ? ` (target ≥ ${TARGET * 100} %: ${ratio >= TARGET ? 'met' : 'NOT met'})` : '';
      console.log(`${r.engine} / COPY: ${fmt(ratio * 100)} %${target}`);
      // The store keeps seqs as runs where the limit writes a row per seq (copy-baseline.ts).
      if (copy.readingsSeconds)
        console.log(
          `${r.engine} / COPY of the readings alone (median ${fmt(copy.records / copy.readingsSeconds)} rows/s): ${fmt((rate(r) / (copy.records / copy.readingsSeconds)) * 100)} %`,
        );
    }
  }
}

await main();
