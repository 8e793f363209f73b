import t from 'tap';
import mqtt from 'mqtt';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnOutpost, type OutpostProcess, processYamlHead } from '../helpers/process.js';
import { eventually } from '../helpers/gateway.js';
import { localApi } from '../helpers/local-api.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { TcpGate } from './helpers/tcp-gate.js';
import { SparkplugHost, type HostMessage } from './helpers/sparkplug-host.js';
import { tempDir } from '../helpers/teardown.js';

const GROUP = 'plants';
const GW = 'gw1';

/** The real process with a Sparkplug link through `gatePort` (a gate the test can shut). */
async function writeConfig(dir: string, gatePort: number): Promise<string> {
  const file = join(dir, 'outpost.yaml');
  await writeFile(
    file,
    `${processYamlHead({ id: GW, dataDir: join(dir, 'data') })}sync:
  enabled: true
  pollMs: 50
  datapointsIntervalMs: 0
  backoff: { initialMs: 100, maxMs: 400 }
  live: { thresholdRecords: 20, intervalMs: 300 }
  links:
    - name: scada
      type: mqtt
      url: mqtt://127.0.0.1:${gatePort}
      reconnectMs: 100
      batchRecords: 4
      format: sparkplug
      sparkplug: { groupId: ${GROUP} }
`,
  );
  return file;
}

function mqttPortOf(stdout: string): number {
  const m = /MQTT on 127\.0\.0\.1:(\d+)/.exec(stdout);
  if (!m) throw new Error(`no MQTT port in: ${stdout}`);
  return Number(m[1]);
}

const since = (host: SparkplugHost, index: number): HostMessage[] => host.messages.slice(index);
const birthsOf = (list: HostMessage[], device: string): HostMessage[] => list.filter((m) => m.kind === 'DBIRTH' && m.device === device);
const metricIn = (m: HostMessage | undefined, name: string) => m?.p.metrics?.find((x) => x.name === name);

