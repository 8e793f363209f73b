/**
 * "Acknowledged means durable": the real `outpost start` process is killed with SIGKILL
 * during sustained QoS 1 ingest from an MQTT.js client, again and again on the same data
 * dir. After every kill the database must open cleanly and hold every message the broker
 * PUBACKed (runtime/ingest.ts guardValue writes with fsync before the PUBACK).
 * Rounds: STORAGE_SIGKILL_ROUNDS (default 20).
 */
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { spawn } from 'node:child_process';
import { REPO_ROOT } from '../helpers/process.js';
import { LevelStore } from '../../storage/level/level-store.js';

const ROUNDS = Number(process.env.STORAGE_SIGKILL_ROUNDS ?? 20);
const T_BASE = Date.UTC(2024, 0, 1);
const DP = 'kill.test';
const IN_FLIGHT = 64;

t.test(`SIGKILL during QoS 1 ingest, ${ROUNDS} times: every PUBACKed message is stored`, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-sigkill-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const cfg = join(dir, 'outpost.yaml');
  await writeFile(
    cfg,
    [
      `dataDir: ${JSON.stringify(join(dir, 'data'))}`,
      'log: { level: warn }',
      'broker: { mqtt: { host: 127.0.0.1, port: 0 }, websocket: { enabled: false } }',
      'http: { host: 127.0.0.1, port: 0 }',
      '',
    ].join('\n'),
  );
  // The sources through tsx, as test/helpers/process.ts runs them without a build (dist/
  // may be older than the sources under test).
  const cli = join(REPO_ROOT, 'runtime', 'cli.ts');

  const acked = new Set<number>();
  let next = 0;
  let totalSent = 0;

  for (let round = 0; round < ROUNDS; round++) {
    const started = Date.now();
    const proc = startOutpost(cli, cfg);
    t.teardown(() => {
      if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
    });
    const port = await proc.mqttPort;
    const readyMs = Date.now() - started;
    t.ok(port > 0, `round ${round}: MQTT port ${port}`);

    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: `killer-${round}`, reconnectPeriod: 0, clean: true });
    client.on('error', () => undefined); // the connection dies with the process; acks are what count
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    const ackedBefore = acked.size;
    let killed = false;
    let inFlight = 0;
    const pump = (): void => {
      while (!killed && inFlight < IN_FLIGHT) {
        const n = next++;
        inFlight++;
        totalSent++;
        client.publish(`outpost/dp/${DP}/value`, JSON.stringify({ v: n, t: T_BASE + n }), { qos: 1 }, (err) => {
          inFlight--;
          if (!err) acked.add(n);
          pump();
        });
      }
    };
    pump();
    // Kill at a varying moment once ingest is well under way (after >= 150 PUBACKs).
    const waitAcks = 150 + Math.floor(Math.random() * 300);
    const deadline = Date.now() + 20_000;
    while (acked.size - ackedBefore < waitAcks && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const ingestMs = Date.now() - started - readyMs;
    proc.child.kill('SIGKILL');
    killed = true;
    const exit = await proc.exited;
    client.end(true);
    t.equal(exit.signal, 'SIGKILL', `round ${round}: killed after ${acked.size - ackedBefore} PUBACKs (start ${readyMs} ms, ingest ${ingestMs} ms)`);

    const store = new LevelStore({ path: join(dir, 'data', 'db') });
    await store.open(); // throws if the database does not open cleanly
    const stored = new Set((await store.query(DP, { limit: 100_000 })).map((p) => p.v as number));
    await store.close();
    const missing = [...acked].filter((n) => !stored.has(n));
    t.same(missing, [], `round ${round}: all ${acked.size} PUBACKed messages stored`);
    if (missing.length > 0) break;
  }
  t.ok(acked.size >= ROUNDS * 150, `${acked.size} of ${totalSent} sent messages were acknowledged over ${ROUNDS} kills`);
});

function startOutpost(cli: string, cfg: string) {
  const env = { ...process.env };
  // The child refuses OUTPOST_* variables that name no configuration key.
  for (const key of Object.keys(env)) if (key.startsWith('OUTPOST_')) delete env[key];
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'start', '-c', cfg], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const mqttPort = new Promise<number>((resolve, reject) => {
    const onData = (): void => {
      const m = /ready: .*MQTT on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        child.stdout.off('data', onData);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on('data', onData);
    void exited.then(({ code, signal }) => reject(new Error(`outpost exited (${code ?? signal}) before ready:\n${out}`)));
  });
  mqttPort.catch(() => undefined);
  return { child, exited, mqttPort };
}
