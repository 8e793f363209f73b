import t from 'tap';
import type { Test } from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { gzipSync, gunzipSync } from 'node:zlib';
import { LevelStore } from '../../storage/level/level-store.js';
import { MAX_LINE_BYTES, backup, backupToFile, restore, restoreFile, verifyBackup, type BackupSummary } from '../../storage/backup.js';
import type { Datapoint } from '../../core/datapoint.js';
import type { Aggregation, PointRecord, StoredValue } from '../../storage/store.js';
import { isOutpostError } from '../../core/errors.js';

const T0 = Date.UTC(2025, 0, 15, 0, 0, 0);
const MIN = 60_000;

const DEFINITIONS: Datapoint[] = [
  { id: 'plant.cfg', adapter: 'virtual', kind: 'sensor', type: 'json', description: 'controller config snapshot' },
  { id: 'plant.meter1.energy', adapter: 'modbus', kind: 'sensor', type: 'number', unit: 'kWh' },
  { id: 'plant.meter1.power', adapter: 'modbus', kind: 'sensor', type: 'number', unit: 'kW', meta: { register: 40001 } },
  { id: 'plant.mode', adapter: 'virtual', kind: 'actuator', type: 'string', allowed: ['auto', 'off'] },
  { id: 'plant.pump.on', adapter: 'modbus', kind: 'sensor', type: 'boolean' },
];

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-backup-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function openStore(t: Test, path: string): Promise<LevelStore> {
  const store = new LevelStore({ path });
  await store.open();
  t.teardown(() => store.close());
  return store;
}

/** Two hours of readings: numbers every 10 s with a stale gap, a counter with a reset, strings, booleans, JSON, and a series without a definition. */
async function seed(store: LevelStore): Promise<number> {
  for (const dp of DEFINITIONS) await store.putDatapoint(dp);
  const points: PointRecord[] = [];
  for (let i = 0; i < 720; i++) {
    const t = T0 + i * 10_000;
    // Minutes 30-31 the meter was unreachable: stale nulls, never the last value repeated.
    if (i >= 180 && i < 192) points.push({ id: 'plant.meter1.power', t, v: null, q: 'stale' });
    else points.push({ id: 'plant.meter1.power', t, v: Math.round((50 + 20 * Math.sin(i / 30)) * 1000) / 1000 });
    // A counter that resets at i = 400 (meter replaced).
    points.push({ id: 'plant.meter1.energy', t, v: i < 400 ? 1000 + i * 0.5 : (i - 400) * 0.5 });
    if (i % 60 === 0) points.push({ id: 'plant.mode', t, v: i % 120 === 0 ? 'auto' : 'off' });
    if (i % 45 === 0) points.push({ id: 'plant.pump.on', t, v: i % 90 === 0 });
  }
  points.push({ id: 'plant.cfg', t: T0, v: { setpoints: [21, 19.5], name: 'Ünïcode "quoted"\nline' } });
  points.push({ id: 'plant.cfg', t: T0 + 3600_000, v: [1, 'two', { three: null }] });
  points.push({ id: 'plant.pump.on', t: T0 + 5, v: null, q: 'bad' });
  // Written straight to the store (no definition), e.g. by an older version.
  for (let i = 0; i < 30; i++) points.push({ id: 'legacy.temp', t: T0 + i * MIN, v: 20 + i / 10 });
  await store.write(points);
  return points.length;
}

async function allPoints(store: LevelStore, id: string): Promise<StoredValue[]> {
  const out: StoredValue[] = [];
  let from = 0;
  for (;;) {
    const page = await store.query(id, { from, limit: 10_000 });
    out.push(...page);
    if (page.length < 10_000) return out;
    from = page[page.length - 1]!.t + 1;
  }
}

/** Everything a user can read back: definitions and every point of every series. */
async function dump(store: LevelStore): Promise<{ definitions: Datapoint[]; series: Record<string, StoredValue[]> }> {
  const definitions = (await store.listDatapoints()).sort((a, b) => a.id.localeCompare(b.id));
  const series: Record<string, StoredValue[]> = {};
  for (const id of await store.idsUnder('p!')) series[id] = await allPoints(store, id);
  return { definitions, series };
}

