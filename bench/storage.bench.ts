/**
 * Storage benchmark, peers measured in the same run:
 *   1. ingest with rollups: LevelStore (fsync per group commit) vs better-sqlite3
 *      (WAL, synchronous=NORMAL, 1000-row transactions, the same outbox and 4-resolution
 *      rollup upserts per point);
 *   2. queries: 1 day of 1 s raw (86,400 points), 1 year at 15 min from rollups,
 *      latest value of 1,000 datapoints — LevelStore vs SQLite;
 *   3. durable vs non-durable QoS 1 ingest through the real gateway's broker.
 * Run: node --import tsx bench/storage.bench.ts   (STORAGE_BENCH_POINTS=1000000 for a longer run)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { LevelStore } from '../storage/level/level-store.js';
import { RESOLUTIONS } from '../storage/rollups.js';
import type { PointRecord } from '../storage/store.js';
import { startTestGateway } from '../test/helpers/gateway.js';
import { openSqlite, sqliteWriter } from './peers/sqlite.js';

const POINTS = Number(process.env.STORAGE_BENCH_POINTS ?? 300_000);
const IDS = 1000;
const T0 = Date.UTC(2025, 0, 1);
const DAY = 86_400_000;

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number): string => `${n.toFixed(1)} ms`;

function workload(n: number): PointRecord[][] {
  // 1,000 datapoints, one reading per second each, arriving in time order; chunks of 1,000.
  const chunks: PointRecord[][] = [];
  let chunk: PointRecord[] = [];
  for (let i = 0; i < n; i++) {
    const id = `site.meter${i % IDS}.power`;
    chunk.push({ id, t: T0 + Math.floor(i / IDS) * 1000, v: Math.round(Math.sin(i) * 10_000) / 100 });
    if (chunk.length === 1000) {
      chunks.push(chunk);
      chunk = [];
    }
  }
  if (chunk.length) chunks.push(chunk);
  return chunks;
}

async function ingestLevel(dir: string, chunks: PointRecord[][]): Promise<number> {
  const store = new LevelStore({ path: join(dir, 'level'), sync: true });
  await store.open();
  const start = performance.now();
  // Several writers at once, as adapters and MQTT clients are: the group commit batches them.
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < chunks.length) await store.write(chunks[next++]!);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  await store.close();
  return POINTS / seconds;
}

function ingestSqlite(dir: string, chunks: PointRecord[][]): number {
  const db = openSqlite(join(dir, 'sqlite.db'));
  const write = sqliteWriter(db);
  const start = performance.now();
  for (const chunk of chunks) write(chunk);
  const seconds = (performance.now() - start) / 1000;
  db.close();
  return POINTS / seconds;
}

async function timeIt<T>(fn: () => Promise<T> | T, repeat = 5): Promise<{ ms: number; result: T }> {
  let best = Infinity;
  let result!: T;
  for (let i = 0; i < repeat; i++) {
    const s = performance.now();
    result = await fn();
    best = Math.min(best, performance.now() - s);
  }
  return { ms: best, result };
}

async function queries(dir: string): Promise<void> {
  const store = new LevelStore({ path: join(dir, 'q-level'), sync: false });
  await store.open();
  const db = openSqlite(join(dir, 'q-sqlite.db'));
  const write = sqliteWriter(db);
  const day: PointRecord[] = Array.from({ length: 86_400 }, (_, i) => ({ id: 'q.day', t: T0 + i * 1000, v: i % 997 }));
  const year: PointRecord[] = Array.from({ length: 365 * 96 }, (_, i) => ({ id: 'q.year', t: T0 + i * 900_000, v: i % 101 }));
  const latest: PointRecord[] = Array.from({ length: 1000 }, (_, i) => ({ id: `q.latest${i}`, t: T0 + i, v: i }));
  for (const set of [day, year, latest]) {
    for (let i = 0; i < set.length; i += 5000) {
      await store.write(set.slice(i, i + 5000));
      write(set.slice(i, i + 5000));
    }
  }
  // The same day written live: one reading per commit, as a device at 1 s sends it.
  for (const p of day) await store.write([{ ...p, id: 'q.live' }]);
  for (const p of year) await store.write([{ ...p, id: 'q.yearlive' }]);
  const lDay = await timeIt(() => store.query('q.day', { from: T0, to: T0 + DAY - 1, limit: 100_000 }));
  const lLive = await timeIt(() => store.query('q.live', { from: T0, to: T0 + DAY - 1, limit: 100_000 }));
  const sDayStmt = db.prepare('SELECT t, v FROM points WHERE id = ? AND t BETWEEN ? AND ?');
  const sDay = await timeIt(() => sDayStmt.all('q.day', T0, T0 + DAY - 1).map((r) => ({ t: r.t as number, v: JSON.parse(r.v as string)[0] as unknown })));
  const lYear = await timeIt(() => store.queryAggregate('q.year', { from: T0, to: T0 + 365 * DAY - 1, interval: 900_000, agg: 'avg' }));
  const lYearLive = await timeIt(() => store.queryAggregate('q.yearlive', { from: T0, to: T0 + 365 * DAY - 1, interval: 900_000, agg: 'avg' }));
  const sYearStmt = db.prepare("SELECT bucket, sum / count AS v, count FROM rollups WHERE res = '15m' AND id = ? AND bucket BETWEEN ? AND ?");
  const sYear = await timeIt(() => sYearStmt.all('q.year', T0, T0 + 365 * DAY - 1));
  const lLatest = await timeIt(() => latest.map((p) => store.latest(p.id)));
  const sLatestStmt = db.prepare('SELECT t, v FROM points WHERE id = ? ORDER BY t DESC LIMIT 1');
  const sLatest = await timeIt(() => latest.map((p) => sLatestStmt.get(p.id)));
  // The same figure read from disk (what a cold start pays): newest key per datapoint.
  const lLatestDisk = await timeIt(() => Promise.all(latest.map((p) => store.query(p.id, { order: 'desc', limit: 1 }))));
  console.log('\nqueries (best of 5)                      LevelStore     SQLite    SQLite/Level');
  const row = (name: string, l: number, s: number, target: string): void =>
    console.log(`  ${name.padEnd(38)} ${ms(l).padStart(10)} ${ms(s).padStart(10)}   ${(s / l).toFixed(2)}x   (target ${target})`);
  row(`1 day of 1 s raw (${lDay.result.length} points)`, lDay.ms, sDay.ms, '< 50 ms');
  row(`  the same, written one per commit (${lLive.result.length})`, lLive.ms, sDay.ms, '< 50 ms');
  row(`1 year at 15 min via rollups (${lYear.result.length})`, lYear.ms, sYear.ms, '< 50 ms');
  row(`  the same, written one per commit (${lYearLive.result.length})`, lYearLive.ms, sYear.ms, '< 50 ms');
  row('latest of 1,000 datapoints (memory)', lLatest.ms, sLatest.ms, '< 20 ms');
  row('latest of 1,000 datapoints (from disk)', lLatestDisk.ms, sLatest.ms, '< 20 ms');
  await store.close();
  db.close();
}

async function brokerIngest(sync: boolean, messages: number): Promise<number> {
  const teardowns: Array<() => unknown> = [];
  const gw = await startTestGateway({ teardown: (fn) => teardowns.push(fn) }, { log: { level: 'warn' }, storage: { sync } });
  const client = mqtt.connect(gw.mqttUrl, { reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  const start = performance.now();
  await new Promise<void>((resolve, reject) => {
    let sent = 0;
    let done = 0;
    const pump = (): void => {
      while (sent < messages && sent - done < 128) {
        const n = sent++;
        client.publish(`outpost/dp/bench.m${n % 50}/value`, JSON.stringify({ v: n, t: T0 + n }), { qos: 1 }, (err) => {
          if (err) return reject(err);
          if (++done === messages) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  const rate = messages / ((performance.now() - start) / 1000);
  await client.endAsync();
  for (const fn of teardowns.reverse()) await fn();
  return rate;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-'));
  try {
    console.log(`storage bench: ${fmt(POINTS)} points, ${IDS} datapoints, rollups at ${RESOLUTIONS.map((r) => r.name).join('/')}`);
    const chunks = workload(POINTS);
    const level = await ingestLevel(dir, chunks);
    const sqlite = ingestSqlite(dir, chunks);
    console.log('\ningest with rollups                       points/s');
    console.log(`  LevelStore (fsync per group commit)    ${fmt(level).padStart(10)}`);
    console.log(`  SQLite (WAL, synchronous=NORMAL)       ${fmt(sqlite).padStart(10)}`);
    console.log(`  LevelStore / SQLite                    ${(level / sqlite).toFixed(2)}x   (target >= 1.0x and >= 200,000 points/s)`);

    await queries(dir);

    const messages = Number(process.env.STORAGE_BENCH_MQTT ?? 10_000);
    const off = await brokerIngest(false, messages);
    const on = await brokerIngest(true, messages);
    console.log(`\nQoS 1 ingest through the broker (${fmt(messages)} messages, 128 in flight)   msg/s`);
    console.log(`  durability off (storage.sync: false)  ${fmt(off).padStart(10)}`);
    console.log(`  durable (fsync before PUBACK)         ${fmt(on).padStart(10)}`);
    console.log(`  durable / off                         ${((on / off) * 100).toFixed(0)}%   (target >= 50%)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
