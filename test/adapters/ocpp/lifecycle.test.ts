import t from 'tap';
import { hashPassword } from '../../../runtime/auth/passwords.js';
import { eventually } from '../../helpers/gateway.js';
import { getJson, postJson, startOcppGateway } from './helpers.js';

const PASSWORD = 'cp1-secret-authorization-key';

t.test('full session lifecycle with a real OCPP client', async (t) => {
  const hash = await hashPassword(PASSWORD);
  const gw = await startOcppGateway(t, {
    chargers: [{ id: 'CP1', password: hash }],
    idTags: { allow: ['TAG-OK'], block: ['TAG-STOLEN'] },
  });
  const sim = gw.sim({ identity: 'CP1', password: PASSWORD, connectors: 2, timestampsWithoutOffset: true });
  await sim.connect();
  t.equal(sim.bootStatus, 'Accepted');
  // The profile's configuration keys arrive after boot (outpost-simulator profile matched by vendor/model).
  await eventually(() => sim.received.some((r) => r.action === 'ChangeConfiguration'));
  t.equal(sim.configuration.get('MeterValueSampleInterval'), '10');

  await eventually(async () => (await getJson<{ latest: { v: string } }>(`${gw.httpUrl}/api/datapoints/ev.cp1.1.status`)).body.latest?.v === 'Available');

  // Blocked and unknown tags are refused by the local list.
  const blocked = await sim.startSession(2, 'TAG-STOLEN');
  t.equal(blocked.status, 'Blocked');
  const unknown = await sim.startSession(2, 'TAG-WHO');
  t.equal(unknown.status, 'Invalid');
  // A charger with its own auth cache may start without Authorize: the blocked tag still gets a
  // transaction id (OCPP 1.6 §4.8) and is told Blocked, so the charger ends it.
  const direct = (await sim.send('StartTransaction', { connectorId: 2, idTag: 'TAG-STOLEN', meterStart: 5, timestamp: sim.timestamp() })) as {
    transactionId: number;
    idTagInfo: { status: string };
  };
  t.equal(direct.idTagInfo.status, 'Blocked');
  t.ok(direct.transactionId >= 1);
  await sim.send('StopTransaction', { transactionId: direct.transactionId, meterStop: 5, timestamp: sim.timestamp(), reason: 'DeAuthorized' });

  const started = await sim.startSession(1, 'TAG-OK');
  t.equal(started.status, 'Accepted');
  t.ok(started.transactionId >= 1, 'gateway assigned a transaction id');
  await sim.tick(60_000); // one minute at 32 A × 3 × 230 V = 22.08 kW → 368 Wh
  await sim.tick(60_000);

  await eventually(async () => {
    const { body } = await getJson<{ latest: { v: number } }>(`${gw.httpUrl}/api/datapoints/ev.cp1.1.session_energy`);
    return Math.abs(body.latest.v - 0.736) < 0.002;
  });
  const power = await getJson<{ latest: { v: number }; unit: string }>(`${gw.httpUrl}/api/datapoints/ev.cp1.1.power`);
  t.equal(power.body.unit, 'W');
  t.equal(power.body.latest.v, 22080, 'kW converted to W');
  const l2 = await getJson<{ latest: { v: number } }>(`${gw.httpUrl}/api/datapoints/ev.cp1.1.current_l2`);
  t.equal(l2.body.latest.v, 32);
  const voltage = await getJson<{ latest: { v: number } }>(`${gw.httpUrl}/api/datapoints/ev.cp1.1.voltage_l1`);
  t.equal(voltage.body.latest.v, 230, 'Voltage L1-N mapped to voltage_l1');
  const soc = await getJson<{ latest: { v: number }; unit: string }>(`${gw.httpUrl}/api/datapoints/ev.cp1.1.soc`);
  t.equal(soc.body.unit, '%');

  const stop = await sim.stopSession(1);
  t.same(stop, { idTagInfo: { status: 'Accepted' } });

  const { body } = await getJson<{ sessions: Array<Record<string, unknown>> }>(`${gw.httpUrl}/api/charging/sessions?charger=CP1`);
  const session = body.sessions.find((s) => s.id === started.transactionId)!;
  t.ok(session, 'session listed');
  t.equal(session.idTag, 'TAG-OK');
  t.equal(session.energyKwh, 0.736);
  t.equal(session.stopReason, 'EVDisconnected');
  t.type(session.stop, 'number');
  t.same(body.sessions.map((s) => s.authorization).sort(), ['Accepted', 'Blocked']);

  const detail = await getJson<{ meterValues: unknown[] }>(`${gw.httpUrl}/api/charging/sessions/${started.transactionId}`);
  t.equal(detail.body.meterValues.length, 2, 'raw meter values kept with the session');

  const csv = await fetch(`${gw.httpUrl}/api/charging/sessions.csv?charger=CP1`);
  t.match(csv.headers.get('content-type'), /text\/csv/);
  const lines = (await csv.text()).trim().split('\r\n');
  t.equal(lines[0], 'id,charger,connectorId,idTag,authorization,start,stop,meterStartWh,meterStopWh,energyKwh,stopReason,cost,currency,costBasis');
  // No import price in this site's tariff: no cost (issue 24 added the cost columns at the end).
  t.ok(lines.some((l) => l.startsWith(`${started.transactionId},CP1,1,TAG-OK,Accepted,`) && l.endsWith(',0.736,EVDisconnected,,,')));

  // Time filter: nothing starts before 2001.
  const none = await getJson<{ sessions: unknown[] }>(`${gw.httpUrl}/api/charging/sessions?to=2001-01-01T00:00:00Z`);
  t.same(none.body.sessions, []);
  const bad = await getJson(`${gw.httpUrl}/api/charging/sessions?from=yesterday`);
  t.equal(bad.status, 400);

  // The completed session is published as a datapoint, so it syncs upstream through the outbox.
  const completed = await getJson<{ latest: { v: { id: number } } }>(`${gw.httpUrl}/api/datapoints/ev.sessions.completed`);
  t.equal(completed.body.latest.v.id, started.transactionId);
});