const AGGS: Aggregation[] = ['avg', 'min', 'max', 'sum', 'first', 'last', 'count', 'delta'];

async function rollups(store: LevelStore, id: string): Promise<unknown> {
  const out: Record<string, unknown> = {};
  for (const interval of [MIN, 15 * MIN, 60 * MIN, 24 * 60 * MIN]) {
    for (const agg of AGGS) out[`${interval}/${agg}`] = await store.queryAggregate(id, { from: T0 - 24 * 60 * MIN, to: T0 + 24 * 60 * MIN, interval, agg });
  }
  return out;
}

/** Same intervals and counts; values equal up to float rounding (1e-9 relative). */
function sameAggregates(t: Test, actual: unknown, expected: unknown, what: string): void {
  const a = actual as Record<string, Array<{ t: number; v: number | null; count?: number }>>;
  const e = expected as Record<string, Array<{ t: number; v: number | null; count?: number }>>;
  t.same(Object.keys(a), Object.keys(e), `${what}: same queries`);
  let mismatches = 0;
  for (const key of Object.keys(e)) {
    const x = a[key]!;
    const y = e[key]!;
    if (x.length !== y.length) mismatches++;
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const u = x[i]!;
      const w = y[i]!;
      const close = u.v === w.v || (typeof u.v === 'number' && typeof w.v === 'number' && Math.abs(u.v - w.v) <= 1e-9 * Math.max(1, Math.abs(w.v)));
      if (u.t !== w.t || u.count !== w.count || !close) mismatches++;
    }
  }
  t.equal(mismatches, 0, `${what}: same intervals, counts and values`);
}

async function isEmpty(store: LevelStore): Promise<boolean> {
  return (await store.listDatapoints()).length === 0 && (await store.idsUnder('p!')).length === 0 && (await store.idsUnder('r!')).length === 0;
}

async function refusal(t: Test, promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    t.ok(isOutpostError(err, 'BACKUP_INVALID'), `BACKUP_INVALID (got ${(err as Error).message})`);
    return (err as Error).message;
  }
  t.fail('the backup was accepted');
  return '';
}

async function goodBackup(t: Test): Promise<{ dir: string; file: string; source: LevelStore; summary: BackupSummary; lines: string[] }> {
  const dir = await tempDir(t);
  const source = await openStore(t, join(dir, 'source'));
  await seed(source);
  const file = join(dir, 'site.ndjson');
  const summary = await backupToFile(source, file, { gateway: 'site-1', now: () => T0 + 7200_000 });
  const text = await readFile(file, 'utf8');
  return { dir, file, source, summary, lines: text.split('\n') };
}

t.test('round trip into a fresh store: identical definitions, points (stale nulls, json, string, boolean) and rollups', async (t) => {
  const { dir, file, source, summary, lines } = await goodBackup(t);
  const seeded = Object.values((await dump(source)).series).reduce((n, s) => n + s.length, 0);
  t.equal(summary.points, seeded, 'every stored point is in the backup');
  t.equal(summary.datapoints, DEFINITIONS.length);
  t.equal(summary.lines, 1 + DEFINITIONS.length + seeded);
  t.match(JSON.parse(lines[0]!), { format: 'outpost-backup', version: 1, gateway: 'site-1', createdAt: T0 + 7200_000, from: null, to: null });
  const trailer = JSON.parse(lines[lines.length - 2]!) as Record<string, unknown>;
  t.same(trailer, { end: 'outpost-backup', datapoints: summary.datapoints, points: summary.points, lines: summary.lines, sha256: summary.sha256 });
  t.equal(lines[lines.length - 1], '', 'the file ends with a newline');
  t.notOk(existsSync(`${file}.partial`), 'no partial file left behind');

  t.same(await verifyBackup(Readable.from([await readFile(file)])), summary, 'verify gives the same summary as the backup');

  const target = await openStore(t, join(dir, 'target'));
  const report = await restoreFile(target, file);
  t.match(report, { datapoints: summary.datapoints, points: summary.points, sha256: summary.sha256, gateway: 'site-1', verifiedFirst: true });
  const before = await dump(source);
  const after = await dump(target);
  t.same(after, before, 'definitions and every point are identical');
  t.same(after.series['plant.meter1.power']!.filter((p) => p.q === 'stale').length, 12, 'stale nulls survive as stale nulls');
  t.same(after.series['plant.cfg']![0]!.v, { setpoints: [21, 19.5], name: 'Ünïcode "quoted"\nline' });
  t.equal(after.series['plant.pump.on']!.find((p) => p.t === T0)!.v, true);
  t.equal(after.series['legacy.temp']!.length, 30, 'a series without a definition is backed up too');
  for (const id of ['plant.meter1.power', 'plant.meter1.energy', 'plant.pump.on', 'legacy.temp']) {
    t.same(await rollups(target, id), await rollups(source, id), `rollups of ${id} rebuilt identically`);
  }
  const hourly = (await target.queryAggregate('plant.meter1.energy', { from: T0, to: T0 + 7200_000 - 1, interval: 60 * MIN, agg: 'delta' })) as Array<{
    v: number;
  }>;
  t.equal(hourly.length, 2, 'the counter gives consumption for both hours');
  t.same(target.latest('plant.meter1.power'), source.latest('plant.meter1.power'), 'the latest value is known after restore');
});

