// Node-RED embedded in a real gateway (real bus, real LevelDB, real HTTP on loopback).
// Node-RED is a process-wide singleton and slow to start: this file starts it once and
// runs the scenarios in order against that one instance.
import { recordingLogger } from '../helpers/logs.js';
import t from 'tap';
import express from 'express';
import { createServer, type IncomingMessage } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { listen } from '../../runtime/http/server.js';
import { NodeRedService, DEFAULT_FLOWS_FILE, readFlowFile } from '../../flows/node-red.js';
import { FlowsConfigSchema } from '../../flows/config.js';
import type { FlowChangeEvent, FlowsUser } from '../../flows/editor-auth.js';
import { isOutpostError } from '../../core/errors.js';
import { tempDir } from '../helpers/teardown.js';

const SECRET = 'test-credential-secret-0123456789';

/** Stand-in for runtime/auth: the test names its user in a header. */
const USERS: Record<string, FlowsUser> = {
  'admin-cookie': { username: 'ada', role: 'admin' },
  'operator-cookie': { username: 'otto', role: 'operator' },
  'viewer-cookie': { username: 'vic', role: 'viewer' },
};
const authorize = async (req: IncomingMessage): Promise<FlowsUser | null> => USERS[String(req.headers['x-test-session'])] ?? null;
const as = (session: string, extra: Record<string, string> = {}) => ({ 'x-test-session': session, ...extra });

t.test('refuses to start without a credential secret, before touching Node-RED', async (t) => {
  const gw = await startTestGateway(t, { storage: { engine: 'memory' } });
  const app = express();
  const svc = new NodeRedService({
    app,
    server: createServer(app),
    bus: gw.gateway.bus,
    ingest: gw.gateway.ingest,
    registry: gw.gateway.registry,
    store: gw.gateway.store,
    topics: gw.gateway.topics,
    hostStatuses: () => [],
    log: recordingLogger().log,
    config: FlowsConfigSchema.parse({ enabled: true }),
    dataDir: gw.dataDir,
    authorize,
  });
  const err = await svc.start().then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(isOutpostError(err, 'CONFIG_INVALID'), 'CONFIG_INVALID');
  t.match((err as Error).message, /credentialSecret.*key it generates/s, 'says why: no default key');
  t.equal(svc.running, false);

  const short = new NodeRedService({
    ...(svc['deps' as never] as object),
    config: FlowsConfigSchema.parse({ enabled: true, credentialSecret: 'x'.repeat(16) }),
  } as never);
  t.equal(FlowsConfigSchema.safeParse({ enabled: true, credentialSecret: 'short' }).success, false, 'config schema refuses a short secret');
  t.ok(short);

  const disabled = new NodeRedService({ ...(svc['deps' as never] as object), config: FlowsConfigSchema.parse({}) } as never);
  await disabled.start();
  t.equal(disabled.running, false, 'disabled by default: nothing is loaded');
});

t.test('flow files are checked before they replace the stored flows', async (t) => {
  const dir = await tempDir(t, 'outpost-flowfile-');
  const bad = join(dir, 'bad.json');
  await writeFile(bad, '{"not": "an array"}');
  await t.rejects(readFlowFile(bad), { code: 'CONFIG_INVALID', message: /JSON array/ });
  await writeFile(bad, '[{"id": "a"}]');
  await t.rejects(readFlowFile(bad), { code: 'CONFIG_INVALID', message: /node \[0\]/ });
  await writeFile(bad, '[{"id": ');
  await t.rejects(readFlowFile(bad), { code: 'CONFIG_INVALID', message: /not JSON/ });
  await t.rejects(readFlowFile(join(dir, 'missing.json')), { code: 'CONFIG_INVALID', message: /cannot read/ });
  const shipped = await readFlowFile(DEFAULT_FLOWS_FILE);
  t.ok(shipped.some((n) => n.type === 'outpost in') && shipped.some((n) => n.type === 'outpost out'), 'the shipped default flows use the Outpost nodes');
});