t.test('central-system calls through REST reach the charger', async (t) => {
  const gw = await startOcppGateway(t, { chargers: [{ id: 'CP2', securityProfile: 0 }], idTags: { acceptUnknown: true } });
  const sim = gw.sim({ identity: 'CP2' });
  await sim.connect();
  const base = `${gw.httpUrl}/api/charging/chargers/CP2`;

  const start = await postJson<{ result: { status: string } }>(`${base}/remote-start`, { connectorId: 1, idTag: 'REMOTE' });
  t.equal(start.body.result.status, 'Accepted');
  await eventually(() => sim.connector(1).transactionId !== undefined && sim.connector(1).transactionId! > 0);
  const txId = sim.connector(1).transactionId!;

  const conf = await getJson<{ result: { configurationKey: Array<{ key: string; value: string }> } }>(`${base}/configuration?key=HeartbeatInterval`);
  t.same(conf.body.result.configurationKey, [{ key: 'HeartbeatInterval', value: '300', readonly: false }]);
  // Credentials a charger keeps in its configuration never leave the gateway.
  sim.configuration.set('AuthorizationKey', 'b4c0n-s3cr3t');
  const secret = await getJson<{ result: { configurationKey: Array<{ key: string; value: string }> } }>(`${base}/configuration?key=AuthorizationKey`);
  t.match(secret.body.result.configurationKey, [{ key: 'AuthorizationKey', value: '[redacted]' }]);
  t.notMatch(JSON.stringify(secret.body), /b4c0n-s3cr3t/);
  const change = await postJson<{ result: { status: string } }>(`${base}/configuration`, { key: 'HeartbeatInterval', value: '60' });
  t.equal(change.body.result.status, 'Accepted');
  t.equal(sim.configuration.get('HeartbeatInterval'), '60');

  const profile = await postJson<{ result: { status: string } }>(`${base}/charging-profile`, {
    connectorId: 1,
    csChargingProfiles: {
      chargingProfileId: 7,
      transactionId: txId,
      stackLevel: 2,
      chargingProfilePurpose: 'TxProfile',
      chargingProfileKind: 'Relative',
      chargingSchedule: { chargingRateUnit: 'A', chargingSchedulePeriod: [{ startPeriod: 0, limit: 10 }] },
    },
  });
  t.equal(profile.body.result.status, 'Accepted');
  t.equal(sim.connector(1).limitA, 10);
  const clear = await postJson<{ result: { status: string } }>(`${base}/clear-charging-profile`, { id: 7 });
  t.equal(clear.body.result.status, 'Accepted');
  t.equal((await postJson<{ result: { status: string } }>(`${base}/trigger`, { requestedMessage: 'Heartbeat' })).body.result.status, 'Accepted');
  t.equal((await postJson<{ result: { status: string } }>(`${base}/unlock`, { connectorId: 1 })).body.result.status, 'Unlocked');
  t.equal((await postJson<{ result: { status: string } }>(`${base}/reset`, { type: 'Hard' })).body.result.status, 'Accepted');

  // Strict on output: a request that breaks the OCPP schema never leaves the gateway.
  const invalid = await postJson<{ error: { code: string } }>(`${base}/reset`, { type: 'Sideways' });
  t.equal(invalid.status, 400);
  t.equal(invalid.body.error.code, 'BAD_REQUEST');
  t.notOk(sim.received.some((r) => r.action === 'Reset' && (r.params as { type: string }).type === 'Sideways'));

  const stop = await postJson<{ result: { status: string } }>(`${base}/remote-stop`, { transactionId: txId });
  t.equal(stop.body.result.status, 'Accepted');
  await eventually(
    async () => (await getJson<{ sessions: Array<{ stop?: number }> }>(`${gw.httpUrl}/api/charging/sessions`)).body.sessions[0]?.stop !== undefined,
  );

  const offline = await postJson<{ error: { code: string } }>(`${gw.httpUrl}/api/charging/chargers/NOPE/reset`, {});
  t.equal(offline.status, 404);
  await sim.disconnect();
  await eventually(async () => (await postJson(`${base}/reset`, {})).status === 503);
});

