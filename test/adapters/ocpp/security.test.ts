import t from 'tap';
import WebSocket from 'ws';
import { hashPassword } from '../../../runtime/auth/passwords.js';
import { eventually } from '../../helpers/gateway.js';
import { startOcppGateway, getJson } from './helpers.js';

/** Opens a raw websocket; resolves with the socket or the HTTP status of the refusal. */
function rawConnect(url: string, options: { protocol?: string | false; auth?: string } = {}): Promise<{ ws?: WebSocket; status?: number }> {
  return new Promise((resolve) => {
    const protocols = options.protocol === false ? [] : [options.protocol ?? 'ocpp1.6'];
    const ws = new WebSocket(url, protocols, { headers: options.auth ? { authorization: `Basic ${Buffer.from(options.auth).toString('base64')}` } : {} });
    // Frames can arrive in the same chunk as the upgrade answer: queue them from the start.
    const inbox: unknown[][] = [];
    const waiting: Array<(m: unknown[]) => void> = [];
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as unknown[];
      const w = waiting.shift();
      if (w) w(m);
      else inbox.push(m);
    });
    (ws as WebSocket & { next(): Promise<unknown[]> }).next = () => (inbox.length ? Promise.resolve(inbox.shift()!) : new Promise((r) => waiting.push(r)));
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode });
      ws.terminate();
    });
    ws.once('error', () => resolve({}));
  });
}

function nextMessage(ws: WebSocket): Promise<unknown[]> {
  return (ws as WebSocket & { next(): Promise<unknown[]> }).next();
}

t.test('authentication: unknown charger, wrong password, missing subprotocol are refused', async (t) => {
  const gw = await startOcppGateway(t, { chargers: [{ id: 'CP1', password: await hashPassword('hunter2-right') }] });
  t.equal((await rawConnect(`${gw.wsUrl}/STRANGER`)).status, 401, 'unknown charger refused');
  t.equal((await rawConnect(`${gw.wsUrl}/CP1`, { auth: 'CP1:hunter2-wrong' })).status, 401, 'wrong password refused');
  t.equal((await rawConnect(`${gw.wsUrl}/CP1`)).status, 401, 'no password refused');
  t.equal((await rawConnect(`${gw.wsUrl}/CP1`, { auth: 'OTHER:hunter2-right' })).status, 401, 'user name must be the identity');
  t.equal((await rawConnect(`${gw.wsUrl}/CP1`, { auth: 'CP1:hunter2-right', protocol: 'ocpp2.0.1' })).status, 400, 'subprotocol ocpp1.6 required');
  const ok = await rawConnect(`${gw.wsUrl}/CP1`, { auth: 'CP1:hunter2-right' });
  t.ok(ok.ws, 'right password accepted');
  t.equal(ok.ws!.protocol, 'ocpp1.6');
  ok.ws!.close();

  const sim = gw.sim({ identity: 'CP1', password: 'nope' });
  await t.rejects(sim.connect(), 'the simulator (ocpp-rpc client) is refused too');

  const status = await eventually(async () => {
    const s = await gw.status();
    return (s.info?.counters.refused as Record<string, number>)?.['wrong-password'] >= 2 ? s : undefined;
  });
  t.equal((status!.info!.counters.refused as Record<string, number>)['unknown-charger'], 1);
  // Secrets never in logs: neither the password nor its hash.
  const logText = JSON.stringify(gw.logs);
  t.notMatch(logText, /hunter2-right|hunter2-wrong|scrypt\$/);
});

t.test('autoAccept lets unknown chargers in; security profile 2 needs TLS', async (t) => {
  const gw = await startOcppGateway(t, { autoAccept: true, chargers: [{ id: 'TLSONLY', password: await hashPassword('pw'), securityProfile: 2 }] });
  const sim = gw.sim({ identity: 'NEW-CHARGER-9' });
  await sim.connect();
  t.equal(sim.bootStatus, 'Accepted');
  await eventually(async () => (await fetch(`${gw.httpUrl}/api/datapoints/ev.new-charger-9.1.status`)).status === 200);
  t.equal((await rawConnect(`${gw.wsUrl}/TLSONLY`, { auth: 'TLSONLY:pw' })).status, 401, 'plain ws refused for profile 2');
  // An auto-accepted identity that aliases a known charger's datapoints is refused.
  t.equal((await rawConnect(`${gw.wsUrl}/tlsonly`)).status, 401, '"tlsonly" would write into TLSONLY\'s datapoints');
  t.equal((await rawConnect(`${gw.wsUrl}/new-charger-9`)).status, 401, '"new-charger-9" would write into the connected NEW-CHARGER-9\'s datapoints');
  const other = await rawConnect(`${gw.wsUrl}/NEW-CHARGER-10`);
  t.ok(other.ws, 'a distinct new identity is still auto-accepted');
  other.ws?.close();
});

