import t from 'tap';
import mqtt from 'mqtt';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { TcpGate } from './helpers/tcp-gate.js';
import { GATEWAY_ID, sensors, startSync } from './helpers/sync.js';

const fast = { pollMs: 20, backoff: { initialMs: 50, maxMs: 300 }, datapointsIntervalMs: 0 };

interface StatusMessage {
  state: 'online' | 'offline';
  session?: number;
  since?: number;
}

// Central keeps the status of the newest session (central/README.md "Status order"): a will
// and the next online status may be committed in either order by two receivers, so each must
// say which connection it belongs to.
t.test('the will and the online status name their session; each reconnect is a newer session', async (t) => {
  const broker = await Mosquitto.create(t);
  const gate = await TcpGate.create(t, broker.port);
  const watcher = await mqtt.connectAsync(broker.url, { clientId: 'status-watcher' });
  t.teardown(() => watcher.endAsync(true));
  const seen: StatusMessage[] = [];
  watcher.on('message', (_topic, payload) => seen.push(JSON.parse(payload.toString()) as StatusMessage));
  await watcher.subscribeAsync(`sites/${GATEWAY_ID}/status`, { qos: 1 });

  const gw = await startTestGateway(t, { datapoints: sensors(['a.x']), storage: { sync: false } });
  const { sync } = await startSync(t, gw, { ...fast, links: [{ name: 'central', type: 'mqtt', url: `mqtt://127.0.0.1:${gate.port}`, reconnectMs: 100 }] });
  const first = (await eventually(() => seen.find((s) => s.state === 'online')))!;
  t.type(first.session, 'number', 'the online status names its session');

  // The connection drops without a DISCONNECT: the broker publishes the will of that session.
  await gate.close();
  const will = (await eventually(() => seen.find((s) => s.state === 'offline'), 10_000))!;
  t.equal(will.session, first.session, 'the will names the session it belonged to');
  await gate.open();
  const second = (await eventually(() => seen.filter((s) => s.state === 'online')[1], 10_000))!;
  t.ok((second.session ?? 0) > (first.session ?? 0), `a reconnect is a newer session (${first.session} → ${second.session})`);

  // A clean stop says offline for the current session itself.
  await sync.stop();
  const stopped = (await eventually(() => seen.filter((s) => s.state === 'offline')[1], 10_000))!;
  t.equal(stopped.session, second.session, 'the clean stop names the current session');
});