t.test('operator setpoints become charging profiles and availability changes', async (t) => {
  const gw = await startOcppGateway(t, { chargers: [{ id: 'CP3', securityProfile: 0 }], idTags: { acceptUnknown: true } });
  const sim = gw.sim({ identity: 'CP3' });
  await sim.connect();
  await eventually(async () => (await getJson(`${gw.httpUrl}/api/datapoints/ev.cp3.1.current_limit`)).status === 200);
  const started = await sim.startSession(1, 'ANY');

  const set = await postJson(`${gw.httpUrl}/api/datapoints/ev.cp3.1.current_limit/setpoint`, { v: 12.5 });
  t.equal(set.status, 200, JSON.stringify(set.body));
  const tx = sim.profiles.find((p) => p.csChargingProfiles.chargingProfilePurpose === 'TxProfile')!;
  t.ok(tx, 'TxProfile sent for the running transaction');
  t.equal(tx.csChargingProfiles.transactionId, started.transactionId);
  t.ok(
    sim.profiles.some((p) => p.csChargingProfiles.chargingProfilePurpose === 'TxDefaultProfile'),
    'TxDefaultProfile for future sessions',
  );
  t.equal(sim.connector(1).limitA, 12.5);

  const tooHigh = await postJson<{ error: { code: string } }>(`${gw.httpUrl}/api/datapoints/ev.cp3.1.current_limit/setpoint`, { v: 80 });
  t.equal(tooHigh.body.error.code, 'SETPOINT_OUT_OF_RANGE');

  const power = await postJson(`${gw.httpUrl}/api/datapoints/ev.cp3.1.power_limit/setpoint`, { v: 6900 });
  t.equal(power.status, 200);
  t.equal(sim.connector(1).limitA, 10, '6900 W / (230 V × 3) = 10 A');

  const disable = await postJson(`${gw.httpUrl}/api/datapoints/ev.cp3.1.enabled/setpoint`, { v: false });
  t.equal(disable.status, 200);
  t.same(
    sim.received.filter((r) => r.action === 'ChangeAvailability').map((r) => r.params),
    [{ connectorId: 1, type: 'Inoperative' }],
  );
  // Inoperative waits for the running transaction to end: a 0 A TxProfile stops the current now.
  t.equal(sim.connector(1).limitA, 0, 'the running session is held at 0 A');
  await sim.tick(60_000);
  t.equal(sim.connector(1).drawA, 0, 'and the car draws nothing');
  const enable = await postJson(`${gw.httpUrl}/api/datapoints/ev.cp3.1.enabled/setpoint`, { v: true });
  t.equal(enable.status, 200);
  t.equal(sim.connector(1).limitA, 10, 'enabled again: back to the operator limit (10 A from 6900 W)');

  await sim.disconnect();
  await eventually(async () => {
    const refused = await postJson<{ error: { code: string } }>(`${gw.httpUrl}/api/datapoints/ev.cp3.1.current_limit/setpoint`, { v: 16 });
    return refused.body.error.code === 'CHARGER_OFFLINE';
  });
});