t.test('gzip round trip: .gz files are gzip, restored by content', async (t) => {
  const dir = await tempDir(t);
  const source = await openStore(t, join(dir, 'source'));
  await seed(source);
  const file = join(dir, 'site.ndjson.gz');
  const summary = await backupToFile(source, file);
  const bytes = await readFile(file);
  t.same([bytes[0], bytes[1]], [0x1f, 0x8b], 'gzip magic');
  t.ok(gunzipSync(bytes).toString('utf8').startsWith('{"format":"outpost-backup"'));
  const target = await openStore(t, join(dir, 'target'));
  const report = await restoreFile(target, file);
  t.equal(report.points, summary.points);
  t.same(await dump(target), await dump(source));
  t.same(await rollups(target, 'plant.meter1.power'), await rollups(source, 'plant.meter1.power'));
  // An uploaded stream handing out one byte first still gets recognised as gzip.
  const other = await openStore(t, join(dir, 'other'));
  const oneByteFirst = Readable.from([bytes.subarray(0, 1), bytes.subarray(1, 100), bytes.subarray(100)]);
  t.equal((await restore(other, oneByteFirst)).points, summary.points);
  t.same(await dump(other), await dump(source));
});

t.test('from/to range and ids: only the points inside, inclusive bounds', async (t) => {
  const dir = await tempDir(t);
  const source = await openStore(t, join(dir, 'source'));
  await seed(source);
  const from = T0 + 30 * MIN;
  const to = T0 + 60 * MIN;
  const file = join(dir, 'range.ndjson');
  const summary = await backupToFile(source, file, { from, to });
  t.match(JSON.parse((await readFile(file, 'utf8')).split('\n')[0]!), { from, to });
  const target = await openStore(t, join(dir, 'target'));
  await restoreFile(target, file);
  const restored = await dump(target);
  t.equal(restored.definitions.length, DEFINITIONS.length, 'all definitions travel with a range');
  let count = 0;
  for (const [id, points] of Object.entries((await dump(source)).series)) {
    const inside = points.filter((p) => p.t >= from && p.t <= to);
    t.same(restored.series[id] ?? [], inside, `${id}: exactly the points in [from, to]`);
    count += inside.length;
  }
  t.equal(summary.points, count);
  t.ok(
    restored.series['plant.meter1.power']!.some((p) => p.t === from) && restored.series['plant.meter1.power']!.some((p) => p.t === to),
    'both bounds are inclusive',
  );

  const onlyFile = join(dir, 'ids.ndjson');
  const only = await backupToFile(source, onlyFile, { ids: ['plant.mode', 'legacy.temp'] });
  t.equal(only.datapoints, 1);
  const third = await openStore(t, join(dir, 'third'));
  await restoreFile(third, onlyFile);
  t.same(Object.keys((await dump(third)).series).sort(), ['legacy.temp', 'plant.mode']);

  await t.rejects(backupToFile(source, join(dir, 'bad.ndjson'), { from: to, to: from }), { code: 'BAD_REQUEST', message: /"from".*is after "to"/ });
  await t.rejects(backupToFile(source, join(dir, 'bad.ndjson'), { ids: ['Not An Id'] }), { code: 'BAD_REQUEST' });
  t.notOk(existsSync(join(dir, 'bad.ndjson')) || existsSync(join(dir, 'bad.ndjson.partial')), 'a refused backup leaves no file');
});

