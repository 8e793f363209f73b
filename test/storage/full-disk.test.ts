import t from 'tap';
import type { Test } from 'tap';
import mqtt from 'mqtt';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnOutpost, type OutpostProcess } from '../helpers/process.js';
import { localApi } from '../helpers/local-api.js';
import { eventually } from '../helpers/gateway.js';
import { freePort } from '../helpers/reverse-proxy.js';

/**
 * A full disk is a state, not a crash: the real `outpost start` on a 48 MB tmpfs, two devices
 * publishing QoS 1 over MQTT at ~1,000 readings/s between them and a simulated adapter (whose
 * failed writes each logged a warning), the disk filled to ~1.5 MB free with a file, later freed.
 *
 * Before: the gateway died ~1 s after storage went read-only (a device reconnecting made Aedes
 * delete its will; the failed write's rejection was left unhandled), the retained read-only
 * alarm was never delivered (storing it failed first), a restart on the full disk exited 1.
 */

const DEVICES = 2;
/** Readings per device per 10 ms tick (2 × 5 × 100/s = 1,000/s), while fewer than WINDOW wait for PUBACK. */
const PER_TICK = 5;
const WINDOW = 500;

interface Device {
  client: mqtt.MqttClient;
  /** Readings (by value) whose PUBACK arrived. */
  acked: Set<number>;
  inflight: number;
  stop(): void;
}

function device(port: number, n: number): Device {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: `meter-${n}`, reconnectPeriod: 300, connectTimeout: 2000 });
  client.on('error', () => undefined); // refused connections while the gateway restarts: it reconnects
  const d: Device = { client, acked: new Set(), inflight: 0, stop: () => clearInterval(timer) };
  let next = 0;
  const timer = setInterval(() => {
    if (!client.connected) return;
    for (let i = 0; i < PER_TICK && d.inflight < WINDOW; i++) {
      const v = next++;
      d.inflight++;
      client.publish(`outpost/dp/meter${n}.energy/value`, JSON.stringify({ v, t: Date.UTC(2025, 0, 1) + v }), { qos: 1 }, (err) => {
        d.inflight--;
        if (!err) d.acked.add(v);
      });
    }
  }, 10);
  return d;
}

async function free(path: string): Promise<number> {
  const s = await statfs(path);
  return s.bavail * s.bsize;
}

/** A file that leaves `leave` bytes free (at most: tmpfs counts whole pages). */
async function fill(dir: string, name: string, leave: number): Promise<void> {
  const size = (await free(dir)) - leave;
  if (size > 0) execFileSync('fallocate', ['-l', String(size), join(dir, name)]);
}