t.test('Node-RED embedded in a running gateway', async (t) => {
  const gw = await startTestGateway(t, {});
  const { registry, ingest, store } = gw.gateway;
  for (const id of ['site.grid.power', 'site.load.power', 'site.pv.power']) {
    await registry.register({ id, adapter: 'meter', type: 'number', unit: 'W' });
  }
  // The gateway's own app does the same: JSON body parser in front of everything.
  const app = express();
  app.use(express.json({ limit: 1024 * 1024 }));
  const server = createServer(app);
  const port = await listen(server, '127.0.0.1', 0);
  const base = `http://127.0.0.1:${port}`;
  const { log, records: logs } = recordingLogger();
  const changes: FlowChangeEvent[] = [];
  const svc = new NodeRedService({
    app,
    server,
    bus: gw.gateway.bus,
    ingest,
    registry,
    store,
    topics: gw.gateway.topics,
    hostStatuses: () => gw.gateway.host?.statuses() ?? [],
    log,
    config: FlowsConfigSchema.parse({ enabled: true, credentialSecret: SECRET, flowFile: DEFAULT_FLOWS_FILE, logLevel: 'info' }),
    dataDir: gw.dataDir,
    authorize,
    authorizeUpgrade: authorize,
    onDeploy: (event) => changes.push(event),
  });
  t.teardown(async () => {
    await svc.stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  await svc.start();
  t.equal(svc.running, true);

  let clock = Date.now() - 60_000;
  const publish = (id: string, v: number) => ingest.accept('meter', id, { v, t: (clock += 10) });

  await t.test('the flows from the configured file (the shipped demo) run at start', async (t) => {
    await publish('site.load.power', 4000);
    await publish('site.pv.power', 1000);
    const share = await eventually(async () => (await store.query('site.pv.self_supply')).at(-1), 10_000);
    t.equal(share!.v, 25, 'derived datapoint stored: 1000 W PV of 4000 W load');
    const dp = registry.get('site.pv.self_supply')!;
    t.match(dp, { adapter: 'virtual', kind: 'sensor', type: 'number', unit: '%' }, 'registered like any datapoint');

    await publish('site.grid.power', 7000);
    const alarm = await eventually(async () => (await store.query('site.alarm.grid_import_high')).find((p) => p.v === true), 10_000);
    t.ok(alarm, 'alarm datapoint raised above 6 kW');
    t.ok(
      await eventually(() => logs.find((l) => l.component === 'node-red' && l.level === 40 && /grid import 7000 W is above/.test(String(l.msg)))),
      'and the alarm is in the gateway log (warn)',
    );
    await publish('site.grid.power', 5000);
    await eventually(async () => (await store.query('site.alarm.grid_import_high')).at(-1)?.v === false, 10_000);
    t.pass('alarm cleared below 5.5 kW');
  });

  await t.test('the editor and admin API require a login and are admin-only', async (t) => {
    for (const path of ['/flows/', '/flows/flows', '/flows/settings', '/flows/nodes']) {
      const res = await fetch(base + path);
      t.equal(res.status, 401, `GET ${path} without login`);
      t.match(await res.json(), { error: { code: 'NOT_AUTHENTICATED' } });
    }
    // Node-RED's own login cannot be used to get around ours.
    const token = await fetch(`${base}/flows/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'admin', password: 'admin' }),
    });
    t.equal(token.status, 401, 'Node-RED token endpoint is behind the same door');
    // A forged internal token header does not help either.
    const forged = await fetch(`${base}/flows/flows`, { headers: { 'x-outpost-flows-token': 'guess' } });
    t.equal(forged.status, 401);

    // Issue 18: no read-only editor for viewers and operators, as the gateway's HTTP guard has it.
    for (const session of ['viewer-cookie', 'operator-cookie']) {
      for (const path of ['/flows/', '/flows/flows', '/flows/settings']) {
        const res = await fetch(base + path, { headers: as(session) });
        t.equal(res.status, 403, `${session}: GET ${path} refused`);
        t.match(await res.json(), { error: { code: 'FORBIDDEN' } });
      }
    }
    const editor = await fetch(`${base}/flows/`, { headers: as('admin-cookie') });
    t.equal(editor.status, 200, 'an admin opens the editor');
    t.match(await editor.text(), /Outpost flows/);
    const redirect = await fetch(`${base}/flows`, { headers: as('admin-cookie'), redirect: 'manual' });
    t.equal(redirect.status, 301);
    t.equal(redirect.headers.get('location'), '/flows/');

    const settings = await (await fetch(`${base}/flows/settings`, { headers: as('admin-cookie') })).json();
    t.match(settings, { user: { username: 'ada', permissions: '*' } }, 'Node-RED sees the Outpost user');

    const flows = [{ id: 'x1', type: 'tab', label: 'x' }];
    for (const session of ['viewer-cookie', 'operator-cookie']) {
      const res = await fetch(`${base}/flows/flows`, {
        method: 'POST',
        headers: as(session, { 'content-type': 'application/json' }),
        body: JSON.stringify(flows),
      });
      t.equal(res.status, 403, `${session}: deploy refused`);
      t.match(await res.json(), { error: { code: 'FORBIDDEN' } });
    }
    const exported = await (await fetch(`${base}/flows/flows`, { headers: as('admin-cookie') })).json();
    t.ok(Array.isArray(exported) && exported.some((n: { id: string }) => n.id === 'outpost.demo.alarm'), 'deploys refused: the demo flows still run');
    t.same(changes, [], 'refused change requests are not reported as changes');
  });

  await t.test('the editor websocket needs an admin login too', async (t) => {
    const refused = (headers: Record<string, string> = {}) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/flows/comms`, { headers });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => reject(new Error('opened')));
        ws.on('error', () => resolve(-1));
      });
    t.equal(await refused(), 401, 'no login');
    t.equal(await refused(as('viewer-cookie')), 403, 'viewer');
    t.equal(await refused(as('operator-cookie')), 403, 'operator');
    const ws = new WebSocket(`ws://127.0.0.1:${port}/flows/comms`, { headers: as('admin-cookie') });
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => resolve());
      ws.on('error', reject);
    });
    t.pass('admin connects');
    ws.close();
  });

  await t.test('deploy through the admin API: derived datapoint, Catch, crash containment, export, credentials', async (t) => {
    const tab = 'api.tab';
    const flows = [
      { id: tab, type: 'tab', label: 'deployed through the API' },
      {
        id: 'api.in',
        type: 'outpost in',
        z: tab,
        datapoints: 'site.load.power, site.pv.power',
        wires: [['api.net', 'api.throws', 'api.rejects', 'api.badtype']],
      },
      {
        id: 'api.net',
        type: 'function',
        z: tab,
        name: 'net power',
        func: "const l = context.get('l') || {}; l[msg.topic] = msg.payload; context.set('l', l);\nif (l['site.load.power'] === undefined || l['site.pv.power'] === undefined) return null;\nreturn { payload: l['site.load.power'] - l['site.pv.power'], t: msg.t };",
        outputs: 1,
        wires: [['api.net.out']],
      },
      { id: 'api.net.out', type: 'outpost out', z: tab, datapoint: 'site.net.power', mode: 'value', valueType: 'number', unit: 'W', wires: [[]] },
      { id: 'api.throws', type: 'function', z: tab, name: 'throws', func: "throw new Error('bug in a flow');", outputs: 1, wires: [[]] },
      {
        id: 'api.rejects',
        type: 'function',
        z: tab,
        name: 'rejects',
        func: "Promise.reject(new Error('async bug in a flow'));\nreturn null;",
        outputs: 1,
        wires: [[]],
      },
      { id: 'api.badtype', type: 'function', z: tab, name: 'bad type', func: "return { payload: 'not a number' };", outputs: 1, wires: [['api.bad.out']] },
      { id: 'api.bad.out', type: 'outpost out', z: tab, datapoint: 'test.typed', mode: 'value', valueType: 'number', wires: [[]] },
      { id: 'api.catch', type: 'catch', z: tab, scope: ['api.bad.out'], uncaught: false, wires: [['api.code']] },
      { id: 'api.code', type: 'function', z: tab, func: 'return { payload: msg.outpostError.code };', outputs: 1, wires: [['api.code.out']] },
      { id: 'api.code.out', type: 'outpost out', z: tab, datapoint: 'test.caught', mode: 'value', valueType: 'string', wires: [[]] },
      // A config node with credentials: they must land encrypted with our secret.
      {
        id: 'api.broker',
        type: 'mqtt-broker',
        name: 'upstream',
        broker: '127.0.0.1',
        port: '1',
        clientid: '',
        autoConnect: false,
        credentials: { user: 'site-user', password: 'plaintext-password-42' },
      },
    ];
    const res = await fetch(`${base}/flows/flows`, {
      method: 'POST',
      headers: as('admin-cookie', { 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' }),
      body: JSON.stringify(flows),
    });
    t.equal(res.status, 204, 'admin deploy accepted');
    const change = await eventually(() => changes.find((c) => c.path === '/flows/flows'));
    t.same(
      change,
      { user: 'ada', role: 'admin', ok: true, status: 204, method: 'POST', path: '/flows/flows' },
      'onDeploy told who deployed, and that it worked',
    );
    const bad = await fetch(`${base}/flows/flows?x=1`, {
      method: 'POST',
      headers: as('admin-cookie', { 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' }),
      body: '{"flows": 42}',
    });
    t.ok(bad.status >= 400, `a malformed deploy is refused by Node-RED (${bad.status})`);
    const failed = await eventually(() => changes.find((c) => !c.ok));
    t.same(
      failed,
      { user: 'ada', role: 'admin', ok: false, status: bad.status, method: 'POST', path: '/flows/flows' },
      'onDeploy told of the failed attempt too',
    );
    t.ok(await eventually(() => logs.some((l) => l.audit === 'flows.set' && l.user === 'ada')), 'deploy audited with the Outpost user');
    await eventually(() => logs.filter((l) => l.msg === 'Started flows').length >= 2, 10_000);

    t.teardown(() => {
      if (process.env.DUMP)
        console.error(
          logs
            .filter((l) => (l.level as number) >= 30)
            .map((l) => JSON.stringify(l))
            .join('\n'),
        );
    });
    await publish('site.pv.power', 1500);
    await publish('site.load.power', 5000);
    const net = await eventually(async () => (await store.query('site.net.power')).find((p) => p.v === 3500), 10_000);
    t.ok(net, 'derived datapoint from the API-deployed flow stored');
    t.match(registry.get('site.net.power'), { adapter: 'virtual', type: 'number', unit: 'W' });

    const caught = await eventually(async () => (await store.query('test.caught')).at(-1), 10_000);
    t.equal(caught!.v, 'VALUE_TYPE', 'the refused write went to the Catch node with its code');

    await eventually(() => svc.containedErrors > 0, 10_000);
    t.ok(
      logs.some((l) => /escaped a Node-RED flow/.test(String(l.msg))),
      'the escaped async error is logged, the process lives on',
    );
    t.ok(
      logs.some((l) => l.component === 'node-red' && /bug in a flow/.test(String(l.msg))),
      'the throwing function node is reported',
    );

    // Ingestion goes on, and so does the flow, after both kinds of crash.
    await publish('site.load.power', 6000);
    await publish('site.load.power', 6500);
    t.ok(await eventually(async () => (await store.query('site.net.power')).find((p) => p.v === 5000), 10_000), 'derived value keeps coming');
    const loads = (await store.query('site.load.power')).map((p) => p.v);
    t.same(loads.slice(-3), [5000, 6000, 6500], 'every published value stored');

    const exported = (await (await fetch(`${base}/flows/flows`, { headers: as('admin-cookie') })).json()) as Array<{ id: string; credentials?: unknown }>;
    t.same(exported.map((n) => n.id).sort(), flows.map((n) => n.id).sort(), 'export (GET /flows/flows) returns the deployed flows');
    t.notOk(JSON.stringify(exported).includes('plaintext-password-42'), 'export carries no credential values');

    const credFile = await readFile(join(svc.userDir, 'flows_cred.json'), 'utf8');
    t.notOk(credFile.includes('plaintext-password-42'), 'credentials are not stored in clear');
    t.match(JSON.parse(credFile), { $: String }, 'credentials file is encrypted');
    const runtimeConfig = await readFile(join(svc.userDir, '.config.runtime.json'), 'utf8').catch(() => '{}');
    t.notOk(JSON.parse(runtimeConfig)._credentialSecret, 'no generated key stored beside them');
  });

  await t.test('stop closes the flows and unmounts; the gateway goes on', async (t) => {
    await svc.stop();
    t.equal(svc.running, false);
    const res = await fetch(`${base}/flows/flows`, { headers: as('admin-cookie') });
    t.equal(res.status, 404, 'nothing served once stopped');
    await publish('site.load.power', 100);
    await publish('site.pv.power', 50);
    await new Promise((r) => setTimeout(r, 100));
    t.notOk(
      (await store.query('site.net.power')).some((p) => p.v === 50),
      'flows no longer run',
    );
    t.equal((await store.query('site.load.power')).at(-1)?.v, 100, 'ingestion unaffected');
  });
});
