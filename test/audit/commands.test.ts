import t from 'tap';
import { ApiClient, ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';
import { eventually } from '../helpers/gateway.js';
import { hashPassword } from '../../runtime/auth/passwords.js';
import { ChargePointSimulator } from '../../adapters/ocpp/simulator.js';
import type { AuditEntry } from '../../runtime/audit/entry.js';

const CP_PASSWORD = 'cp-audit-1-authorization-key';

async function auditOf(admin: ApiClient, action: string): Promise<AuditEntry[]> {
  return ((await (await admin.request('GET', `/api/audit?action=${action}`)).json()) as { items: AuditEntry[] }).items;
}

t.test('charger commands name who gave them; a secret configuration value is not kept', async (t) => {
  const site = await startSecureSite(t, {
    adapters: [{ id: 'chargers', type: 'ocpp', chargers: [{ id: 'CP-AUDIT-1', password: await hashPassword(CP_PASSWORD) }], idTags: { allow: ['TAG-OK'] } }],
    auth: { loopback: 'none' },
  });
  const admin = new ApiClient(site.url);
  await admin.login('admin', ADMIN_PASSWORD);
  await admin.request('POST', '/api/users', { username: 'otto', role: 'operator', password: 'otto-password-1' });
  const otto = new ApiClient(site.url);
  await otto.login('otto', 'otto-password-1');

  const cp = new ChargePointSimulator({
    endpoint: site.httpUrl.replace(/^http/, 'ws') + '/ocpp',
    identity: 'CP-AUDIT-1',
    password: CP_PASSWORD,
    connectors: 1,
  });
  t.teardown(() => cp.close());
  await cp.connect();
  await eventually(
    async () => ((await (await otto.request('GET', '/api/charging/chargers')).json()) as { chargers: Array<{ online: boolean }> }).chargers[0]?.online,
  );

  const start = await otto.request('POST', '/api/charging/chargers/CP-AUDIT-1/remote-start', { connectorId: 1, idTag: 'TAG-OK' });
  t.equal(start.status, 200);
  t.match((await auditOf(admin, 'charger'))[0], {
    action: 'charger.command',
    by: 'user otto',
    target: 'CP-AUDIT-1',
    details: { call: 'RemoteStartTransaction', params: { connectorId: 1, idTag: 'TAG-OK' }, status: 'Accepted' },
    outcome: 'ok',
    address: '127.0.0.1',
  });

  t.equal((await otto.request('POST', '/api/charging/chargers/CP-AUDIT-1/remote-stop', { transactionId: 987654 })).status, 200);
  t.match(
    (await auditOf(admin, 'charger'))[0],
    { by: 'user otto', details: { call: 'RemoteStopTransaction', status: 'Rejected' }, outcome: 'refused', error: { code: 'CHARGER_REJECTED' } },
    'a call the charger rejects is recorded as refused',
  );

  t.equal((await otto.request('POST', '/api/charging/chargers/CP-NOBODY/reset', { type: 'Hard' })).status, 404);
  t.match((await auditOf(admin, 'charger'))[0], { target: 'CP-NOBODY', details: { call: 'Reset' }, outcome: 'refused', error: { code: 'NOT_FOUND' } });

  const secret = 'new-authorization-key-0123456789';
  t.equal((await admin.request('POST', '/api/charging/chargers/CP-AUDIT-1/configuration', { key: 'AuthorizationKey', value: secret })).status, 200);
  const config = (await auditOf(admin, 'charger'))[0]!;
  t.match(config, { by: 'user admin', details: { call: 'ChangeConfiguration', params: { key: 'AuthorizationKey', value: '[redacted]' } }, outcome: 'ok' });
  t.notOk(JSON.stringify(config).includes(secret), 'the new key is not in the trail');
});

t.test('flow deploys are recorded with the admin who deployed', async (t) => {
  const site = await startSecureSite(t, {
    adapters: [],
    auth: { loopback: 'none' },
    flows: { enabled: true, credentialSecret: 'audit-test-credential-secret-0123', logLevel: 'warn' },
  });
  const admin = new ApiClient(site.url);
  await admin.login('admin', ADMIN_PASSWORD);
  const deploy = await admin.request('POST', '/flows/flows', [{ id: 'a1', type: 'tab', label: 'audited' }]);
  t.ok(deploy.status < 300, `deployed (${deploy.status})`);
  const entry = await eventually(async () => (await auditOf(admin, 'flows'))[0]);
  t.match(entry, { action: 'flows.deploy', by: 'user admin', target: '/flows/flows', details: { method: 'POST' }, outcome: 'ok' });
});