t.test('Sparkplug B 3.0 against a host emulation: real process, outage, SIGKILL and restart, rebirth', async (t) => {
  const broker = await Mosquitto.create(t);
  const gate = await TcpGate.create(t, broker.port);
  const host = await SparkplugHost.connect(t, broker.url, GROUP, GW);
  const dir = await tempDir(t, 'outpost-spb-');
  const dataDir = join(dir, 'data');
  const file = await writeConfig(dir, gate.port);
  const api = localApi(dataDir);
  const syncState = async () => (await (await api('/api/sync')).json()) as { backlogRecords: number; links: Array<{ state: string }> };

  const start = async (): Promise<{ proc: OutpostProcess; publish: (id: string, v: unknown, at: number) => Promise<unknown> }> => {
    const proc = spawnOutpost(['start', '-c', file]);
    t.teardown(() => proc.child.kill('SIGKILL'));
    await proc.ready;
    const local = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPortOf(proc.stdout())}`, { reconnectPeriod: 0 });
    t.teardown(() => local.endAsync(true));
    return { proc, publish: (id, v, at) => local.publishAsync(`outpost/dp/${id}/value`, JSON.stringify({ v, t: at }), { qos: 1 }) };
  };
  let clock = Date.now() - 3_600_000;
  const tick = (): number => (clock += 1000);

  // 1. A fresh gateway: NBIRTH with bdSeq 0, births and data at QoS 0.
  let { proc, publish } = await start();
  await eventually(() => host.births.length >= 1, 10_000);
  t.equal(host.births[0], 0, 'fresh data dir: bdSeq 0');
  await publish('plant.m1.power', 1.5, tick());
  await publish('plant.pump.on', true, tick());
  await publish('yard.temp', 12, tick());
  await eventually(() => host.valueOf('yard', 'temp')?.v === 12, 10_000);
  const kinds = host.messages.filter((m) => m.kind !== 'NDEATH');
  t.same([...new Set(kinds.map((m) => m.qos))], [0], 'NBIRTH, DBIRTH, DDATA at QoS 0 ([tck-id-payloads-nbirth-qos], [-dbirth-qos], [-ddata-qos])');

  // 2. The broker becomes unreachable: the will arrives; readings pile up, with a new node metric and a new device.
  await gate.close();
  await eventually(() => host.deaths.length >= 1, 10_000);
  t.same(host.deaths[0], { bdSeq: 0, qos: 1 }, 'NDEATH will at QoS 1 with the bdSeq of the session');
  await publish('uptime', 3600, tick());
  await publish('tank.level', 0.5, tick());
  const outage: number[] = [];
  for (let i = 0; i < 40; i++) {
    const at = tick();
    outage.push(at);
    await publish('plant.m1.power', 100 + i, at);
    await publish('yard.temp', 20 + i, tick());
  }
  const lastPower = { t: outage.at(-1)!, v: 139 };
  // Reconnect attempts fail meanwhile (refused at TCP, every 100 ms): none may use up a bdSeq.
  await eventually(async () => (await syncState()).links[0]!.state !== 'up');
  await new Promise((r) => setTimeout(r, 1500));
  const beforeReconnect = host.messages.length;
  const birthsBefore = host.births.length;
  await gate.open();
  await eventually(() => host.births.length > birthsBefore, 10_000);
  t.equal(host.births[birthsBefore], 1, 'next session: bdSeq 1, failed connect attempts used none');
  await eventually(() => outage.every((at) => host.readings.some((r) => r.device === 'plant' && r.metric === 'm1/power' && r.t === at)), 15_000);
  const reborn = since(host, beforeReconnect);
  t.match(
    metricIn(birthsOf(reborn, 'plant')[0], 'm1/power'),
    { value: lastPower.v },
    'the DBIRTH after the outage carries the current value, not the one before it',
  );
  t.equal(Number(metricIn(birthsOf(reborn, 'plant')[0], 'm1/power')?.timestamp), lastPower.t);
  const replayed = host.readings.filter((r) => r.device === 'plant' && r.metric === 'm1/power' && outage.includes(r.t) && r.t < lastPower.t);
  t.ok(replayed.length >= outage.length - 1, 'the backlog is replayed');
  t.same(
    replayed.filter((r) => !r.historical).map((r) => r.t),
    [],
    'replayed backlog carries is_historical',
  );
  t.same(host.valueOf('plant', 'm1/power'), lastPower, 'the host shows the latest value, not the replayed ones');
  t.same(host.sideChannel, [], 'nothing outside spBv1.0: latest-first data went as DDATA, not JSON on sites/<gw>/live');

  // 3. SIGKILL once everything is upstream; the restarted gateway continues the bdSeq and re-announces every device.
  await eventually(async () => (await syncState()).backlogRecords === 0, 15_000);
  const known = new Set(reborn.filter((m) => m.kind === 'DBIRTH').map((m) => m.device!));
  t.ok(
    ['plant', 'yard', 'tank'].every((d) => known.has(d)),
    `devices born after the outage: ${[...known].join(', ')}`,
  );
  proc.child.kill('SIGKILL');
  await proc.exited;
  await eventually(() => host.deaths.length >= 2, 10_000);
  t.same(host.deaths[1], { bdSeq: 1, qos: 1 }, 'the killed session’s will names its bdSeq');
  const persisted = await readFile(join(dataDir, 'sync', 'sparkplug-scada.json'), 'utf8').then(JSON.parse, (err: Error) => err.message);
  t.same(persisted, { bdSeq: 1 }, 'last bdSeq persisted under <dataDir>/sync');
  // A host left a retained rebirth request behind: stale, the restarted node must not answer it.
  await host.requestRebirth(true);
  const beforeRestart = host.messages.length;
  const birthsBeforeRestart = host.births.length;
  ({ proc, publish } = await start());
  await eventually(() => host.births.length > birthsBeforeRestart, 10_000);
  t.equal(host.births[birthsBeforeRestart], 2, 'after kill -9 the bdSeq continues (2), not 0');
  await eventually(() => [...known].every((d) => birthsOf(since(host, beforeRestart), d).length >= 1), 10_000).catch(() =>
    t.fail(`not every device born again after the restart: ${[...known].filter((d) => birthsOf(since(host, beforeRestart), d).length === 0).join(', ')}`),
  );
  await new Promise((r) => setTimeout(r, 1000));
  await host.clearRetained();
  const restarted = since(host, beforeRestart);
  t.equal(restarted.filter((m) => m.kind === 'NBIRTH').length, 1, 'one NBIRTH after the restart: a retained NCMD is not obeyed');
  t.equal(metricIn(birthsOf(restarted, 'tank')[0], 'level')?.value, 0.5, 'a device without new readings is born again after a restart, with its current value');
  t.equal(metricIn(birthsOf(restarted, 'yard')[0], 'temp')?.value, 59, 'DBIRTH with the current value');
  t.equal(
    metricIn(
      restarted.find((m) => m.kind === 'NBIRTH'),
      'uptime',
    )?.value,
    3600,
    'node metrics in the NBIRTH with their current value',
  );

  // 4. Rebirth request: exactly one NBIRTH and one DBIRTH per device, same bdSeq.
  const beforeRebirth = host.messages.length;
  await host.requestRebirth();
  await eventually(() => since(host, beforeRebirth).some((m) => m.kind === 'NBIRTH'), 10_000);
  await new Promise((r) => setTimeout(r, 1000));
  const rebirth = since(host, beforeRebirth);
  t.equal(rebirth.filter((m) => m.kind === 'NBIRTH').length, 1, 'one NBIRTH');
  t.same(
    [...known].filter((d) => birthsOf(rebirth, d).length !== 1),
    [],
    'one DBIRTH per device',
  );
  t.equal(host.births.at(-1), 2, 'a rebirth keeps the session’s bdSeq');

  // 5. Enough messages in one session that seq wraps 255 → 0.
  const beforeWrap = host.messages.length;
  for (let i = 0; i < 600; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, j) => publish(j % 2 ? 'plant.m1.power' : 'yard.temp', i + j, tick())));
  }
  await eventually(async () => (await syncState()).backlogRecords === 0, 20_000);
  await eventually(() => host.valueOf('plant', 'm1/power')?.v === 599, 10_000);
  const seqs = since(host, beforeWrap).map((m) => Number(m.p.seq));
  t.ok(seqs.length > 256 && seqs.includes(0), `seq wrapped within the session (${seqs.length} messages)`);

  // 6. A clean stop publishes NDEATH with the session's bdSeq.
  const deathsBeforeStop = host.deaths.length;
  proc.child.kill('SIGTERM');
  t.equal((await proc.exited).code, 0);
  await eventually(() => host.deaths.length > deathsBeforeStop, 10_000);
  t.same(host.deaths[deathsBeforeStop], { bdSeq: host.births.at(-1), qos: 1 }, 'NDEATH of the clean stop names the session’s bdSeq');
  t.same(host.violations, [], 'the host saw no breach of the sequence and birth/death rules');
});