t.test('restoring twice is idempotent: same points, same rollups (counts not doubled)', async (t) => {
  const { dir, file, source } = await goodBackup(t);
  const target = await openStore(t, join(dir, 'target'));
  await restoreFile(target, file);
  const once = await dump(target);
  const rollupsOnce = await rollups(target, 'plant.meter1.power');
  t.same(rollupsOnce, await rollups(source, 'plant.meter1.power'));
  await restoreFile(target, file);
  t.same(await dump(target), once);
  // The second restore overwrites every (id, t): the store recomputes the touched buckets
  // from raw points, summing in another order, so sums may differ in the last float bits.
  sameAggregates(t, await rollups(target, 'plant.meter1.power'), rollupsOnce, 'rollups after the second restore');
  sameAggregates(
    t,
    await rollups(target, 'plant.meter1.energy'),
    await rollups(source, 'plant.meter1.energy'),
    'counter rollups (delta) after the second restore',
  );
  // Restoring into the very store the backup came from changes nothing either.
  await restoreFile(source, file);
  t.same(await dump(source), once);
});

t.test('every damaged file is refused with BACKUP_INVALID naming the line, and nothing is written', async (t) => {
  const { dir, file, lines } = await goodBackup(t);
  const good = await readFile(file);
  const body = lines.slice(0, -1); // without the '' after the final newline
  const trailerLine = body.length;
  const cases: Array<{ name: string; bytes: Buffer; message: RegExp }> = [];
  const text = (ls: string[]) => Buffer.from(ls.join('\n') + '\n');

  const cutLine = 200;
  const upToCut = body.slice(0, cutLine - 1).join('\n') + '\n';
  cases.push({
    name: 'cut in the middle of a line',
    bytes: Buffer.from(upToCut + body[cutLine - 1]!.slice(0, 15)),
    message: new RegExp(`line ${cutLine}: the file ends in the middle of a line \\(truncated\\)`),
  });
  cases.push({
    name: 'cut before the trailer',
    bytes: text(body.slice(0, -1)),
    message: new RegExp(`line ${trailerLine}: the file ends after line ${trailerLine - 1} without the trailer line: it is truncated`),
  });
  cases.push({ name: 'cut at a line boundary mid-file', bytes: text(body.slice(0, 300)), message: /line 301: .*without the trailer line/ });

  const edited = [...body];
  const editAt = edited.findIndex((l) => l.includes('"plant.meter1.power","t"'));
  const point = JSON.parse(edited[editAt]!) as { v: number };
  edited[editAt] = JSON.stringify({ ...point, v: point.v + 1 });
  cases.push({ name: 'a value edited', bytes: text(edited), message: new RegExp(`line ${trailerLine}: checksum mismatch.*the file was changed or damaged`) });

  const dropped = [...body];
  dropped.splice(editAt, 1);
  cases.push({ name: 'a line removed', bytes: text(dropped), message: new RegExp(`line ${trailerLine - 1}: trailer says \\d+ points, the file has \\d+`) });

  const wrongType = [...body];
  const boolAt = wrongType.findIndex((l) => l.startsWith('{"id":"plant.pump.on","t"') && !l.includes('null'));
  wrongType[boolAt] = wrongType[boolAt]!.replace(/"v":(true|false)/, '"v":"yes"');
  cases.push({ name: 'a value of the wrong type', bytes: text(wrongType), message: new RegExp(`line ${boolAt + 1}: plant.pump.on: expected true/false`) });

  cases.push({
    name: 'another format in the header',
    bytes: text([JSON.stringify({ ...JSON.parse(body[0]!), format: 'something-else' }), ...body.slice(1)]),
    message: /line 1: not an Outpost backup/,
  });
  cases.push({
    name: 'a newer version',
    bytes: text([JSON.stringify({ ...JSON.parse(body[0]!), version: 2 }), ...body.slice(1)]),
    message: /line 1: backup format version 2 is not supported \(this Outpost reads version 1\)/,
  });
  cases.push({ name: 'not a backup at all (CSV)', bytes: Buffer.from('time,value\n2025-01-01,1\n'), message: /line 1: not an Outpost backup/ });
  cases.push({ name: 'an empty file', bytes: Buffer.alloc(0), message: /line 1: the file is empty/ });

  const junk = [...body];
  junk.splice(50, 0, 'hello, not json');
  cases.push({ name: 'a junk line', bytes: text(junk), message: /line 51: not valid JSON/ });
  const blank = [...body];
  blank.splice(60, 0, '');
  cases.push({ name: 'an empty line', bytes: text(blank), message: /line 61: empty line/ });
  const unknownField = [...body];
  unknownField[100] = unknownField[100]!.replace('{"id"', '{"x":1,"id"');
  cases.push({ name: 'a point with an unknown field', bytes: text(unknownField), message: /line 101: unknown field\(s\) x/ });

  const oversized = [...body];
  oversized.splice(70, 0, JSON.stringify({ id: 'plant.cfg', t: T0 + 1, v: 'x'.repeat(MAX_LINE_BYTES + 10) }));
  cases.push({ name: 'an oversized line', bytes: text(oversized), message: new RegExp(`line 71: line is longer than ${MAX_LINE_BYTES} bytes`) });
  cases.push({
    name: 'a file of one endless line',
    bytes: Buffer.alloc(MAX_LINE_BYTES * 2, 0x41),
    message: new RegExp(`line 1: line is longer than ${MAX_LINE_BYTES} bytes`),
  });
  cases.push({
    name: 'data after the trailer',
    bytes: Buffer.concat([good, Buffer.from(body[5]! + '\n')]),
    message: new RegExp(`line ${trailerLine + 1}: data after the trailer line`),
  });

  const gz = gzipSync(good);
  const flipped = Buffer.from(gz);
  flipped[Math.floor(flipped.length / 2)]! ^= 0xff;
  // Inflate may hand out garbage before the CRC-32 check at the end fails: refused either way.
  cases.push({ name: 'gzip with a damaged byte', bytes: flipped, message: /line \d+: (not valid JSON|.*the gzip data is damaged or truncated)/ });
  cases.push({ name: 'gzip cut short', bytes: gz.subarray(0, Math.floor(gz.length * 0.7)), message: /after line \d+: the gzip data is damaged or truncated/ });

  for (const c of cases) {
    const bad = join(dir, `bad-${cases.indexOf(c)}.ndjson`);
    await writeFile(bad, c.bytes);
    const target = await openStore(t, join(dir, `target-${cases.indexOf(c)}`));
    const message = await refusal(t, restoreFile(target, bad));
    t.match(message, c.message, `${c.name}: ${message.slice(0, 160)}`);
    t.match(message, /nothing was restored/, `${c.name}: says nothing was written`);
    t.ok(await isEmpty(target), `${c.name}: nothing was written`);
    await refusal(t, verifyBackup(Readable.from([c.bytes])));
  }
});

