import t from 'tap';

import { eventually } from '../../helpers/gateway.js';
import { getJson, startOcppGateway } from './helpers.js';
import { tempDir } from '../../helpers/teardown.js';

t.test('reconnect mid-session: queued meter values and the stop arrive later, energy is right', async (t) => {
  const gw = await startOcppGateway(t, { chargers: [{ id: 'CP1', securityProfile: 0 }], idTags: { allow: ['TAG'] } });
  const sim = gw.sim({ identity: 'CP1' });
  await sim.connect();
  const { transactionId } = await sim.startSession(1, 'TAG');
  await sim.tick(60_000);

  await sim.disconnect(); // network loss
  await eventually(async () => (await getJson<{ latest: { v: boolean } }>(`${gw.httpUrl}/api/datapoints/ev.cp1.online`)).body.latest.v === false);
  await sim.tick(60_000); // charging goes on offline; meter values queue
  await sim.tick(60_000);
  const stopping = sim.stopSession(1); // the stop queues too
  await eventually(() => sim.queued === 3);
  t.pass('two MeterValues and a StopTransaction queued');

  // Reconnect without BootNotification (what chargers do after a network loss).
  await sim.connect({ boot: false });
  t.same(await stopping, { idTagInfo: { status: 'Accepted' } });
  t.equal(sim.queued, 0);
  // The gateway asked for the connector states on reconnect.
  await eventually(() => sim.received.some((r) => r.action === 'TriggerMessage'));

  const { body } = await getJson<{ session: { stop?: number; energyKwh: number; samples: number } }>(`${gw.httpUrl}/api/charging/sessions/${transactionId}`);
  t.type(body.session.stop, 'number');
  t.equal(body.session.energyKwh, 1.104, '3 minutes at 22.08 kW');
  t.equal(body.session.samples, 3);
  t.equal((await getJson<{ latest: { v: boolean } }>(`${gw.httpUrl}/api/datapoints/ev.cp1.online`)).body.latest.v, true);
});

t.test('a repeated StartTransaction (lost answer) gets the same transaction id; a new connection replaces the old', async (t) => {
  const gw = await startOcppGateway(t, { chargers: [{ id: 'CP1', securityProfile: 0 }], idTags: { acceptUnknown: true } });
  const sim = gw.sim({ identity: 'CP1' });
  await sim.connect();
  const req = { connectorId: 1, idTag: 'X', meterStart: 100, timestamp: '2025-01-01T08:00:00Z' };
  const first = (await sim.send('StartTransaction', req)) as { transactionId: number };
  const again = (await sim.send('StartTransaction', req)) as { transactionId: number };
  t.equal(again.transactionId, first.transactionId);

  const second = gw.sim({ identity: 'CP1' });
  await second.connect({ boot: false });
  await eventually(() => !sim.online, 3000);
  t.ok(second.online, 'the newer connection wins');
});

t.test('transaction ids and open sessions survive a gateway restart', async (t) => {
  const dataDir = await tempDir(t, 'outpost-ocpp-');
  const options = { chargers: [{ id: 'CP1', securityProfile: 0 }], idTags: { acceptUnknown: true } };

  const gw1 = await startOcppGateway(t, options, { dataDir });
  const sim1 = gw1.sim({ identity: 'CP1' });
  await sim1.connect();
  const a = await sim1.startSession(1, 'T1');
  await sim1.tick(60_000);
  await sim1.close();
  await gw1.stop();

  const gw2 = await startOcppGateway(t, options, { dataDir });
  const sim2 = gw2.sim({ identity: 'CP1' });
  // Same charger, same session still running on it: continue where sim1 was.
  sim2.connector(1).transactionId = a.transactionId;
  sim2.connector(1).energyWh = sim1.connector(1).energyWh;
  sim2.connector(1).idTag = 'T1';
  await sim2.connect({ boot: false });
  await sim2.tick(60_000);
  await sim2.stopSession(1);
  const b = await sim2.startSession(1, 'T2');
  t.equal(b.transactionId, a.transactionId + 1, 'the counter continued after the restart');
  const { body } = await getJson<{ session: { energyKwh: number; stop?: number } }>(`${gw2.httpUrl}/api/charging/sessions/${a.transactionId}`);
  t.equal(body.session.energyKwh, 0.736, 'energy across the restart');
});
