import t from 'tap';
import { writeFile } from 'node:fs/promises';
import mqtt from 'mqtt';
import { join } from 'node:path';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { spawnOutpost, processYamlHead } from '../helpers/process.js';
import { localApi } from '../helpers/local-api.js';
import { openSerial, ptyPair } from '../adapters/iridium/harness.js';
import { IridiumSimulator } from '../../adapters/iridium/simulator.js';
import { serialPortIo } from '../../adapters/iridium/at-transport.js';
import { MoCodec, type CodecDatapoint } from '../../adapters/iridium/codec.js';
import { moKind } from '../../adapters/iridium/mo-ack.js';
import { SatelliteDirectory, type SatelliteModem, type SatellitePriority, type SatelliteReading } from '../../runtime/sync/satellite.js';
import { sensors, startSync } from './helpers/sync.js';
import { OutpostError } from '../../core/errors.js';
import { tempDir } from '../helpers/teardown.js';

const T0 = Date.UTC(2025, 0, 1);
const SECRET = '8f1e2d3c4b5a69788796a5b4c3d2e1f0';
const TABLE = [
  { id: 'tank.level', decimals: 2 },
  { id: 'pump.setpoint', decimals: 1 },
];
const codec = new MoCodec({ datapoints: TABLE.map((d): CodecDatapoint => ({ ...d, type: 'number' })), timeResolutionMs: 1000 });
/** An HTTP primary nobody answers: the fallback takes over after afterMs. */
const DOWN_PRIMARY = { name: 'central', type: 'http', url: 'http://127.0.0.1:1/ingest', ackTimeoutMs: 300 };