t.test('charger identities that map to the same datapoint ids are refused in the config', async (t) => {
  const { ocppOptionsSchema } = await import('../../../adapters/ocpp/config.js');
  const parsed = ocppOptionsSchema.safeParse({
    chargers: [
      { id: 'CP.1', securityProfile: 0 },
      { id: 'cp_1', securityProfile: 0 },
      { id: 'CP2', securityProfile: 0 },
    ],
  });
  t.notOk(parsed.success);
  t.match(parsed.error?.issues, [{ path: ['chargers', 1, 'id'], message: /"cp_1" and "CP.1" map to the same datapoint ids \(cp_1\)/ }]);
});

t.test('invalid frames are answered with OCPP-J 1.6 error codes and counted', async (t) => {
  const gw = await startOcppGateway(t, { chargers: [{ id: 'RAW', securityProfile: 0 }], maxBadMessages: 50 });
  const { ws } = await rawConnect(`${gw.wsUrl}/RAW`);
  t.ok(ws);
  // The gateway asks for the charger's NumberOfConnectors (connector-count.ts; OCPP 1.6 §9.1.21),
  // then for status on connect; answer both so neither is an open call.
  const question = await nextMessage(ws!);
  t.match(question, [2, String, 'GetConfiguration', { key: ['NumberOfConnectors'] }]);
  ws!.send(JSON.stringify([3, question[1], { configurationKey: [{ key: 'NumberOfConnectors', readonly: true, value: '1' }] }]));
  const trigger = await nextMessage(ws!);
  t.equal(trigger[2], 'TriggerMessage');
  ws!.send(JSON.stringify([3, trigger[1], { status: 'Accepted' }]));

  const exchange = async (frame: string): Promise<unknown[]> => {
    const reply = nextMessage(ws!);
    ws!.send(frame);
    return reply;
  };
  // Broken JSON → FormationViolation (OCPP-J 1.6 §4.2.3), not the 2.0.1 RpcFrameworkError.
  t.match(await exchange('[2, "m1", "Heartbeat", {'), [4, '-1', 'FormationViolation']);
  t.match(await exchange('{"not": "an array"}'), [4, '-1', 'FormationViolation']);
  t.match(await exchange('[7, "m2", "Heartbeat", {}]'), [4, 'm2', 'FormationViolation'], 'unknown message type');
  // Schema violations.
  t.match(await exchange(JSON.stringify([2, 'm3', 'StatusNotification', { connectorId: 'one', errorCode: 'NoError', status: 'Available' }])), [
    4,
    'm3',
    'TypeConstraintViolation',
  ]);
  t.match(await exchange(JSON.stringify([2, 'm4', 'StatusNotification', { connectorId: 1, errorCode: 'NoError', status: 'Sleeping' }])), [
    4,
    'm4',
    'FormationViolation',
  ]);
  t.match(await exchange(JSON.stringify([2, 'm5', 'Heartbeat', { extra: true }])), [4, 'm5', 'PropertyConstraintViolation']);
  t.match(await exchange(JSON.stringify([2, 'm6', 'StartTransaction', { connectorId: 1 }])), [4, 'm6', 'OccurrenceConstraintViolation']);
  // Unknown action → NotImplemented.
  t.match(await exchange(JSON.stringify([2, 'm7', 'MakeCoffee', {}])), [4, 'm7', 'NotImplemented']);
  // Lenient input: a timestamp without offset is accepted (read as UTC).
  t.same(
    await exchange(
      JSON.stringify([2, 'm8', 'StatusNotification', { connectorId: 1, errorCode: 'NoError', status: 'Available', timestamp: '2024-05-01T10:00:00' }]),
    ),
    [3, 'm8', {}],
  );
  const heartbeat = await exchange(JSON.stringify([2, 'm9', 'Heartbeat', {}]));
  t.match(heartbeat, [3, 'm9', { currentTime: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/ }], 'strict output: UTC with Z');
  // DataTransfer (§4.3): logged (bounded) and answered UnknownVendorId; a missing vendorId breaks the schema.
  t.same(await exchange(JSON.stringify([2, 'm10', 'DataTransfer', { vendorId: 'com.acme', messageId: 'diag', data: 'x'.repeat(5000) }])), [
    3,
    'm10',
    { status: 'UnknownVendorId' },
  ]);
  t.match(await exchange(JSON.stringify([2, 'm11', 'DataTransfer', { messageId: 'diag' }])), [4, 'm11', 'OccurrenceConstraintViolation']);
  const logged = await eventually(
    () =>
      gw.logs.find((l) => (l as { msg?: string }).msg === 'DataTransfer from charger') as { vendorId: string; dataLength: number; data: string } | undefined,
  );
  t.match(logged, { vendorId: 'com.acme', dataLength: 5000 }, 'DataTransfer logged with its vendor');
  t.equal(logged!.data.length, 256, 'the logged data is bounded');

  const status = await eventually(async () => {
    const s = await gw.status();
    return (s.info?.counters.notImplemented as number) >= 1 ? s : undefined;
  });
  const c = status!.info!.counters as { badFrames: number; schemaViolations: Record<string, number>; notImplemented: number };
  t.equal(c.badFrames, 3);
  t.same(c.schemaViolations, { TypeConstraintViolation: 1, FormationViolation: 1, PropertyConstraintViolation: 1, OccurrenceConstraintViolation: 2 });
  t.equal(c.notImplemented, 1);
  const stored = (await (await fetch(`${gw.httpUrl}/api/datapoints/ev.raw.1.status`)).json()) as { latest: { v: string; t: number } };
  t.equal(stored.latest.t, Date.UTC(2024, 4, 1, 10), 'offset-less timestamp read as UTC');
  ws!.close();
});

