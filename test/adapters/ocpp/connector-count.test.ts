/**
 * Issue 20: the connector bound comes from the charger itself. After an accepted BootNotification
 * and on every reconnect the gateway asks GetConfiguration NumberOfConnectors (OCPP 1.6 §5.8,
 * §9.1.21); config `connectors` wins, then the charger's answer, then the profile's. Chargers here
 * are real OCPP 1.6-J clients: the shipped simulator, and ocpp-rpc RPCClients in strict mode that
 * answer GetConfiguration the way broken firmware does.
 */
import t from 'tap';
import { RPCClient, createRPCError } from 'ocpp-rpc';
import { eventually } from '../../helpers/gateway.js';
import { getJson, startOcppGateway, type OcppGateway } from './helpers.js';
import { chargerKey } from '../../../adapters/ocpp/mapping.js';
import type { ChargePointSimulator } from '../../../adapters/ocpp/simulator.js';

const CALL_TIMEOUT_MS = 1500;

interface ChargerView {
  id: string;
  profile: string;
  numberOfConnectors?: number;
  numberOfConnectorsFrom?: string;
  connectors: Array<{ id: number }>;
}

async function chargerView(gw: OcppGateway, id: string): Promise<ChargerView | undefined> {
  const { body } = await getJson<{ chargers: ChargerView[] }>(`${gw.httpUrl}/api/charging/chargers`);
  return body.chargers.find((c) => c.id === id);
}

async function datapointsOf(gw: OcppGateway, identity: string): Promise<string[]> {
  const { body } = await getJson<{ items: Array<{ id: string }> }>(`${gw.httpUrl}/api/datapoints`);
  return body.items
    .map((d) => d.id)
    .filter((id) => id.startsWith(`ev.${chargerKey(identity)}.`))
    .sort();
}

async function refusedCount(gw: OcppGateway): Promise<number> {
  return ((await gw.status()).info?.counters.connectorIdsRefused as number | undefined) ?? 0;
}

/** A StatusNotification from the charger: 'answered', or the OCPP-J error code of the CALLERROR. */
async function statusOn(charger: ChargePointSimulator | RPCClient, connectorId: number): Promise<string> {
  const params = { connectorId, errorCode: 'NoError', status: 'Available', timestamp: new Date().toISOString() };
  try {
    if (charger instanceof RPCClient) await charger.call('StatusNotification', params);
    else await charger.send('StatusNotification', params);
    return 'answered';
  } catch (err) {
    return (err as { rpcErrorCode?: string }).rpcErrorCode ?? `no CALLERROR: ${(err as Error).message}`;
  }
}

/** The learned bound, or the profile's kept after a warning: what the gateway reports for a charger. */
async function boundOf(gw: OcppGateway, id: string, expected: { count: number; from: string }): Promise<ChargerView | undefined> {
  return eventually(async () => {
    const view = await chargerView(gw, id);
    return view?.numberOfConnectors === expected.count && view.numberOfConnectorsFrom === expected.from ? view : undefined;
  }, CALL_TIMEOUT_MS + 5000).catch(() => chargerView(gw, id));
}

const keptWarnings = (gw: OcppGateway, id: string) =>
  gw.logs.filter((l) => l.charger === id && String(l.msg).startsWith('charger did not tell its NumberOfConnectors'));

