import t from 'tap';
import type { Test } from 'tap';
import mqtt from 'mqtt';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnOutpost } from '../helpers/process.js';
import { localApi } from '../helpers/local-api.js';
import { backupCommand, restoreCommand } from '../../storage/backup-cli.js';

/**
 * The real `outpost` process end to end: data in through MQTT on a running gateway,
 * `outpost backup` refused while it runs, then backup, restore into a new data dir,
 * and the values read back over REST from a gateway started on that dir.
 */

async function siteConfig(_t: Test, dir: string, name: string, gatewayId: string): Promise<string> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    `gateway: { id: ${gatewayId} }
dataDir: ${join(dir, `${name}-data`)}
log: { level: info }
broker: { mqtt: { host: 127.0.0.1, port: 0 } }
http: { host: 127.0.0.1, port: 0 }
`,
  );
  return file;
}

function mqttPortOf(stdout: string): number {
  const m = /MQTT on 127\.0\.0\.1:(\d+)/.exec(stdout);
  if (!m) throw new Error(`no MQTT port in: ${stdout}`);
  return Number(m[1]);
}

async function run(t: Test, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnOutpost(args);
  t.teardown(() => p.child.kill('SIGKILL'));
  const { code } = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

async function stop(p: ReturnType<typeof spawnOutpost>): Promise<number | null> {
  p.child.kill('SIGTERM');
  return (await p.exited).code;
}

type Point = { t: number; v: unknown; q?: string };

async function read(api: ReturnType<typeof localApi>, id: string, from: number, to: number): Promise<Point[]> {
  const res = await api(`/api/datapoints/${id}/values?from=${from}&to=${to}&limit=10000`);
  if (res.status !== 200) throw new Error(`${id}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { values: Point[] }).values;
}

t.test('outpost backup / restore with the real process', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-backup-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const siteA = await siteConfig(t, dir, 'a', 'site-a');
  const siteB = await siteConfig(t, dir, 'b', 'site-b');

  const first = spawnOutpost(['start', '-c', siteA]);
  t.teardown(() => first.child.kill('SIGKILL'));
  await first.ready;
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPortOf(first.stdout())}`, { reconnectPeriod: 0 });
  const base = Date.now() - 3600_000;
  for (let i = 0; i < 120; i++) {
    const msg = i >= 50 && i < 55 ? { v: null, q: 'stale', t: base + i * 1000 } : { v: i * 1.5, t: base + i * 1000 };
    await client.publishAsync('outpost/dp/site.probe.power/value', JSON.stringify(msg), { qos: 1 });
  }
  await client.publishAsync('outpost/dp/site.probe.state/value', JSON.stringify({ v: 'running', t: base }), { qos: 1 });
  await client.endAsync();

  const file = join(dir, 'site-a.ndjson.gz');
  const busy = await run(t, ['backup', '-c', siteA, '--out', file]);
  t.not(busy.code, 0, 'backup while the gateway runs exits non-zero');
  t.match(busy.stderr, /in use: stop the gateway first/, busy.stderr);
  t.notOk(existsSync(file), 'and writes no file');
  const busyRestore = await run(t, ['restore', '-c', siteA, file]);
  t.not(busyRestore.code, 0, "restore into a running gateway's data dir is refused too");

  t.equal(await stop(first), 0, 'the gateway stops cleanly');

  const made = await run(t, ['backup', '-c', siteA, '--out', file]);
  t.equal(made.code, 0, made.stderr);
  t.match(made.stdout, /backup written to .*site-a\.ndjson\.gz: 2 datapoint\(s\), 121 point\(s\), sha256 [0-9a-f]{64}/);
  const bytes = await readFile(file);
  t.same([bytes[0], bytes[1]], [0x1f, 0x8b], 'a .gz name gives a gzip file');

  const ranged = await run(t, [
    'backup',
    '-c',
    siteA,
    '--out',
    join(dir, 'range.ndjson'),
    '--from',
    String(base + 10_000),
    '--to',
    new Date(base + 19_000).toISOString(),
  ]);
  t.equal(ranged.code, 0, ranged.stderr);
  t.match(ranged.stdout, /2 datapoint\(s\), 10 point\(s\)/, '--from (ms) and --to (ISO) bound the points');

  const damaged = join(dir, 'damaged.ndjson.gz');
  await writeFile(damaged, bytes.subarray(0, bytes.length - 20));
  const refused = await run(t, ['restore', '-c', siteB, damaged]);
  t.not(refused.code, 0, 'a damaged file is refused');
  t.match(refused.stderr, /outpost restore: backup refused .*line \d+.*nothing was restored/, refused.stderr);

  const restored = await run(t, ['restore', '-c', siteB, file]);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /restored .*site-a\.ndjson\.gz \(gateway "site-a", taken \d{4}-.*\): 2 datapoint\(s\), 121 point\(s\)/);

  const second = spawnOutpost(['start', '-c', siteB]);
  t.teardown(() => second.child.kill('SIGKILL'));
  await second.ready;
  // Read back as `outpost api` does, with the local token of the gateway on site B's data dir.
  const api = localApi(join(dir, 'b-data'));
  const power = await read(api, 'site.probe.power', base, base + 200_000);
  t.equal(power.length, 120, 'every point, once');
  t.same(power.slice(48, 56), [
    { t: base + 48_000, v: 72 },
    { t: base + 49_000, v: 73.5 },
    ...[50, 51, 52, 53, 54].map((i) => ({ t: base + i * 1000, v: null, q: 'stale' })),
    { t: base + 55_000, v: 82.5 },
  ]);
  t.same(await read(api, 'site.probe.state', base, base), [{ t: base, v: 'running' }]);
  const meta = (await (await api(`/api/datapoints/site.probe.power`)).json()) as { adapter: string };
  t.equal(meta.adapter, 'mqtt', 'the definition came along');
  const hourly = (await (await api(`/api/datapoints/site.probe.power/values?interval=1m&agg=count&from=${base}&to=${base + 119_000}`)).json()) as {
    values: Array<{ v: number }>;
  };
  t.equal(
    hourly.values.reduce((n, x) => n + x.v, 0),
    115,
    'rollups rebuilt: 115 numeric readings counted (stale nulls are not numbers)',
  );
  t.equal(await stop(second), 0);
});

t.test('backup/restore commands refuse bad arguments before touching anything (in-process, same code as the CLI)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-backup-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await t.rejects(
    backupCommand({ dataDir: join(dir, 'nowhere'), gateway: 'x', out: join(dir, 'empty.ndjson') }),
    { code: 'STORAGE_OPEN_FAILED', message: /there is no database at .*nowhere/ },
    'a data dir without a database is refused, not backed up as empty',
  );
  t.notOk(existsSync(join(dir, 'nowhere')), 'and not created');
  t.notOk(existsSync(join(dir, 'empty.ndjson')));
  await t.rejects(
    backupCommand({ dataDir: dir, gateway: 'x', out: join(dir, 'x.ndjson'), from: 'yesterday' }),
    { code: 'BAD_REQUEST', message: /--from must be epoch milliseconds or an ISO 8601 date/ },
    'a bad --from is a usage error (exit 2)',
  );
  await t.rejects(restoreCommand({ dataDir: join(dir, 'target'), file: join(dir, 'missing.ndjson') }), {
    code: 'BACKUP_INVALID',
    message: /cannot read .*missing\.ndjson/,
  });
  t.notOk(existsSync(join(dir, 'target')), 'a missing file creates no database');
});
