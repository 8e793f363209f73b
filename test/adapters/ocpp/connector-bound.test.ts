import t from 'tap';
import { hashPassword } from '../../../runtime/auth/passwords.js';
import { eventually } from '../../helpers/gateway.js';
import { getJson, startOcppGateway, type OcppGateway } from './helpers.js';
import type { ChargePointSimulator } from '../../../adapters/ocpp/simulator.js';

const PASSWORD = 'cp-connector-bound-secret';

/** Datapoint ids of one charger (`ev.<charger>.…`). */
async function datapointsOf(gw: OcppGateway, key: string): Promise<string[]> {
  const { body } = await getJson<{ items: Array<{ id: string }> }>(`${gw.httpUrl}/api/datapoints`);
  return body.items
    .map((d) => d.id)
    .filter((id) => id.startsWith(`ev.${key}.`))
    .sort();
}

/** Sends a call from the charger; resolves with the OCPP-J error code of a CALLERROR, or 'answered'. */
async function callErrorOf(sim: ChargePointSimulator, action: string, params: Record<string, unknown>): Promise<string> {
  try {
    await sim.send(action, params);
    return 'answered';
  } catch (err) {
    return (err as { rpcErrorCode?: string }).rpcErrorCode ?? `no CALLERROR: ${(err as Error).message}`;
  }
}

const status = (sim: ChargePointSimulator, connectorId: number) => ({ connectorId, errorCode: 'NoError', status: 'Available', timestamp: sim.timestamp() });
const meterValues = (sim: ChargePointSimulator, connectorId: number) => ({
  connectorId,
  meterValue: [
    {
      timestamp: sim.timestamp(),
      sampledValue: [
        { value: '1000', measurand: 'Energy.Active.Import.Register', unit: 'Wh' },
        { value: '7', measurand: 'Temperature', unit: 'Celsius' },
      ],
    },
  ],
});
const startTx = (sim: ChargePointSimulator, connectorId: number) => ({ connectorId, idTag: 'TAG-OK', meterStart: 1000, timestamp: sim.timestamp() });