t.test('the charger reports NumberOfConnectors: its answer bounds connector ids unless the config says otherwise', async (t) => {
  const gw = await startOcppGateway(t, {
    callTimeoutMs: CALL_TIMEOUT_MS,
    autoAccept: true,
    // No `connectors`: CP-ONE's profile (outpost-simulator, detected at boot) says 2.
    // CP-CFG: the installation says 2 although the charger reports 1.
    chargers: [
      { id: 'CP-ONE', securityProfile: 0 },
      { id: 'CP-CFG', securityProfile: 0, connectors: 2 },
    ],
  });

  // --- A charger with one connector on a two-connector profile.
  const one = gw.sim({ identity: 'CP-ONE', connectors: 1 });
  await one.connect();
  const learned = await boundOf(gw, 'CP-ONE', { count: 1, from: 'charger' });
  t.match(
    learned,
    { profile: 'outpost-simulator', numberOfConnectors: 1, numberOfConnectorsFrom: 'charger' },
    "the bound is the charger's answer, not the profile's 2",
  );
  t.ok(
    one.received.some((r) => r.action === 'GetConfiguration' && JSON.stringify(r.params) === '{"key":["NumberOfConnectors"]}'),
    'the gateway asked GetConfiguration NumberOfConnectors',
  );
  const refusedBefore = await refusedCount(gw);
  t.equal(await statusOn(one, 2), 'PropertyConstraintViolation', 'StatusNotification on connector 2 gets a CALLERROR PropertyConstraintViolation');
  t.equal(await statusOn(one, 1), 'answered', 'connector 1 is still fine');
  t.equal(await statusOn(one, 0), 'answered', 'and connector 0 (the charger as a whole)');
  await eventually(async () => (await refusedCount(gw)) === refusedBefore + 1);
  t.pass('the refusal is counted (connectorIdsRefused)');
  t.notOk(
    (await datapointsOf(gw, 'CP-ONE')).some((id) => id.startsWith('ev.cp-one.2.')),
    'no datapoints for connector 2',
  );
  const refusal = gw.logs.find((l) => l.charger === 'CP-ONE' && String(l.msg).startsWith('charger named a connector it does not have'));
  t.match(refusal, { numberOfConnectors: 1, from: 'charger', level: 40 }, 'the warning says where the bound came from');

  // --- On reconnect (no BootNotification) it is asked again: the charger now says 2.
  await one.disconnect();
  one.configuration.set('NumberOfConnectors', '2');
  const asked = one.received.filter((r) => r.action === 'GetConfiguration').length;
  await one.connect({ boot: false });
  t.match(await boundOf(gw, 'CP-ONE', { count: 2, from: 'charger' }), { numberOfConnectors: 2 }, 'asked again on reconnect, the new answer is the bound');
  t.ok(one.received.filter((r) => r.action === 'GetConfiguration').length > asked, 'a new GetConfiguration on the new connection');
  t.equal(await statusOn(one, 2), 'answered', 'connector 2 is accepted now');
  await eventually(async () => (await datapointsOf(gw, 'CP-ONE')).includes('ev.cp-one.2.status'));

  // --- A lower bound learned later keeps what connector 2 already has, and refuses more.
  await one.disconnect();
  one.configuration.set('NumberOfConnectors', '1');
  await one.connect({ boot: false });
  t.match(await boundOf(gw, 'CP-ONE', { count: 1, from: 'charger' }), { numberOfConnectors: 1 }, 'the lower answer is the bound');
  const refusedLater = await refusedCount(gw);
  t.equal(await statusOn(one, 2), 'PropertyConstraintViolation', 'connector 2 is refused again');
  await eventually(async () => (await refusedCount(gw)) === refusedLater + 1);
  t.ok((await datapointsOf(gw, 'CP-ONE')).includes('ev.cp-one.2.status'), "connector 2's datapoints are not deleted");
  const stored = (await getJson<{ latest?: { v: string } }>(`${gw.httpUrl}/api/datapoints/ev.cp-one.2.status`)).body;
  t.equal(stored.latest?.v, 'Available', 'and keep their last value');

  // --- The config wins over the charger's answer.
  const cfg = gw.sim({ identity: 'CP-CFG', connectors: 1 });
  await cfg.connect();
  await eventually(() => cfg.received.some((r) => r.action === 'GetConfiguration'));
  const mismatch = await eventually(() =>
    gw.logs.find((l) => l.charger === 'CP-CFG' && String(l.msg).startsWith('charger reports another NumberOfConnectors')),
  );
  t.match(mismatch, { configured: 2, reported: 1, level: 40 }, 'the disagreement is warned about');
  t.match(await chargerView(gw, 'CP-CFG'), { numberOfConnectors: 2, numberOfConnectorsFrom: 'config' }, 'the config bound is in force');
  t.equal(await statusOn(cfg, 2), 'answered', "connector 2 is accepted: config `connectors: 2` wins over the charger's 1");
  t.equal(await statusOn(cfg, 3), 'PropertyConstraintViolation', 'connector 3 is not');

  // --- The simulator's NumberOfConnectors is read-only, as OCPP 1.6 §9.1.21 has it.
  const { body } = await getJson<{ result?: { status: string } }>(`${gw.httpUrl}/api/charging/chargers/CP-CFG/configuration`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key: 'NumberOfConnectors', value: '9' }),
  });
  t.equal(body.result?.status, 'Rejected', 'ChangeConfiguration NumberOfConnectors is rejected');
});

/**
 * A strict OCPP 1.6-J charger (ocpp-rpc, schema-checked both ways) whose GetConfiguration answer
 * is `answer`; it boots as a vendor no profile matches, so its profile is `generic` (2 connectors).
 */
