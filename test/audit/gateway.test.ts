import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { ApiClient, ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';
import { eventually } from '../helpers/gateway.js';
import { hashPassword } from '../../runtime/auth/passwords.js';
import type { AuditEntry } from '../../runtime/audit/entry.js';

const MQTT_PASSWORD = 'panel-mqtt-password-1';
const ALICE_PASSWORD = 'alice-password-1';
const ALICE_NEW_PASSWORD = 'alice-password-2-new';

async function auditFiles(dataDir: string): Promise<string> {
  const dir = join(dataDir, 'audit');
  return (await Promise.all((await readdir(dir)).map((f) => readFile(join(dir, f), 'utf8')))).join('');
}

t.test('every command is in the audit trail with who gave it, what, and how it ended', async (t) => {
  const site = await startSecureSite(t, {
    datapoints: [{ id: 'site.mode', kind: 'actuator', type: 'string', allowed: ['auto', 'manual', 'off'] }],
    adapters: [{ id: 'site', type: 'simulated', interval: 60_000 }],
    auth: { loopback: 'none' },
    broker: { users: [{ username: 'panel', passwordHash: await hashPassword(MQTT_PASSWORD) }] },
  });
  const audit = site.gateway.audit!;
  const admin = new ApiClient(site.url);
  t.equal((await admin.login('admin', ADMIN_PASSWORD)).status, 200);
  const entries = async (action?: string): Promise<AuditEntry[]> => {
    const res = await admin.request('GET', `/api/audit?limit=500${action ? `&action=${action}` : ''}`);
    t.equal(res.status, 200);
    return ((await res.json()) as { items: AuditEntry[] }).items;
  };
  const newest = async (action: string): Promise<AuditEntry> => (await entries(action))[0]!;

  // Users.
  t.equal((await admin.request('POST', '/api/users', { username: 'alice', role: 'operator', password: ALICE_PASSWORD })).status, 201);
  t.match(await newest('user.add'), {
    by: 'user admin',
    actor: { kind: 'user', name: 'admin' },
    target: 'alice',
    details: { role: 'operator' },
    outcome: 'ok',
    address: '127.0.0.1',
  });
  t.equal((await admin.request('POST', '/api/users', { username: 'weak', role: 'viewer', password: 'short' })).status, 400);
  t.match(await newest('user.add'), { target: 'weak', outcome: 'refused', error: { code: 'BAD_REQUEST' } }, 'a refused user change is recorded too');

  // Setpoints over REST, by a session user: applied and refused.
  const alice = new ApiClient(site.url);
  t.equal((await alice.login('alice', ALICE_PASSWORD)).status, 200);
  t.equal((await alice.request('POST', '/api/datapoints/site.hvac.setpoint/setpoint', { v: 22.5 })).status, 200);
  t.match(await newest('setpoint'), { by: 'user alice', target: 'site.hvac.setpoint', details: { v: 22.5 }, outcome: 'ok', address: '127.0.0.1' });
  t.ok(
    site.logs.some((l) => l.msg === 'setpoint applied' && l.source === 'user alice'),
    'the log names the user too, not only an address',
  );
  t.equal((await alice.request('POST', '/api/datapoints/site.hvac.setpoint/setpoint', { v: 99 })).status, 400);
  t.match(
    await newest('setpoint'),
    { by: 'user alice', details: { v: 99 }, outcome: 'refused', error: { code: 'SETPOINT_OUT_OF_RANGE' } },
    'a refused setpoint is recorded as refused',
  );

  // Own password change: a wrong current password is refused (and recorded), then the right one.
  t.equal((await alice.request('POST', '/api/auth/password', { current: 'not-her-password', password: ALICE_NEW_PASSWORD })).status, 401);
  t.match(await newest('password.change'), { by: 'user alice', target: 'alice', outcome: 'refused', error: { code: 'NOT_AUTHENTICATED' } });
  const changed = await alice.request('POST', '/api/auth/password', { current: ALICE_PASSWORD, password: ALICE_NEW_PASSWORD });
  t.equal(changed.status, 200);
  t.match(await newest('password.change'), { by: 'user alice', outcome: 'ok' });

  // API tokens: created, used for a setpoint, revoked.
  const created = await admin.request('POST', '/api/tokens', { name: 'deploybot', role: 'operator' });
  t.equal(created.status, 201);
  const token = (await created.json()) as { id: string; token: string };
  t.match(await newest('token.create'), { by: 'user admin', target: 'deploybot', details: { role: 'operator', id: token.id }, outcome: 'ok' });
  const bearer = await fetch(`${site.url}/api/datapoints/site.mode/setpoint`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token.token}`, 'content-type': 'application/json' },
    body: '{"v":"manual"}',
  });
  t.equal(bearer.status, 200);
  t.match(await newest('setpoint'), {
    by: 'token deploybot',
    actor: { kind: 'token', name: 'deploybot' },
    target: 'site.mode',
    details: { v: 'manual' },
    outcome: 'ok',
  });
  t.equal((await admin.request('DELETE', `/api/tokens/${token.id}`)).status, 200);
  t.match(await newest('token.revoke'), { by: 'user admin', target: token.id, details: { name: 'deploybot' }, outcome: 'ok' });

  // MQTT: a client logged in as "panel" sets a value, then sends one out of the allowed set.
  const panel = await mqtt.connectAsync(site.mqttUrl, { clientId: 'panel-7', username: 'panel', password: MQTT_PASSWORD, reconnectPeriod: 0 });
  t.teardown(() => panel.endAsync());
  await panel.publishAsync('outpost/dp/site.mode/set', '{"v":"off"}', { qos: 1 });
  const fromMqtt = await eventually(async () => (await entries('setpoint')).find((e) => e.actor.kind === 'mqtt' && e.outcome === 'ok'));
  t.match(fromMqtt, {
    by: 'mqtt panel-7 (user panel)',
    actor: { kind: 'mqtt', name: 'panel-7', username: 'panel' },
    target: 'site.mode',
    details: { v: 'off' },
    address: '127.0.0.1',
  });
  await panel.publishAsync('outpost/dp/site.mode/set', '{"v":"turbo"}', { qos: 1 });
  const refusedMqtt = await eventually(async () => (await entries('setpoint')).find((e) => e.actor.kind === 'mqtt' && e.outcome === 'refused'));
  t.match(refusedMqtt, { by: 'mqtt panel-7 (user panel)', details: { v: 'turbo' }, error: { code: 'SETPOINT_OUT_OF_RANGE' } });

  // The other sources name themselves (sync/schedules.ts, sync/downlink.ts, the adapter host).
  await site.gateway.ingest.setpoint('site.mode', { v: 'auto' }, 'schedule');
  t.match(await newest('setpoint'), { by: 'schedule', actor: { kind: 'schedule' }, outcome: 'ok' });
  await site.gateway.ingest.setpoint('site.mode', { v: 'manual' }, 'upstream:central');
  t.match(await newest('setpoint'), { by: 'upstream:central', actor: { kind: 'upstream', name: 'central' } });

  // Removing users: oneself is refused, another user works.
  t.equal((await admin.request('DELETE', '/api/users/admin')).status, 409);
  t.match(await newest('user.remove'), { target: 'admin', outcome: 'refused', error: { code: 'AUTH_CONFLICT' } });
  t.equal((await admin.request('PATCH', '/api/users/alice', { role: 'viewer', password: 'alice-password-3-admin' })).status, 200);
  t.match(await newest('user.change'), { target: 'alice', details: { role: 'viewer', passwordChanged: true }, outcome: 'ok' });
  t.equal((await admin.request('DELETE', '/api/users/alice')).status, 200);
  t.match(await newest('user.remove'), { by: 'user admin', target: 'alice', outcome: 'ok' });

  // Backup download and restore.
  const backup = await admin.request('GET', '/api/admin/backup');
  t.equal(backup.status, 200);
  const file = await backup.text();
  t.match(await newest('backup.download'), { by: 'user admin', outcome: 'ok', details: { points: Number } });
  // Raw bodies: ApiClient sends JSON, which the restore refuses by design.
  const upload = (body: string) =>
    fetch(`${site.url}/api/admin/restore`, {
      method: 'POST',
      headers: { cookie: admin.cookie!, 'x-csrf-token': admin.csrf!, 'content-type': 'application/x-ndjson' },
      body,
    });
  const restored = await upload(file);
  t.equal(restored.status, 200);
  t.notOk('bytes' in ((await restored.json()) as object), 'the restore answer is unchanged');
  t.match(await newest('backup.restore'), { by: 'user admin', outcome: 'ok', details: { bytes: Buffer.byteLength(file) } });
  t.equal((await upload('not a backup\n')).status, 400);
  t.match(await newest('backup.restore'), { outcome: 'refused', error: { code: 'BACKUP_INVALID' } });

  // The filter and paging of the API.
  const all = await entries();
  t.ok(
    all.every((e, i) => i === 0 || all[i - 1]!.id > e.id),
    'newest first',
  );
  const firstPage = (await (await admin.request('GET', '/api/audit?limit=3')).json()) as { items: AuditEntry[]; more: boolean };
  t.equal(firstPage.items.length, 3);
  t.equal(firstPage.more, true);
  const next = (await (await admin.request('GET', `/api/audit?limit=3&before=${firstPage.items[2]!.id}`)).json()) as { items: AuditEntry[] };
  t.same(
    next.items.map((e) => e.id),
    all.slice(3, 6).map((e) => e.id),
    'load older continues where the page ended',
  );
  t.ok(
    (await entries('user')).every((e) => e.action.startsWith('user.')),
    'action=user lists the user changes',
  );
  t.equal((await admin.request('GET', '/api/audit?limit=0')).status, 400);

  // Graceful stop: everything recorded is on disk; no password or token value ever is.
  const count = all.length;
  await site.stop();
  const text = await auditFiles(site.dataDir);
  const lines = text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditEntry);
  t.ok(lines.length >= count, `all ${count} entries are in the files after the stop (${lines.length})`);
  for (const secret of [ADMIN_PASSWORD, ALICE_PASSWORD, ALICE_NEW_PASSWORD, 'alice-password-3-admin', 'not-her-password', MQTT_PASSWORD, token.token]) {
    t.notOk(text.includes(secret), `a secret (${secret.slice(0, 4)}…) is not in the audit files`);
  }
  t.ok(audit.dropped === 0, 'nothing was dropped');
});

t.test('only admins read the audit trail', async (t) => {
  const site = await startSecureSite(t, { adapters: [], auth: { loopback: 'none' } });
  const admin = new ApiClient(site.url);
  await admin.login('admin', ADMIN_PASSWORD);
  for (const [username, role] of [
    ['vera', 'viewer'],
    ['otto', 'operator'],
  ] as const) {
    await admin.request('POST', '/api/users', { username, role, password: `${username}-password-1` });
    const client = new ApiClient(site.url);
    await client.login(username, `${username}-password-1`);
    const res = await client.request('GET', '/api/audit');
    t.equal(res.status, 403, `a ${role} gets 403`);
    t.match(await res.json(), { error: { code: 'FORBIDDEN' } });
  }
  const created = (await (await admin.request('POST', '/api/tokens', { name: 'ro', role: 'operator' })).json()) as { token: string };
  t.equal((await fetch(`${site.url}/api/audit`, { headers: { authorization: `Bearer ${created.token}` } })).status, 403, 'an operator token too');
  t.equal((await fetch(`${site.url}/api/audit`)).status, 401, 'and nobody without a login');
  t.equal((await fetch(`${site.url}/API/Audit`)).status, 401, 'whatever the spelling');
  t.equal((await admin.request('GET', '/api/audit')).status, 200, 'an admin reads it');
});