t.test('a one-shot stream (no verify pass): a bad line stops the restore and says what was already written', async (t) => {
  const { dir, lines } = await goodBackup(t);
  const body = lines.slice(0, -1);
  // Line 1001: header, 5 definitions, then 994 points, of which the first full batch of 500 is written.
  body.splice(1000, 0, 'junk');
  const target = await openStore(t, join(dir, 'target'));
  const message = await refusal(t, restore(target, Readable.from([Buffer.from(body.join('\n') + '\n')]), { batch: 500 }));
  t.match(message, /line 1001: not valid JSON; 5 datapoint definition\(s\) and 500 point\(s\) from the lines before were already restored/);
  t.equal((await target.listDatapoints()).length, 5);
  const written = (await dump(target)).series;
  t.equal(
    Object.values(written).reduce((n, s) => n + s.length, 0),
    500,
    'exactly the batches the message reports',
  );
});

t.test('a failed backup leaves no file under the name', async (t) => {
  const dir = await tempDir(t);
  const source = new LevelStore({ path: join(dir, 'source') });
  await source.open();
  await seed(source);
  await source.close();
  const file = join(dir, 'closed.ndjson');
  await t.rejects(backupToFile(source, file), { code: 'STORAGE_CLOSED' });
  t.same(
    (await readdir(dir)).filter((f) => f.startsWith('closed')),
    [],
    'neither the file nor its .partial exists',
  );
});

