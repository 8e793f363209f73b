// Issue 18, no implicit trust: every websocket into Node-RED checks the login and the Origin,
// against a real gateway (its own users, sessions, tokens and upgrade dispatcher).
// Node-RED is a process-wide singleton and slow to start: one gateway for the whole file.
import t, { type Test } from 'tap';
import { WebSocket } from 'ws';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { ApiClient } from '../security/harness.js';

const ADMIN_PASSWORD = 'admin-secret-pw-1';
const SECRET = 'test-credential-secret-0123456789';

/** A flow with a websocket listener at /ws/feed (served as /flows-api/ws/feed): stores and echoes what it gets. */
const FEED_FLOW = [
  { id: 'ws.tab', type: 'tab', label: 'websocket feed' },
  { id: 'ws.listener', type: 'websocket-listener', path: '/ws/feed', wholemsg: 'false' },
  { id: 'ws.in', type: 'websocket in', z: 'ws.tab', server: 'ws.listener', client: '', wires: [['ws.store', 'ws.echo']] },
  { id: 'ws.store', type: 'outpost out', z: 'ws.tab', datapoint: 'test.ws.feed', mode: 'value', valueType: 'string', wires: [[]] },
  { id: 'ws.echo', type: 'websocket out', z: 'ws.tab', server: 'ws.listener', client: '', wires: [] },
];

type Outcome = { opened: WebSocket } | { status: number };

/** Tries a websocket upgrade: the open socket, or the HTTP status it was refused with (-1: dropped without one). */
function tryUpgrade(url: string, headers: Record<string, string>): Promise<Outcome> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
    ws.on('open', () => resolve({ opened: ws }));
    ws.on('error', () => resolve({ status: -1 }));
  });
}

/** Asserts a refusal with `status`; closes the socket if it opened after all. */
function refused(t: Test, outcome: Outcome, status: number, what: string): void {
  if ('opened' in outcome) {
    outcome.opened.close();
    t.fail(`${what}: opened, expected ${status}`);
    return;
  }
  t.equal(outcome.status, status, what);
}

/** Asserts the upgrade was accepted and returns the socket (closed at teardown). */
function accepted(t: Test, outcome: Outcome, what: string): WebSocket | undefined {
  if (!('opened' in outcome)) {
    t.fail(`${what}: refused with ${outcome.status}`);
    return undefined;
  }
  t.pass(what);
  t.teardown(() => outcome.opened.close());
  return outcome.opened;
}

t.test('Node-RED websockets through the gateway', async (t) => {
  const gw = await startTestGateway(t, {
    auth: { loopback: 'none', admin: { username: 'admin', password: ADMIN_PASSWORD } },
    flows: { enabled: true, credentialSecret: SECRET },
  });
  const base = gw.httpUrl;
  const wsBase = base.replace(/^http/, 'ws');
  const origin = base;
  const evil = 'http://evil.example';

  const admin = new ApiClient(base);
  t.equal((await admin.login('admin', ADMIN_PASSWORD)).status, 200, 'admin logs in');
  const addUser = await admin.request('POST', '/api/users', { username: 'vera', role: 'viewer', password: 'viewer-secret-pw-1' }, { origin });
  t.equal(addUser.status, 201, 'viewer added');
  const viewer = new ApiClient(base);
  t.equal((await viewer.login('vera', 'viewer-secret-pw-1')).status, 200, 'viewer logs in');
  const tokenRes = await admin.request('POST', '/api/tokens', { name: 'feed-device', role: 'operator' }, { origin });
  t.equal(tokenRes.status, 201, 'API token for a device');
  const { token } = (await tokenRes.json()) as { token: string };

  const deploy = await admin.request('POST', '/flows/flows', FEED_FLOW, { origin, 'node-red-deployment-type': 'full' });
  t.equal(deploy.status, 204, 'admin deploys the feed flow');
  await eventually(() => gw.logs.some((l) => l.component === 'node-red' && l.msg === 'Started flows'), 10_000);

  await t.test('the editor (HTTP) is admin-only', async (t) => {
    t.equal((await viewer.request('GET', '/flows/')).status, 403, 'viewer: editor page refused');
    t.equal((await viewer.request('GET', '/flows/flows')).status, 403, 'viewer: export refused');
    t.equal((await admin.request('GET', '/flows/flows')).status, 200, 'admin: export');
  });

  await t.test('a websocket node needs a login or token, from this origin', async (t) => {
    const feed = `${wsBase}/flows-api/ws/feed`;
    refused(t, await tryUpgrade(feed, {}), 401, 'no credentials');
    refused(t, await tryUpgrade(feed, { origin }), 401, 'no credentials, right Origin');
    refused(t, await tryUpgrade(feed, { authorization: 'Bearer opt_nope_000000000000000000000000000000000' }), 401, 'unknown bearer token');
    refused(t, await tryUpgrade(feed, { cookie: admin.cookie!, origin: evil }), 401, 'admin session, foreign Origin (cross-site websocket hijacking)');
    refused(t, await tryUpgrade(feed, { authorization: `Bearer ${token}`, origin: evil }), 401, 'valid token, foreign Origin');
    refused(t, await tryUpgrade(feed, { 'x-outpost-flows-token': 'forged' }), 401, 'a forged hand-over header is no login');

    const device = accepted(t, await tryUpgrade(feed, { authorization: `Bearer ${token}` }), 'device with an API token (no Origin)');
    if (device) {
      const echo = new Promise<string>((resolve) => device.once('message', (data) => resolve(String(data))));
      device.send('from-the-device');
      t.equal(await echo, 'from-the-device', 'the flow answers on the socket');
      const stored = await eventually(async () => (await gw.gateway.store.query('test.ws.feed')).find((p) => p.v === 'from-the-device'), 10_000);
      t.ok(stored, 'the flow got the message and stored it');
    }
    const page = accepted(t, await tryUpgrade(feed, { cookie: viewer.cookie!, origin }), 'viewer session from this origin');
    if (page) {
      const echo = new Promise<string>((resolve) => page.once('message', (data) => resolve(String(data))));
      page.send('from-a-page');
      t.equal(await echo, 'from-a-page', 'the flow answers the page');
    }
  });

  await t.test('the editor websocket (/flows/comms) is admin-only, from this origin', async (t) => {
    const comms = `${wsBase}/flows/comms`;
    refused(t, await tryUpgrade(comms, {}), 401, 'no credentials');
    refused(t, await tryUpgrade(comms, { cookie: viewer.cookie!, origin }), 403, 'viewer session');
    refused(t, await tryUpgrade(comms, { authorization: `Bearer ${token}` }), 403, 'operator token');
    refused(t, await tryUpgrade(comms, { cookie: admin.cookie!, origin: evil }), 401, 'admin session, foreign Origin');
    accepted(t, await tryUpgrade(comms, { cookie: admin.cookie!, origin }), 'admin session from this origin');
  });
});