async function strictCharger(t: { teardown(fn: () => unknown): void }, gw: OcppGateway, identity: string, answer: () => unknown): Promise<RPCClient> {
  const client = new RPCClient({ endpoint: gw.wsUrl, identity, protocols: ['ocpp1.6'], strictMode: true, reconnect: false } as unknown as ConstructorParameters<
    typeof RPCClient
  >[0]);
  client.handle('GetConfiguration', async () => answer() as Record<string, unknown>);
  client.handle('TriggerMessage', async () => ({ status: 'Accepted' }));
  client.handle('ChangeConfiguration', async () => ({ status: 'Accepted' }));
  await client.connect();
  t.teardown(() => client.close({ force: true }));
  const boot = (await client.call('BootNotification', { chargePointVendor: 'Acme', chargePointModel: 'AC-22' })) as { status: string };
  if (boot.status !== 'Accepted') throw new Error(`${identity} boot ${boot.status}`);
  return client;
}

t.test('a charger that answers garbage, unknownKey, a CALLERROR or nothing keeps the profile bound; a huge answer is capped', async (t) => {
  const gw = await startOcppGateway(t, { callTimeoutMs: CALL_TIMEOUT_MS, autoAccept: true });
  const entry = (value?: string) => ({ configurationKey: [{ key: 'NumberOfConnectors', readonly: true, ...(value === undefined ? {} : { value }) }] });
  const bad: Record<string, () => unknown> = {
    'BAD-WORD': () => entry('two'),
    'BAD-ZERO': () => entry('0'),
    'BAD-NEGATIVE': () => entry('-1'),
    'BAD-FRACTION': () => entry('1.5'),
    'BAD-NOVALUE': () => entry(undefined),
    'BAD-MISSING': () => ({ configurationKey: [] }),
    'BAD-UNKNOWN': () => ({ unknownKey: ['NumberOfConnectors'] }),
    'BAD-CALLERROR': () => {
      throw createRPCError('NotSupported', 'no configuration here', {});
    },
    'BAD-SILENT': () => new Promise(() => undefined), // never answers: the gateway's call times out
  };
  const clients = new Map<string, RPCClient>();
  for (const [id, answer] of Object.entries(bad)) clients.set(id, await strictCharger(t, gw, id, answer));

  for (const [id, client] of clients) {
    await eventually(() => keptWarnings(gw, id).length > 0, CALL_TIMEOUT_MS + 5000).catch(() => undefined);
    const view = await chargerView(gw, id);
    t.match(view, { profile: 'generic', numberOfConnectors: 2, numberOfConnectorsFrom: 'profile' }, `${id}: the profile's bound (2) stays`);
    t.equal(keptWarnings(gw, id).length, 1, `${id}: warned once (asked on connect and after boot)`);
    t.equal(await statusOn(client, 2), 'answered', `${id}: connector 2 accepted`);
    t.equal(await statusOn(client, 3), 'PropertyConstraintViolation', `${id}: connector 3 refused`);
  }
  t.match(
    keptWarnings(gw, 'BAD-WORD')[0],
    { reported: 'two', problem: 'the value is not a whole number', from: 'profile', level: 40 },
    'the warning names what the charger said',
  );
  t.match(keptWarnings(gw, 'BAD-UNKNOWN')[0], { problem: /unknownKey/ }, 'unknownKey is named');
  t.match(keptWarnings(gw, 'BAD-CALLERROR')[0], { reason: /NotSupported/ }, 'the CALLERROR code is named');
  t.match(keptWarnings(gw, 'BAD-SILENT')[0], { reason: /did not answer GetConfiguration/ }, 'no answer within callTimeoutMs is named');

  // Asked again on reconnect, the same bad answer is not warned about again.
  await clients.get('BAD-UNKNOWN')!.close({ force: true });
  let askedAgain = 0;
  const again = await strictCharger(t, gw, 'BAD-UNKNOWN', () => {
    askedAgain++;
    return bad['BAD-UNKNOWN']!();
  });
  await eventually(() => askedAgain >= 2);
  t.pass('asked on the new connection (connect and boot)');
  // Frames on one socket are handled in order: once this is answered, the gateway read the answers.
  t.equal(await statusOn(again, 3), 'PropertyConstraintViolation', 'after a reconnect connector 3 is still refused');
  t.equal(keptWarnings(gw, 'BAD-UNKNOWN').length, 1, 'and no second warning');

  // An implausible answer is capped at 32 connectors, with a warning.
  const huge = await strictCharger(t, gw, 'HUGE', () => entry('2147483647'));
  t.match(await boundOf(gw, 'HUGE', { count: 32, from: 'charger' }), { numberOfConnectors: 32, numberOfConnectorsFrom: 'charger' }, 'capped at 32');
  t.ok(
    gw.logs.some((l) => l.charger === 'HUGE' && String(l.msg).startsWith('charger answered an implausible NumberOfConnectors') && l.level === 40),
    'the cap is warned about',
  );
  t.equal(await statusOn(huge, 32), 'answered', 'connector 32 accepted');
  t.equal(await statusOn(huge, 33), 'PropertyConstraintViolation', 'connector 33 refused');
});