t.test('50,000 points round trip through gzip', async (t) => {
  const dir = await tempDir(t);
  const source = await openStore(t, join(dir, 'source'));
  const ids = ['big.a', 'big.b', 'big.c', 'big.d', 'big.e'];
  for (const id of ids) await source.putDatapoint({ id, adapter: 'virtual', kind: 'sensor', type: 'number' });
  for (let start = 0; start < 10_000; start += 2000) {
    const batch: PointRecord[] = [];
    for (const [k, id] of ids.entries()) for (let i = start; i < start + 2000; i++) batch.push({ id, t: T0 + i * 1000, v: (i * (k + 1)) % 977 });
    await source.write(batch);
  }
  const file = join(dir, 'big.ndjson.gz');
  const summary = await backupToFile(source, file);
  t.equal(summary.points, 50_000);
  const target = await openStore(t, join(dir, 'target'));
  const report = await restoreFile(target, file);
  t.equal(report.points, 50_000);
  for (const id of ids) {
    const a = await allPoints(source, id);
    const b = await allPoints(target, id);
    t.equal(b.length, 10_000, `${id}: every point`);
    t.same(b, a, `${id}: same values`);
    t.same(
      await target.queryAggregate(id, { from: T0, to: T0 + 10_000_000, interval: 15 * MIN, agg: 'sum' }),
      await source.queryAggregate(id, { from: T0, to: T0 + 10_000_000, interval: 15 * MIN, agg: 'sum' }),
      `${id}: 15 min sums`,
    );
  }
});

t.test('a backup of a store that keeps writing is one point-in-time image (a LevelDB snapshot)', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore(t, join(dir, 'live'));
  const ids = ['snap.a', 'snap.b', 'snap.c'];
  for (const id of ids) await store.putDatapoint({ id, adapter: 'virtual', kind: 'sensor', type: 'number' });
  // 3 × 12,000 points: several pages (5,000 points) per series, many output chunks.
  for (const id of ids)
    for (let start = 0; start < 12_000; start += 4000) await store.write(Array.from({ length: 4000 }, (_, i) => ({ id, t: T0 + (start + i) * 1000, v: 1 })));
  const lines: string[] = [];
  let writes = 0;
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((l) => l.length > 0),
      );
      // While the backup is being read: overwrite old values, add new points, a new datapoint.
      writes++;
      const changes: PointRecord[] = ids.flatMap((id) => [
        { id, t: T0 + writes * 997 * 1000, v: 2 },
        { id, t: T0 + (20_000 + writes) * 1000, v: 3 },
      ]);
      changes.push({ id: 'snap.late', t: T0 + writes, v: 4 });
      store.write(changes).then(() => done(), done);
    },
  });
  const summary = await backup(store, out);
  t.ok(writes >= 3, `${writes} batches written while the backup ran`);
  const points = lines.map((l) => JSON.parse(l) as { id?: string; v?: unknown; datapoint?: unknown; end?: string }).filter((l) => l.id !== undefined);
  t.equal(summary.points, 36_000, 'exactly the points there were when it started');
  t.equal(points.length, 36_000);
  t.ok(
    points.every((p) => p.v === 1),
    'with the values they had then (no overwrite made during the backup shows)',
  );
  t.notOk(
    points.some((p) => p.id === 'snap.late'),
    'no series created during the backup',
  );
  t.ok((await store.query('snap.a', { from: T0 + 20_001_000 })).length > 0, 'the writes did land in the store');
});