t.test('connector ids outside 0..NumberOfConnectors are refused with a CALLERROR, counted, and make no datapoints', async (t) => {
  const hash = await hashPassword(PASSWORD);
  const gw = await startOcppGateway(t, {
    // CP1: one connector by the installation's override (its simulator profile says 2);
    // CP2: the profile's count (outpost-simulator: 2).
    chargers: [
      { id: 'CP1', password: hash, connectors: 1 },
      { id: 'CP2', password: hash },
    ],
    idTags: { allow: ['TAG-OK'] },
  });
  // Real OCPP 1.6-J clients: ocpp-rpc RPCClient in strict mode (the shipped simulator).
  const cp1 = gw.sim({ identity: 'CP1', password: PASSWORD, connectors: 1 });
  await cp1.connect();
  await eventually(async () => (await datapointsOf(gw, 'cp1')).includes('ev.cp1.1.status') && (await datapointsOf(gw, 'cp1')).includes('ev.cp1.0.status'));
  // A session on the real connector, so its meter values register their measurands too.
  t.equal((await cp1.startSession(1, 'TAG-OK')).status, 'Accepted');
  await cp1.tick(10_000);
  await eventually(async () => (await datapointsOf(gw, 'cp1')).includes('ev.cp1.1.soc'));
  const before = await datapointsOf(gw, 'cp1');

  // 101 made-up ids: negative, the largest int32, the next connector, and 98 more.
  const bad = [-1, 2147483647, 2, ...Array.from({ length: 98 }, (_, i) => 3 + i * 7)];
  t.equal(bad.length, 101);
  const answers = new Map<string, number>();
  for (const id of bad) {
    const code = await callErrorOf(cp1, 'StatusNotification', status(cp1, id));
    answers.set(code, (answers.get(code) ?? 0) + 1);
  }
  t.same(
    Object.fromEntries(answers),
    { PropertyConstraintViolation: 101 },
    'every StatusNotification on a made-up connector gets a CALLERROR PropertyConstraintViolation (OCPP-J 1.6 §4.2.3)',
  );
  // The other actions that carry a connectorId.
  t.equal(await callErrorOf(cp1, 'MeterValues', meterValues(cp1, -1)), 'PropertyConstraintViolation', 'MeterValues on connector -1');
  t.equal(await callErrorOf(cp1, 'MeterValues', meterValues(cp1, 2147483647)), 'PropertyConstraintViolation', 'MeterValues on connector 2147483647');
  t.equal(await callErrorOf(cp1, 'StartTransaction', startTx(cp1, 2)), 'PropertyConstraintViolation', 'StartTransaction on a connector the charger lacks');
  t.equal(
    await callErrorOf(cp1, 'StartTransaction', startTx(cp1, 0)),
    'PropertyConstraintViolation',
    'StartTransaction on connector 0 (the charger as a whole)',
  );
  t.equal(await callErrorOf(cp1, 'StartTransaction', startTx(cp1, -5)), 'PropertyConstraintViolation', 'StartTransaction on a negative connector');
  const refused = 101 + 5;

  // Connector 0 stays valid where OCPP allows it (StatusNotification, MeterValues of the main meter).
  t.equal(await callErrorOf(cp1, 'StatusNotification', status(cp1, 0)), 'answered', 'StatusNotification on connector 0');
  t.equal(
    await callErrorOf(cp1, 'MeterValues', {
      connectorId: 0,
      meterValue: [{ timestamp: cp1.timestamp(), sampledValue: [{ value: '1000', measurand: 'Energy.Active.Import.Register', unit: 'Wh' }] }],
    }),
    'answered',
    'MeterValues on connector 0',
  );
  t.equal(await callErrorOf(cp1, 'StatusNotification', status(cp1, 1)), 'answered', 'StatusNotification on connector 1');

  const counted = await eventually(async () => {
    const s = await gw.status();
    return (s.info?.counters.connectorIdsRefused as number) >= refused ? s : undefined;
  });
  t.equal(counted!.info!.counters.connectorIdsRefused, refused, 'each refusal counted in the adapter status');
  t.same(await datapointsOf(gw, 'cp1'), before, `no datapoint made (${before.length} before and after)`);
  const { body: chargers } = await getJson<{ chargers: Array<{ id: string; connectors: Array<{ id: number }>; sessions: Array<{ connectorId: number }> }> }>(
    `${gw.httpUrl}/api/charging/chargers`,
  );
  const state = chargers.chargers.find((c) => c.id === 'CP1')!;
  t.same(state.connectors.map((c) => c.id).sort(), [0, 1], 'no connector state for made-up ids');
  t.same(
    state.sessions.map((s) => s.connectorId),
    [1],
    'no session from a refused StartTransaction',
  );
  const warnings = gw.logs.filter((l) => l.charger === 'CP1' && String(l.msg).startsWith('charger named a connector it does not have'));
  t.equal(warnings.length, 1, 'warned once for the charger, not once per message');
  t.match(warnings[0], { numberOfConnectors: 1, level: 40 });

  // The profile's NumberOfConnectors applies when the installation does not override it.
  const cp2 = gw.sim({ identity: 'CP2', password: PASSWORD, connectors: 2 });
  await cp2.connect();
  t.equal(await callErrorOf(cp2, 'StatusNotification', status(cp2, 2)), 'answered', 'CP2 (outpost-simulator profile, 2 connectors): connector 2 is valid');
  t.equal(await callErrorOf(cp2, 'StatusNotification', status(cp2, 3)), 'PropertyConstraintViolation', 'CP2: connector 3 is not');
  await eventually(async () => (await gw.status()).info?.counters.connectorIdsRefused === refused + 1);
  t.notOk(
    (await datapointsOf(gw, 'cp2')).some((id) => id.startsWith('ev.cp2.3.')),
    'no datapoints for CP2 connector 3',
  );
  await cp1.stopSession(1);
});
