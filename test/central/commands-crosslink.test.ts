/**
 * One requestId across links (issue 26 item 2, "no command applied twice across retries or
 * links"): a real gateway process with an MQTT link (signed commands) and an HTTP link polling
 * central's downlink. A command the poll delivered and the gateway applied, then published by
 * central over MQTT with the same requestId, is answered from the gateway's memory, not applied
 * again — also after the gateway process was restarted in between (one durable requestId memory
 * for all links, runtime/sync/command-memory.ts); a command sent over MQTT and served by the
 * poll at the same time is applied once.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import mqtt from 'mqtt';
import { join } from 'node:path';
import { eventually } from '../helpers/gateway.js';
import { localApi } from '../helpers/local-api.js';
import { processYamlHead, spawnOutpost, type OutpostProcess } from '../helpers/process.js';
import { tempDir } from '../helpers/teardown.js';
import { Mosquitto } from '../sync/helpers/mosquitto.js';
import { startTestCentral, type JsonBody } from './helpers.js';

const GW = 'site-x';
const SECRET = 'central-site-x-link-secret-9c2d7e';
const DP = 'plant.valve.setpoint';

function upstreamApplied(proc: OutpostProcess): Array<Record<string, unknown>> {
  return proc
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === 'setpoint applied' && String(l.source).startsWith('upstream:'));
}

t.test('a command over the HTTP poll and over MQTT, same requestId: applied once', async (t) => {
  const broker = await Mosquitto.create(t);
  const central = await startTestCentral(t, {
    ingest: { mqtt: { url: broker.url, clientId: 'central-x', reconnectMs: 200 } },
    // The router stays out of it (an hour between ticks): the test decides which link carries what.
    commands: { tickSeconds: 3600 },
    gateways: [{ id: GW, auth: { type: 'hmac', secret: SECRET }, downlink: { links: ['http', 'mqtt'] } }],
  });
  const dir = await tempDir(t, 'outpost-cmd-x-');
  await writeFile(join(dir, 'link.secret'), `${SECRET}\n`, { mode: 0o600 });
  const file = join(dir, 'outpost.yaml');
  await writeFile(
    file,
    `${processYamlHead({ id: GW, dataDir: join(dir, 'data') })}datapoints:
  - { id: ${DP}, kind: actuator, type: number, min: 0, max: 100 }
sync:
  enabled: true
  pollMs: 50
  datapointsIntervalMs: 0
  links:
    - name: up
      type: http
      url: ${central.url}/api/ingest/batch
      auth: { type: hmac, secretFile: ${join(dir, 'link.secret')} }
      downlink: { url: ${central.url}/api/ingest, intervalMs: 100, maxBackoffMs: 500 }
    - name: mq
      type: mqtt
      url: ${broker.url}
      reconnectMs: 100
      downlinkAuth: { secretFile: ${join(dir, 'link.secret')} }
`,
  );
  const api = localApi(join(dir, 'data'));
  const start = async (): Promise<OutpostProcess> => {
    const started = spawnOutpost(['start', '-c', file]);
    t.teardown(() => started.child.kill('SIGKILL'));
    await started.ready;
    await eventually(
      async () => {
        const s = (await (await api('/api/sync')).json()) as JsonBody;
        return s.links?.length === 2 && s.links.every((l: JsonBody) => l.state === 'up');
      },
      20_000,
      100,
    );
    return started;
  };
  let proc = await start();
  // Every ack the gateway publishes (`sites/<gw>/ack`), to see the MQTT copy answered.
  const watcher = await mqtt.connectAsync(broker.url, { clientId: 'ack-watcher' });
  t.teardown(() => watcher.endAsync());
  const acks: JsonBody[] = [];
  watcher.on('message', (_topic, payload) => acks.push(JSON.parse(payload.toString()) as JsonBody));
  await watcher.subscribeAsync(`sites/${GW}/ack`, { qos: 1 });
  await eventually(() => central.commands!.mqtt!.connected, 10_000, 50);
  const store = central.store!;

  // ---- the poll first, then the same command over MQTT ----
  const a = await store.enqueueCommand(GW, { requestId: 'x-1', type: 'setpoint', id: DP, v: 11 });
  await eventually(async () => (await store.command(GW, { cursor: a.cursor }))?.state === 'applied', 20_000, 50);
  t.equal(upstreamApplied(proc).length, 1, 'applied once, from the poll');
  // The gateway restarts in between: what it answered over the poll must still be known to MQTT.
  proc.child.kill('SIGTERM');
  t.match(await proc.exited, { code: 0 }, 'the gateway stopped cleanly');
  const memory = JSON.parse(await readFile(join(dir, 'data', 'sync', 'commands.json'), 'utf8')) as { answered: Array<[string, unknown]> };
  t.ok(
    memory.answered.some(([rid]) => rid === 'x-1'),
    'x-1 is in the one durable memory of all links',
  );
  proc = await start();
  await eventually(() => central.commands!.mqtt!.connected, 10_000, 50);
  await central.commands!.mqtt!.send(GW, (await store.command(GW, { cursor: a.cursor }))!, SECRET, undefined);
  await eventually(() => acks.some((k) => k.requestId === 'x-1'), 15_000, 50);
  t.match(
    acks.find((k) => k.requestId === 'x-1'),
    { requestId: 'x-1', ok: true },
    'the MQTT copy after the restart is acked like the first time',
  );
  t.equal(upstreamApplied(proc).length, 0, 'the MQTT copy of x-1 is answered from memory, not applied again after the restart');
  const settled = await store.command(GW, { cursor: a.cursor });
  t.equal(settled?.state, 'applied');
  t.same(
    settled?.sends?.map((s) => s.via),
    ['http'],
    'served by the poll (the MQTT copy was sent by hand)',
  );

  // ---- both links at once ----
  const b = await store.enqueueCommand(GW, { requestId: 'x-2', type: 'setpoint', id: DP, v: 22 });
  await central.commands!.mqtt!.send(GW, b, SECRET, undefined);
  await eventually(async () => (await store.command(GW, { cursor: b.cursor }))?.state === 'applied', 20_000, 50);
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(upstreamApplied(proc).length, 1, 'x-2 applied once, whichever link brought it first');
  const v = ((await (await api(`/api/datapoints/${DP}`)).json()) as JsonBody).latest?.v;
  t.equal(v, 22);
});