t.test('too many bad frames close the connection', async (t) => {
  const gw = await startOcppGateway(t, { chargers: [{ id: 'SPAM', securityProfile: 0 }], maxBadMessages: 2 });
  const { ws } = await rawConnect(`${gw.wsUrl}/SPAM`);
  const closed = new Promise<number>((resolve) => ws!.once('close', (code) => resolve(code)));
  for (let i = 0; i < 5; i++) ws!.send('garbage');
  t.equal(await closed, 1002, 'protocol error close');
  // Let the gateway record the disconnect before it stops (no publish racing the shutdown).
  // (The charger list, not the online datapoint: a socket closed before its datapoints were
  // registered publishes no "offline" value.)
  await eventually(async () =>
    (await getJson<{ chargers: Array<{ id: string; online: boolean }> }>(`${gw.httpUrl}/api/charging/chargers`)).body.chargers.every((c) => !c.online),
  );
});

t.test("a charger cannot stop or feed another charger's transaction", async (t) => {
  const gw = await startOcppGateway(t, {
    chargers: [
      { id: 'OWNER', securityProfile: 0 },
      { id: 'ROGUE', securityProfile: 0 },
    ],
    idTags: { allow: ['TAG-OK'] },
  });
  const owner = gw.sim({ identity: 'OWNER' });
  const rogue = gw.sim({ identity: 'ROGUE' });
  await owner.connect();
  await rogue.connect();
  const started = await owner.startSession(1, 'TAG-OK');
  t.equal(started.status, 'Accepted');
  // The rogue guesses the (sequential) transaction id.
  await rogue.send('MeterValues', {
    connectorId: 1,
    transactionId: started.transactionId,
    meterValue: [{ timestamp: rogue.timestamp(), sampledValue: [{ value: '999999', measurand: 'Energy.Active.Import.Register', unit: 'Wh' }] }],
  });
  await rogue.send('StopTransaction', { transactionId: started.transactionId, meterStop: 999999, timestamp: rogue.timestamp(), reason: 'Local' });
  const { session: detail } = (await (await fetch(`${gw.httpUrl}/api/charging/sessions/${started.transactionId}`)).json()) as {
    session: { stop?: number; energyKwh: number; charger: string };
  };
  t.equal(detail.charger, 'OWNER');
  t.equal(detail.stop, undefined, "the owner's session is still open");
  t.ok(detail.energyKwh < 100, `the rogue's meter value did not land in it (${detail.energyKwh} kWh)`);
  t.ok(
    gw.logs.some((l) => (l as { msg?: string }).msg === "StopTransaction for another charger's transaction refused"),
    'the attempt is logged',
  );
  await owner.stopSession(1);
  const { session: closed } = (await (await fetch(`${gw.httpUrl}/api/charging/sessions/${started.transactionId}`)).json()) as { session: { stop?: number } };
  t.ok(closed.stop !== undefined, 'the owner can still stop it');
});