function logLines(p: OutpostProcess): Array<Record<string, unknown>> {
  return p
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function mountTmpfs(t: Test): Promise<string | undefined> {
  const mnt = await mkdtemp(join(tmpdir(), 'outpost-full-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    await rm(mnt, { recursive: true, force: true });
    t.skip(`needs root to mount a 48 MB tmpfs: ${(err as Error).message.split('\n')[0]}`, () => undefined);
    return undefined;
  }
  t.teardown(async () => {
    execFileSync('umount', ['-l', mnt]);
    await rm(mnt, { recursive: true, force: true });
  });
  return mnt;
}

t.test(
  'full disk under QoS 1 load: read-only alarm, reads served, recovery without restart, start on a full disk read-only (or waiting without a reserve)',
  async (t) => {
    const mnt = await mountTmpfs(t);
    if (!mnt) return;
    const dataDir = join(mnt, 'data');
    const mqttPort = await freePort();
    const httpPort = await freePort();
    const config = join(mnt, 'outpost.yaml');
    await writeFile(
      config,
      `gateway: { id: full-disk }
dataDir: ${dataDir}
log: { level: info }
broker: { mqtt: { host: 127.0.0.1, port: ${mqttPort} } }
http: { host: 127.0.0.1, port: ${httpPort} }
adapters:
  - { id: site, type: simulated, interval: 100 }
`,
    );
    const base = `http://127.0.0.1:${httpPort}`;
    const api = localApi(dataDir);
    const health = async (): Promise<{ status: number; body: { storage: { state: string; error?: string; recovery?: string } } }> => {
      const res = await fetch(`${base}/healthz`);
      return { status: res.status, body: (await res.json()) as { storage: { state: string; error?: string } } };
    };

    const first = spawnOutpost(['start', '-c', config]);
    t.teardown(() => first.child.kill('SIGKILL'));
    await first.ready;

    // What operators watch: the retained storage alarm on the bus.
    const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { reconnectPeriod: 300 });
    t.teardown(() => watcher.end(true));
    const alarms: Array<{ state: string; error?: string }> = [];
    watcher.on('message', (_topic, payload) => alarms.push(JSON.parse(payload.toString()) as { state: string }));
    await watcher.subscribeAsync('outpost/gateway/storage');

    const devices = Array.from({ length: DEVICES }, (_, n) => device(mqttPort, n));
    t.teardown(() => {
      for (const d of devices) {
        d.stop();
        d.client.end(true);
      }
    });
    const acked = (): number => devices.reduce((n, d) => n + d.acked.size, 0);
    await eventually(() => acked() > 2000, 10_000);

    // ~1.5 MB left: LevelDB's log fills it within seconds.
    await fill(mnt, 'filler', 1.5 * 1024 * 1024);
    const filledAt = Date.now();
    const readOnly = async (): Promise<boolean> => (await health().catch(() => undefined))?.body.storage.state === 'read-only';
    await eventually(async () => first.child.exitCode !== null || (await readOnly()), 60_000, 50);
    t.pass(`${first.child.exitCode === null ? 'storage went read-only' : 'the gateway exited'} ${Date.now() - filledAt} ms after the disk was filled`);
    // Still alive well past the second it used to survive, devices reconnecting all along.
    await new Promise((r) => setTimeout(r, 5000));
    t.equal(first.child.exitCode, null, 'the gateway is still running 5 s into the read-only state');
    t.equal(alarms.at(-1)?.state, 'read-only', 'the read-only alarm was delivered on outpost/gateway/storage');
    t.match(alarms.at(-1)?.error, /No space left on device/, 'the alarm says why');
    const h = await health();
    t.equal(h.status, 503, '/healthz answers 503');
    t.equal(h.body.storage.state, 'read-only');
    t.match(h.body.storage.error, /No space left on device/, '/healthz says why');
    t.match(h.body.storage.recovery, /free disk space/, 'and what to do');
    t.match(await (await api('/metrics')).text(), /^outpost_storage_read_only 1$/m, 'outpost_storage_read_only is 1');
    const ackedWhileFull = acked();
    await new Promise((r) => setTimeout(r, 2000));
    t.equal(acked(), ackedWhileFull, 'no PUBACK while storage is read-only (2 s of 1,000 publications/s)');
    const values = await api(`/api/datapoints/meter0.energy/values?from=${Date.UTC(2025, 0, 1)}&limit=100000`);
    t.equal(values.status, 200, 'reads are served while read-only');
    t.ok(((await values.json()) as { values: unknown[] }).values.length > 500, 'with the readings stored before the disk filled');
    // A client connecting now (Aedes writes at every CONNECT) gets the retained latest value.
    const reader = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
      reconnectPeriod: 0,
      will: { topic: 'reader/status', payload: Buffer.from('gone'), qos: 1, retain: false },
    });
    const retained = new Promise<{ v: number }>((resolve) =>
      reader.once('message', (_topic, payload) => resolve(JSON.parse(payload.toString()) as { v: number })),
    );
    await reader.subscribeAsync('outpost/dp/meter0.energy/value');
    t.ok(Math.max(...devices[0]!.acked) <= (await retained).v, 'a client connecting while read-only (with a will) gets the retained latest value');
    await reader.endAsync();
    const warnings = logLines(first).filter((l) => (l.level as number) >= 40);
    t.ok(warnings.length < 20, `warnings are rate-limited: ${warnings.length} in ${Math.round((Date.now() - filledAt) / 1000)} s`, {
      found: warnings.map((w) => w.msg),
    });

    // Recovery without restart: room again, the database is reopened, PUBACKs resume.
    await rm(join(mnt, 'filler'));
    await eventually(() => alarms.at(-1)?.state === 'ok', 20_000, 50);
    t.pass('alarm cleared on the bus once there is room');
    t.equal((await health()).status, 200, '/healthz 200 again');
    const resumedFrom = acked();
    await eventually(() => acked() > resumedFrom + 1000, 20_000, 50);
    t.pass('devices are acknowledged again (their held readings first)');

    // A stop and a start while the disk is full: the gateway gives up its space reserve to open
    // the database and comes up read-only, serving what it holds.
    first.child.kill('SIGTERM');
    t.equal((await first.exited).code, 0, 'graceful stop exits 0');
    const reserve = join(dataDir, 'space-reserve');
    t.equal((await stat(reserve)).size, 8 << 20, 'the first start made an 8 MiB space reserve');
    await fill(mnt, 'filler', 0);
    const second = spawnOutpost(['start', '-c', config]);
    t.teardown(() => second.child.kill('SIGKILL'));
    await second.ready;
    const fullStart = await health();
    t.equal(fullStart.status, 503, 'started on a full disk: /healthz 503');
    t.equal(fullStart.body.storage.state, 'read-only', 'storage is read-only, not unavailable');
    t.match(fullStart.body.storage.error, /full at start/, '/healthz says why');
    const held = await api(`/api/datapoints/meter0.energy/values?from=${Date.UTC(2025, 0, 1)}&limit=100000`);
    t.equal(held.status, 200, 'the readings stored before are served');
    t.ok(((await held.json()) as { values: unknown[] }).values.length > 500, 'all of them');
    t.equal((await api('/api/datapoints')).status, 200, 'the API answers');
    await eventually(() => alarms.at(-1)?.state === 'read-only' && /full at start/.test(alarms.at(-1)?.error ?? ''), 15_000, 50);
    t.pass('the read-only alarm is on the bus');
    const ackedFullStart = acked();
    await new Promise((r) => setTimeout(r, 2000));
    t.equal(acked(), ackedFullStart, 'no PUBACK while read-only after a full start');
    await rm(join(mnt, 'filler'));
    await eventually(() => alarms.at(-1)?.state === 'ok', 20_000, 50);
    t.equal((await health()).status, 200, 'writable again once there is room, without a restart');
    t.equal((await stat(reserve)).size, 8 << 20, 'the space reserve is made again');
    const afterFullStart = acked();
    await eventually(() => acked() > afterFullStart + 1000, 20_000, 50);
    t.pass('devices are acknowledged again');

    // With no reserve to give up, the start waits for room instead of exiting 1.
    second.child.kill('SIGTERM');
    t.equal((await second.exited).code, 0, 'graceful stop exits 0');
    await rm(reserve);
    await fill(mnt, 'filler', 0);
    const third = spawnOutpost(['start', '-c', config]);
    t.teardown(() => third.child.kill('SIGKILL'));
    const waiting = (await eventually(async () => (await health().catch(() => undefined))?.body.storage, 15_000, 100))!;
    t.equal(waiting.state, 'unavailable', 'started on a full disk without a reserve: /healthz says storage is unavailable');
    t.match(waiting.error, /No space left on device/, 'and why');
    t.equal((await fetch(`${base}/api/datapoints`)).status, 503, 'the API answers 503 meanwhile');
    await new Promise((r) => setTimeout(r, 3000));
    t.equal(third.child.exitCode, null, 'still running: a supervisor does not crash-loop it');
    await rm(join(mnt, 'filler'));
    await third.ready;
    t.equal((await health()).status, 200, 'started once there was room');
    const afterRestart = acked();
    await eventually(() => acked() > afterRestart + 1000, 20_000, 50);
    t.pass('devices are acknowledged by the restarted gateway');

    // Every reading a device got a PUBACK for is stored.
    for (const d of devices) d.stop();
    await eventually(() => devices.every((d) => d.inflight === 0), 10_000, 50);
    for (let n = 0; n < DEVICES; n++) {
      const res = await api(`/api/datapoints/meter${n}.energy/values?from=${Date.UTC(2025, 0, 1)}&limit=100000`);
      const stored = new Set(((await res.json()) as { values: Array<{ v: number }> }).values.map((p) => p.v));
      const lost = [...devices[n]!.acked].filter((v) => !stored.has(v));
      t.equal(lost.length, 0, `meter${n}: all ${devices[n]!.acked.size} acknowledged readings stored`, { lost: lost.slice(0, 5) });
    }
    third.child.kill('SIGTERM');
    t.equal((await third.exited).code, 0, 'graceful stop exits 0');
  },
);
