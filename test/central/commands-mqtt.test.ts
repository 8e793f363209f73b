/**
 * Commands from central to a real gateway process over MQTT (issue 26 item 2): an operator's
 * setpoint through `POST /api/commands`, published signed on `sites/<gw>/cmd/setpoint` by
 * central's command link, applied by `outpost start`, its ack on `sites/<gw>/ack` taken by
 * central's shared subscription: state `applied`. A value out of range: `refused` with the
 * gateway's code. The same command sent again (a resend): answered from the gateway's
 * requestId memory, applied once. A command left `sent` without an ack is resent by the
 * router with the same requestId. A viewer and a read-only API token cannot send.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eventually } from '../helpers/gateway.js';
import { localApi } from '../helpers/local-api.js';
import { processYamlHead, spawnOutpost, type OutpostProcess } from '../helpers/process.js';
import { ApiClient } from '../security/harness.js';
import { tempDir } from '../helpers/teardown.js';
import { Mosquitto } from '../sync/helpers/mosquitto.js';
import { API_TOKEN, type JsonBody } from './helpers.js';
import { OPERATOR_PASSWORD, VIEWER_PASSWORD, startWebCentral } from './web-helpers.js';

const GW = 'site-cmd';
const SECRET = 'central-site-cmd-link-secret-4e1b';
const DP = 'plant.boiler.setpoint';

function upstreamApplied(proc: OutpostProcess): number {
  return proc
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === 'setpoint applied' && String(l.source).startsWith('upstream:')).length;
}

t.test('commands over MQTT: applied, refused with the reason, a copy applied once, resent when unanswered', async (t) => {
  const broker = await Mosquitto.create(t);
  const central = await startWebCentral(t, {
    ingest: { mqtt: { url: broker.url, clientId: 'central-cmd', reconnectMs: 200 } },
    commands: { tickSeconds: 1, resendAfterSeconds: 2 },
    gateways: [{ id: GW, tags: ['boilers'], auth: { type: 'hmac', secret: SECRET }, downlink: { links: ['mqtt'] } }],
  });

  const dir = await tempDir(t, 'outpost-cmd-site-');
  await writeFile(join(dir, 'downlink.secret'), `${SECRET}\n`, { mode: 0o600 });
  const file = join(dir, 'outpost.yaml');
  await writeFile(
    file,
    `${processYamlHead({ id: GW, dataDir: join(dir, 'data') })}datapoints:
  - { id: ${DP}, kind: actuator, type: number, unit: degC, min: 30, max: 80 }
sync:
  enabled: true
  pollMs: 50
  datapointsIntervalMs: 0
  links:
    - name: central
      type: mqtt
      url: ${broker.url}
      reconnectMs: 100
      downlinkAuth: { secretFile: ${join(dir, 'downlink.secret')} }
`,
  );
  const proc = spawnOutpost(['start', '-c', file]);
  t.teardown(() => proc.child.kill('SIGKILL'));
  await proc.ready;
  const api = localApi(join(dir, 'data'));
  const value = async (): Promise<number | undefined> => ((await (await api(`/api/datapoints/${DP}`)).json()) as JsonBody).latest?.v;
  // Central sees it online from its retained MQTT status.
  await eventually(async () => (await central.get(`/api/gateways/${GW}`)).body?.status?.state === 'online', 20_000, 100);

  const operator = new ApiClient(central.url);
  t.equal((await operator.login('otto', OPERATOR_PASSWORD)).status, 200);
  const send = async (body: unknown): Promise<{ status: number; body: JsonBody }> => {
    const res = await operator.request('POST', '/api/commands', body);
    return { status: res.status, body: await res.json() };
  };
  const stateOf = async (id: string): Promise<JsonBody> => (await central.get(`/api/commands/${id}`)).body;

  // ---- applied ----
  const sent = await send({ target: { gateway: GW }, type: 'setpoint', body: { id: DP, v: 55 } });
  t.equal(sent.status, 202, 'queued');
  const id = sent.body.items[0].id as string;
  t.match(id, new RegExp(`^${GW}:\\d+$`));
  const applied = await eventually(
    async () => {
      const c = await stateOf(id);
      return c.state === 'applied' ? c : undefined;
    },
    20_000,
    100,
  );
  t.equal(applied.sends[0].via, 'mqtt', 'sent over MQTT');
  t.equal(applied.ack.via, 'mqtt', 'acked over MQTT');
  t.equal(applied.by, 'user otto', 'who sent it');
  await eventually(async () => (await value()) === 55, 10_000, 50);
  t.equal(await value(), 55, 'the gateway holds the value');
  t.equal(upstreamApplied(proc), 1, 'applied once');

  // ---- the same command again (what a resend does): answered, not applied again ----
  const c = await central.store!.command(GW, { cursor: Number(id.split(':')[1]) });
  await api(`/api/datapoints/${DP}/setpoint`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ v: 40 }) });
  await central.commands!.mqtt!.send(GW, c!, SECRET, undefined);
  await central.commands!.mqtt!.send(GW, c!, SECRET, undefined);
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(upstreamApplied(proc), 1, 'two more copies of the requestId: still applied once');
  t.equal(await value(), 40, 'the local change since is not undone');
  t.equal((await stateOf(id)).state, 'applied');

  // ---- refused with the gateway's reason ----
  const high = await send({ target: { tag: 'boilers' }, type: 'setpoint', body: { id: DP, v: 500 } });
  t.equal(high.status, 202);
  t.match(high.body.group, /^g-/, 'a tag: one group');
  const refused = await eventually(
    async () => {
      const r = await stateOf(high.body.items[0].id);
      return r.state === 'refused' ? r : undefined;
    },
    20_000,
    100,
  );
  t.equal(refused.ack.error.code, 'SETPOINT_OUT_OF_RANGE', "the gateway's code");
  t.match(refused.ack.error.message, /80/, 'and its message');
  t.equal(await value(), 40, 'nothing applied');

  // ---- resend: a command left sent without an ack goes again, same requestId ----
  const queued = await central.store!.enqueueCommand(GW, { requestId: 'resend-1', type: 'setpoint', id: DP, v: 66 });
  await central.store!.markCommandSent(GW, queued.cursor, { at: Date.now() - 60_000, via: 'mqtt' });
  const resent = await eventually(
    async () => {
      const r = await stateOf(`${GW}:${queued.cursor}`);
      return r.state === 'applied' ? r : undefined;
    },
    20_000,
    100,
  );
  t.equal(resent.sends.length, 2, 'sent again by the router');
  t.equal(resent.requestId, 'resend-1', 'with the same requestId');
  t.equal(await value(), 66);

  // ---- lists, and who may send ----
  const list = (await central.get(`/api/commands?gateway=${GW}&state=applied`)).body;
  t.same(list.items.map((i: JsonBody) => i.requestId).sort(), ['resend-1', applied.requestId].sort(), 'GET /api/commands?gateway=&state=');
  const viewer = new ApiClient(central.url);
  await viewer.login('vera', VIEWER_PASSWORD);
  t.equal((await viewer.request('POST', '/api/commands', { target: { gateway: GW }, type: 'setpoint', body: { id: DP, v: 50 } })).status, 403, 'a viewer: 403');
  const token = await fetch(`${central.url}/api/commands`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ target: { gateway: GW }, type: 'setpoint', body: { id: DP, v: 50 } }),
  });
  t.equal(token.status, 403, 'a read-only API token: 403');
  const bad = await send({ target: { gateway: GW }, type: 'reboot', body: {} });
  t.equal(bad.status, 400, 'an unknown type: 400');
  t.equal(bad.body.error.code, 'COMMAND_INVALID');
  t.equal((await send({ target: { gateway: 'nobody' }, type: 'setpoint', body: { id: DP, v: 50 } })).status, 404, 'an unknown gateway: 404');
  const noCsrf = await operator.request(
    'POST',
    '/api/commands',
    { target: { gateway: GW }, type: 'setpoint', body: { id: DP, v: 50 } },
    { 'x-csrf-token': '' },
  );
  t.equal(noCsrf.status, 403, 'without the CSRF token: 403');
  const audit = (central.web!.audit as unknown as { query(q: { limit: number; action?: string }): { items: Array<{ outcome?: string }> } }).query({
    limit: 100,
    action: 'command.send',
  });
  t.ok(audit.items.length >= 3, `command.send audited (${audit.items.length} entries, refusals too)`);
});
