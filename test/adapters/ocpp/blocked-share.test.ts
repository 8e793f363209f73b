/**
 * Issue 20: a session whose idTag was answered Blocked still got a share of the site limit until
 * it stopped. A charger with StopTransactionOnInvalidId false keeps such a transaction open
 * (OCPP 1.6 §5.16, §9.1.24), so the plan must give it nothing. A raw OCPP 1.6-J client (ocpp-rpc,
 * strict) starts one session with a blocked tag and one with an allowed tag, and keeps both.
 */
import t from 'tap';
import { RPCClient } from 'ocpp-rpc';
import { eventually } from '../../helpers/gateway.js';
import { startOcppGateway, getJson } from './helpers.js';
import type { Plan } from '../../../adapters/ocpp/load-manager.js';

async function chargePoint(t: Tap, endpoint: string, identity: string): Promise<RPCClient> {
  const client = new RPCClient({ endpoint, identity, protocols: ['ocpp1.6'], strictMode: true, reconnect: false } as unknown as ConstructorParameters<
    typeof RPCClient
  >[0]);
  client.handle(async () => ({ status: 'Accepted' }));
  await client.connect();
  t.teardown(() => client.close({ force: true }));
  await client.call('BootNotification', { chargePointVendor: 'Test', chargePointModel: 'Raw' });
  return client;
}
type Tap = { teardown(fn: () => unknown): void };

t.test('a session whose idTag is Blocked gets no share of the site limit', async (t) => {
  const gw = await startOcppGateway(t, {
    chargers: [
      { id: 'A', securityProfile: 0 },
      { id: 'B', securityProfile: 0 },
    ],
    idTags: { allow: ['GOOD'], block: ['STOLEN'] },
    loadManagement: { limitA: 32, marginA: 0, fallbackA: 16 },
  });
  const a = await chargePoint(t, gw.wsUrl, 'A');
  const b = await chargePoint(t, gw.wsUrl, 'B');
  const now = new Date().toISOString();
  const blocked = (await a.call('StartTransaction', { connectorId: 1, idTag: 'STOLEN', meterStart: 0, timestamp: now })) as { idTagInfo: { status: string } };
  t.equal(blocked.idTagInfo.status, 'Blocked', 'the blocked tag is answered Blocked');
  const good = (await b.call('StartTransaction', { connectorId: 1, idTag: 'GOOD', meterStart: 0, timestamp: now })) as { idTagInfo: { status: string } };
  t.equal(good.idTagInfo.status, 'Accepted');

  const plan = await eventually(async () => {
    const p = (await getJson<{ plan: Plan | null }>(`${gw.httpUrl}/api/charging/plan`)).body.plan;
    return p && p.allocations.length === 2 ? p : undefined;
  });
  const share = (key: string) => plan!.allocations.find((x) => x.key === key)!;
  t.equal(share('A/1').limitA, 0, 'the Blocked session gets 0 A');
  t.match(share('A/1').reason, /idTag Blocked/, 'and the plan says why');
  t.ok(share('B/1').limitA > 0, `the accepted session charges (${share('B/1').limitA} A)`);
});
