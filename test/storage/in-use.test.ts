import t from 'tap';
import type { Test } from 'tap';
import mqtt from 'mqtt';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnOutpost, type OutpostProcess } from '../helpers/process.js';
import { localApi } from '../helpers/local-api.js';
import { assertNotInUse, PID_FILE } from '../../storage/data-dir-lock.js';
import { LevelStore } from '../../storage/level/level-store.js';

/**
 * `outpost repair`, `backup` and `restore` refuse a database a running gateway holds. Before,
 * `outpost repair` against a live gateway's database returned 0; afterwards the database did
 * not open and acknowledged readings were lost (LevelDB's repair takes no lock).
 */

const T0 = Date.UTC(2025, 0, 1);

async function site(t: Test): Promise<{ dir: string; config: string; dataDir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-in-use-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'data');
  const config = join(dir, 'outpost.yaml');
  await writeFile(
    config,
    `gateway: { id: in-use }
dataDir: ${dataDir}
log: { level: info }
broker: { mqtt: { host: 127.0.0.1, port: 0 } }
http: { host: 127.0.0.1, port: 0 }
`,
  );
  return { dir, config, dataDir };
}

async function cli(t: Test, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnOutpost(args);
  t.teardown(() => p.child.kill('SIGKILL'));
  const { code } = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

async function start(t: Test, config: string): Promise<OutpostProcess> {
  const p = spawnOutpost(['start', '-c', config]);
  t.teardown(() => p.child.kill('SIGKILL'));
  await p.ready;
  return p;
}

/** Publishes readings `from`..`to`-1 at QoS 1 (each acknowledged) to the gateway `p`. */
async function publish(p: OutpostProcess, from: number, to: number): Promise<void> {
  const port = Number(/MQTT on 127\.0\.0\.1:(\d+)/.exec(p.stdout())![1]);
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  for (let i = from; i < to; i++) await client.publishAsync('outpost/dp/meter.energy/value', JSON.stringify({ v: i, t: T0 + i * 1000 }), { qos: 1 });
  await client.endAsync();
}

async function stored(dataDir: string): Promise<number[]> {
  const res = await localApi(dataDir)(`/api/datapoints/meter.energy/values?from=${T0}&limit=100000`);
  if (res.status !== 200) throw new Error(`${res.status} ${await res.text()}`);
  return ((await res.json()) as { values: Array<{ v: number }> }).values.map((p) => p.v);
}

const range = (n: number): number[] => [...Array(n).keys()];

t.test('repair, backup and restore are refused while the gateway runs, and work once it stopped (gracefully or killed)', async (t) => {
  const { dir, config, dataDir } = await site(t);
  const running = await start(t, config);
  t.equal((await readFile(join(dataDir, PID_FILE), 'utf8')).trim(), String(running.child.pid), `the gateway wrote its pid to <dataDir>/${PID_FILE}`);
  await publish(running, 0, 300);
  // A valid backup to try restoring, taken from the running gateway as its API allows.
  const backup = join(dir, 'site.ndjson');
  await writeFile(backup, Buffer.from(await (await localApi(dataDir)('/api/admin/backup')).arrayBuffer()));

  for (const args of [
    ['repair', '-c', config],
    ['repair', '--db', join(dataDir, 'db')],
    ['backup', '-c', config, '--out', join(dir, 'refused.ndjson')],
    ['restore', '-c', config, backup],
  ]) {
    const r = await cli(t, args);
    t.equal(r.code, 1, `outpost ${args.join(' ')}: refused with exit 1 (a runtime failure, like a port in use)`);
    t.match(
      r.stderr,
      new RegExp(`outpost ${args[0]}: .* is in use: stop the gateway first \\(pid ${running.child.pid} runs on it\\)`),
      'the message says why and what to do',
    );
    t.notMatch(r.stdout, /repairing|backup written|restored/, 'nothing was done');
  }
  t.notOk(existsSync(join(dir, 'refused.ndjson')), 'no backup file written');
  const second = spawnOutpost(['start', '-c', config]);
  t.teardown(() => second.child.kill('SIGKILL'));
  t.equal((await second.exited).code, 1, 'a second gateway on the same data dir exits 1 (the LOCK is held)');
  t.equal((await readFile(join(dataDir, PID_FILE), 'utf8')).trim(), String(running.child.pid), "and leaves the running gateway's pid file alone");
  t.same(await stored(dataDir), range(300), 'the running gateway still has every reading');
  await publish(running, 300, 400);
  running.child.kill('SIGTERM');
  t.equal((await running.exited).code, 0);
  t.notOk(existsSync(join(dataDir, PID_FILE)), 'a graceful stop removes the pid file');

  // Stopped gracefully: every tool works.
  t.equal((await cli(t, ['repair', '-c', config])).code, 0, 'repair works once the gateway stopped');
  const made = await cli(t, ['backup', '-c', config, '--out', join(dir, 'after.ndjson')]);
  t.equal(made.code, 0, made.stderr);
  t.match(made.stdout, /400 point\(s\)/, 'the backup has all 400 readings');
  const restored = await cli(t, ['restore', '-c', config, backup]);
  t.equal(restored.code, 0, restored.stderr);

  // Killed: its pid file stays behind, naming a dead process; the LOCK died with it.
  const killed = await start(t, config);
  t.same(await stored(dataDir), range(400), 'after repair and restore: every acknowledged reading, once');
  await publish(killed, 400, 500);
  killed.child.kill('SIGKILL');
  await killed.exited;
  t.ok(existsSync(join(dataDir, PID_FILE)), 'SIGKILL leaves the pid file');
  t.equal((await cli(t, ['repair', '-c', config])).code, 0, 'a stale pid file is no lock: repair works');
  t.equal((await cli(t, ['backup', '-c', config, '--out', join(dir, 'killed.ndjson')])).code, 0, 'backup works');
  t.equal((await cli(t, ['restore', '-c', config, backup])).code, 0, 'restore works');
  const last = await start(t, config);
  t.same(await stored(dataDir), range(500), 'every acknowledged reading is there after the kill, the repair and the restore');
  last.child.kill('SIGTERM');
  t.equal((await last.exited).code, 0);
});

t.test('the pid file alone refuses (a gateway waiting for room holds no LOCK); a stale one does not', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-pid-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'db'));
  const alive = spawn('sleep', ['30']);
  t.teardown(() => alive.kill());
  await writeFile(join(dir, PID_FILE), `${alive.pid}\n`);
  await t.rejects(assertNotInUse(join(dir, 'db'), 'outpost repair'), {
    code: 'STORAGE_IN_USE',
    message: new RegExp(`stop the gateway first \\(pid ${alive.pid} runs on it\\)`),
  });
  alive.kill();
  await new Promise((r) => alive.once('exit', r));
  await t.resolves(assertNotInUse(join(dir, 'db'), 'outpost repair'), 'the process is gone: the pid file is stale');
  // No pid file (a full disk kept the gateway from writing it): LevelDB's LOCK still tells.
  await rm(join(dir, PID_FILE));
  const holder = new LevelStore({ path: join(dir, 'db') });
  await holder.open();
  t.teardown(() => holder.close());
  await t.rejects(assertNotInUse(join(dir, 'db'), 'outpost backup'), {
    code: 'STORAGE_IN_USE',
    message: /is in use: stop the gateway first \(another process holds its LOCK\), or use GET \/api\/admin\/backup/,
  });
});