/** A modem the test drives: its state, and what it was asked to send. */
class FakeModem implements SatelliteModem {
  state = 'idle';
  readonly maxMessageBytes = 340;
  readonly forwarding = false;
  readonly sent: Array<{ readings: SatelliteReading[]; priority: SatellitePriority }> = [];
  /** While set, sendPacked waits for `stop` (a session that does not end before the adapter stops). */
  hang = false;
  private stopped: ((err: Error) => void) | undefined;
  private readonly listeners = new Set<(state: string, detail?: string) => void>();
  private packed = new Map<Buffer, SatelliteReading[]>();
  carries = (): boolean => true;
  pack(readings: readonly SatelliteReading[]): { bytes: Buffer; count: number } {
    const bytes = Buffer.from(JSON.stringify(readings.map((r) => r.seq)));
    this.packed.set(bytes, [...readings]);
    return { bytes, count: readings.length };
  }
  creditsFor = (): number => 1;
  allows = (): boolean => true;
  async sendPacked(bytes: Buffer, priority: SatellitePriority): Promise<{ credits: number }> {
    this.sent.push({ readings: this.packed.get(bytes) ?? [], priority });
    if (this.hang) await new Promise((_resolve, reject) => (this.stopped = reject));
    return { credits: 1 };
  }
  /** The adapter stops: like the real one, it fails what it has not confirmed. */
  stop(): void {
    this.stopped?.(new OutpostError('ADAPTER_UNAVAILABLE', 'Iridium link stopped before the message was sent'));
  }
  encodeAck = (): Buffer => Buffer.from([3]);
  reportStorage = async (): Promise<void> => undefined;
  onState(listener: (state: string, detail?: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  setCommandSink = (): (() => void) => () => undefined;
  set(state: string, detail?: string): void {
    this.state = state;
    for (const l of this.listeners) l(state, detail);
  }
}

t.test('the satellite link forgets its last error once the modem is back', async (t) => {
  const gw = await startTestGateway(t, { datapoints: sensors(['tank.level']), storage: { sync: false } });
  const satellites = new SatelliteDirectory();
  const modem = new FakeModem();
  satellites.register('gw1', 'sat', modem);
  const { sync } = await startSync(
    t,
    gw,
    { pollMs: 20, datapointsIntervalMs: 0, links: [DOWN_PRIMARY, { name: 'sat', type: 'iridium', adapter: 'sat' }] },
    { satellites },
  );
  const sat = async () => (await sync.snapshot()).links.find((l) => l.name === 'sat')!;
  t.equal((await sat()).state, 'up');
  modem.set('no_signal', 'no satellite in view (+CSQ 0)');
  t.match(await sat(), { state: 'down', lastError: /no_signal/ });
  modem.set('idle');
  const back = await sat();
  t.equal(back.state, 'up');
  t.equal(back.lastError, undefined, 'no stale error on a link that is up again');
});

t.test('a fallback message under way when the gateway stops: after the restart its latest values are not paid again, its alarms are', async (t) => {
  const gw = await startTestGateway(t, { datapoints: sensors(['tank.level', 'tank.alarm']), storage: { sync: false } });
  const config = {
    pollMs: 20,
    datapointsIntervalMs: 0,
    fallback: { afterMs: 200, intervalMs: 100 },
    links: [DOWN_PRIMARY, { name: 'sat', type: 'iridium', adapter: 'sat' }],
  };
  await gw.gateway.ingest.acceptMany('test', [
    { id: 'tank.level', v: 1.5, t: T0 },
    { id: 'tank.alarm', v: 1, t: T0 },
  ]);
  const satellites = new SatelliteDirectory();
  const modem = new FakeModem();
  modem.hang = true;
  const unregister = satellites.register('gw1', 'sat', modem);
  const first = await startSync(t, gw, config, { satellites });
  await eventually(() => modem.sent.length === 1, 10_000);
  // The gateway stops with the session running (the adapter goes first and fails the send).
  unregister();
  modem.stop();
  await first.sync.stop();

  const again = new FakeModem();
  satellites.register('gw1', 'sat', again);
  await startSync(t, gw, config, { satellites });
  await eventually(() => again.sent.length >= 1, 10_000);
  await new Promise((r) => setTimeout(r, 300));
  t.same(
    again.sent.flatMap((m) => m.readings.map((r) => r.id)),
    ['tank.alarm'],
    'the alarm goes again; the unchanged latest value does not',
  );
});

t.test('Iridium, real process: SIGKILL during a satellite session; after the restart the same setpoint and latest value are not paid again', async (t) => {
  const dir = await tempDir(t, 'outpost-sat-kill-');
  const dataDir = join(dir, 'data');
  const { a, b } = await ptyPair(t);
  // A session takes 1.5 s here (real ones 10-60 s): long enough to kill the gateway in the middle of one.
  const sim = new IridiumSimulator(serialPortIo(await openSerial(t, b)), { echo: true, signal: 5, sessionDelayMs: 1500 });
  t.teardown(() => sim.close());
  const config = join(dir, 'outpost.yaml');
  await writeFile(
    config,
    `${processYamlHead({ id: 'buoy-9', dataDir })}datapoints:
  - { id: tank.level, kind: sensor, type: number }
  - { id: pump.setpoint, kind: actuator, type: number, min: 0, max: 100 }
adapters:
  - id: sat
    type: iridium
    port: ${a}
    forward: false
    datapoints: [{ id: tank.level, decimals: 2 }, { id: pump.setpoint, decimals: 1 }]
    mt: { secret: '${SECRET}' }
    budget: { dailyCredits: 50, alarmReserve: 3 }
    timing: { atMs: 500, startupMs: 3000, startupProbeMs: 200, sessionMs: 5000, sbdwbMs: 1000, sbdrbOkMs: 200, backoffInitialMs: 50, backoffMaxMs: 200 }
sync:
  enabled: true
  pollMs: 20
  datapointsIntervalMs: 0
  backoff: { initialMs: 50, maxMs: 200 }
  fallback: { afterMs: 1500, intervalMs: 200 }
  links:
    - { name: central, type: http, url: 'http://127.0.0.1:1/ingest', ackTimeoutMs: 300 }
    - { name: sat, type: iridium, adapter: sat, messageBytes: 100 }
`,
  );
  const api = localApi(dataDir);
  const readings = () => sim.received.filter((m) => moKind(m.bytes) === 'readings').flatMap((m) => codec.decode(m.bytes).readings);
  const sessions = () => sim.commands.filter((c) => c.toUpperCase().startsWith('AT+SBDIX')).length;

  const first = spawnOutpost(['start', '-c', config]);
  t.teardown(() => first.child.kill('SIGKILL'));
  await first.ready;
  const set = await api('/api/datapoints/pump.setpoint/setpoint', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ v: 42 }),
  });
  t.equal(set.status, 200, 'setpoint applied');
  const port = Number(/MQTT on 127\.0\.0\.1:(\d+)/.exec(first.stdout())![1]);
  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  await device.publishAsync('outpost/dp/tank.level/value', JSON.stringify({ v: 1.25, t: Date.now() }), { qos: 1 });
  await device.endAsync();
  // Both are in before the fallback starts (afterMs), so they go in one message.
  await eventually(() => sessions() === 1, 20_000);
  first.child.kill('SIGKILL');
  await first.exited;
  // The modem finishes the session it started on its own: the message went out, and was billed.
  await eventually(() => readings().length === 2, 5000);
  t.same(
    readings()
      .map((r) => r.id)
      .sort(),
    ['pump.setpoint', 'tank.level'],
    'the setpoint and the latest value went out in the session the kill interrupted',
  );

  sim.sessionDelayMs = 0;
  const second = spawnOutpost(['start', '-c', config]);
  t.teardown(() => second.child.kill('SIGKILL'));
  await second.ready;
  await eventually(async () => ((await (await api('/api/sync')).json()) as { mode: string }).mode === 'fallback', 20_000);
  // Several fallback intervals with the modem up and nothing new.
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(readings().length, 2, 'the unchanged setpoint and latest value are not sent (and paid) again');
  const port2 = Number(/MQTT on 127\.0\.0\.1:(\d+)/.exec(second.stdout())![1]);
  const device2 = await mqtt.connectAsync(`mqtt://127.0.0.1:${port2}`, { reconnectPeriod: 0 });
  await device2.publishAsync('outpost/dp/tank.level/value', JSON.stringify({ v: 2.5, t: Date.now() }), { qos: 1 });
  await device2.endAsync();
  await eventually(() => readings().length === 3, 20_000);
  t.match(readings()[2], { id: 'tank.level', v: 2.5 }, 'a new value goes out as usual');
  second.child.kill('SIGTERM');
  await second.exited;
});
