/**
 * Issue 26 item 4: a command to a gateway whose primary link is down arrives over the
 * satellite path, authenticated, once. The gateway's http link points at a dead port; its
 * modem is the simulator on a real pty. Central's router finds no link up but Iridium, encodes
 * a schedule in the authenticated MT format (op 0x04, with the request ref op 0x05) with the
 * gateway's next persisted counter and POSTs it to the RockBLOCK MT API — here a local fake that
 * queues it on the simulated modem and rings it. The gateway verifies it, sets the schedule
 * through the same path as the `schedule` downlink command (SetpointSchedules), and acknowledges
 * it in an MO message (kind 3); delivered to central's webhook as Rock7 would, it settles the
 * command: `applied`. A forged MT and a replay of the genuine one are refused by the gateway; a
 * genuine MT copy of the same command under a new counter is answered from the gateway's
 * requestId memory (found by its ref), not applied again. An `alarm.ack` never takes the satellite.
 */
import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { FAST_TIMING, openSerial, ptyPair } from '../adapters/iridium/harness.js';
import { IridiumSimulator } from '../../adapters/iridium/simulator.js';
import { serialPortIo } from '../../adapters/iridium/at-transport.js';
import { moKind } from '../../adapters/iridium/mo-ack.js';
import { encodeMt } from '../../adapters/iridium/mt.js';
import { requestRef } from '../../runtime/sync/command-memory.js';
import { postRockblock, rock7Keys, transmitTime } from './helpers.js';
import { startWebCentral } from './web-helpers.js';

const GW = 'buoy-7';
const IMEI = '300234010753377';
const MT_SECRET = '00112233445566778899aabbccddeeff';
const TABLE = [
  { id: 'tank.level', decimals: 2 },
  { id: 'pump.setpoint', decimals: 1 },
];

t.test('a schedule to a gateway whose primary link is down: over RockBLOCK MT, authenticated, applied once, acked', async (t) => {
  // ---- the fake RockBLOCK MT API, in front of the simulated modem ----
  const { a, b } = await ptyPair(t);
  const sim = new IridiumSimulator(serialPortIo(await openSerial(t, b)), { echo: true, signal: 5, imei: IMEI });
  t.teardown(() => sim.close());
  const mtPosts: Array<Record<string, string>> = [];
  const rockblock = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const form = Object.fromEntries(new URLSearchParams(body));
      mtPosts.push(form);
      if (form.username !== 'rock-user' || form.password !== 'rock-pass') return res.end('FAILED,10,Invalid login credentials');
      if (form.imei !== IMEI) return res.end('FAILED,11,No RockBLOCK with this IMEI found on your account');
      sim.queueMt(Buffer.from(form.data!, 'hex'));
      sim.ring();
      res.end(`OK,${mtPosts.length}`);
    });
  });
  await new Promise<void>((r) => rockblock.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => rockblock.close(() => r())));

  const keys = await rock7Keys(t);
  const central = await startWebCentral(t, {
    ingest: { rockblock: { verify: 'jwt', jwt: { publicKeyFile: keys.publicKeyFile } } },
    commands: {
      tickSeconds: 1,
      satelliteAfterSeconds: 60,
      rockblock: { url: `http://127.0.0.1:${(rockblock.address() as AddressInfo).port}/rockblock/MT`, username: 'rock-user', password: 'rock-pass' },
    },
    gateways: [
      {
        id: GW,
        auth: { type: 'hmac', secret: 'buoy-7-hmac-secret-0123456789' },
        iridium: { imei: IMEI, timeResolutionMs: 1000, datapoints: TABLE },
        downlink: { links: ['http', 'iridium'], mt: { secret: MT_SECRET } },
      },
    ],
  });

  const gw = await startTestGateway(t, {
    gateway: { id: GW },
    storage: { sync: false },
    datapoints: [
      { id: 'tank.level', kind: 'sensor', type: 'number' },
      { id: 'pump.setpoint', kind: 'actuator', type: 'number', min: 0, max: 100 },
    ],
    adapters: [
      {
        id: 'sat',
        type: 'iridium',
        port: a,
        forward: false,
        datapoints: TABLE,
        mt: { secret: MT_SECRET },
        timing: FAST_TIMING,
        // Four MT fetches (the command, a forgery, a replay, a copy): more than the default MT share.
        budget: { dailyCredits: 100, mtCreditsPerDay: 20 },
      },
    ],
    sync: {
      enabled: true,
      pollMs: 20,
      datapointsIntervalMs: 0,
      backoff: { initialMs: 50, maxMs: 200 },
      fallback: { afterMs: 300, intervalMs: 200 },
      links: [
        // The primary: nobody answers.
        { name: 'central', type: 'http', url: 'http://127.0.0.1:1/api/ingest/batch', ackTimeoutMs: 300 },
        { name: 'sat', type: 'iridium', adapter: 'sat', messageBytes: 50 },
      ],
    },
  });
  const applied = async () => (await gw.gateway.store.query('pump.setpoint', { from: 0 })).map((v) => v.v);
  const sync = gw.gateway.sync!;
  const downlinkOk = async () => (await sync.snapshot()).downlink.ok;

  // ---- the operator sends a schedule; central routes it over the satellite ----
  const store = central.store!;
  // Whole seconds: the MT format carries schedule times in seconds. The first entry falls due
  // soon after it arrives (applied through the setpoint path), the second stays pending.
  const soon = Math.ceil((Date.now() + 8_000) / 1000) * 1000;
  const later = soon + 3_600_000;
  const cmd = await store.enqueueCommand(GW, {
    requestId: 'sat-1',
    type: 'schedule',
    id: 'pump.setpoint',
    entries: [
      { at: soon, v: 42.5 },
      { at: new Date(later).toISOString(), v: 17 },
    ],
  });
  central.commands!.router.kick(GW, cmd);
  await eventually(() => mtPosts.length === 1, 15_000, 50);
  const sentCmd = await store.command(GW, { cursor: cmd.cursor });
  t.equal(sentCmd?.state, 'sent');
  t.equal(sentCmd?.sends?.[0]?.via, 'iridium', 'sent over Iridium: the primary was never heard');
  const counter = sentCmd!.sends![0]!.counter!;
  t.ok(counter > 1_000_000, `the MT counter (${counter}) starts from the clock, above anything an old store counted`);

  await eventually(async () => (await applied()).length === 1, 30_000, 100);
  t.same(await applied(), [42.5], 'the first entry was applied at its time, once');
  t.same(sync.schedules!.list(), { 'pump.setpoint': [{ at: later, v: 17 }] }, 'the second entry is pending on the gateway');
  t.equal(await downlinkOk(), 1, 'one schedule command applied');

  // ---- its MO acknowledgement, delivered by Rock7 to central ----
  await eventually(() => sim.received.some((m) => moKind(m.bytes) === 'ack'), 30_000, 100);
  const ackMo = sim.received.find((m) => moKind(m.bytes) === 'ack')!;
  const res = await postRockblock(
    central.url,
    { imei: IMEI, serial: '1', momsn: String(ackMo.momsn), transmit_time: transmitTime(Date.now()), data: ackMo.bytes.toString('hex') },
    keys.privateKey,
  );
  t.match(res, { status: 200, body: { kind: 'ack', acks: [{ counter, results: ['ok'] }] } });
  const settled = await store.command(GW, { cursor: cmd.cursor });
  t.equal(settled?.state, 'applied', 'central: applied, from the MO ack');
  t.equal(settled?.ack?.via, 'rockblock');

  // ---- not sent again: later ticks leave it (and a sent Iridium command never goes elsewhere) ----
  await new Promise((r) => setTimeout(r, 2500));
  t.equal(mtPosts.length, 1, 'one MT message for the command');

  // ---- a forged MT and a replay of the genuine one: refused, never applied ----
  const genuine = Buffer.from(mtPosts[0]!.data!, 'hex');
  t.equal(genuine[genuine.indexOf(0x05, 2) + 9], 0x04, 'the genuine MT carries a request ref followed by a schedule op');
  const table = TABLE.map((d) => ({ ...d, type: 'number' as const }));
  const forged = encodeMt({ key: Buffer.alloc(16, 7), context: GW, datapoints: table, commands: [] }, counter + 1000, [
    { kind: 'schedule', id: 'pump.setpoint', entries: [{ at: later, v: 99 }] },
  ]);
  const refusedBefore = gw.gateway.store.latest('sat.mt_refused')?.v ?? 0;
  sim.queueMt(forged);
  sim.ring();
  await eventually(() => (gw.gateway.store.latest('sat.mt_refused')?.v ?? 0) === Number(refusedBefore) + 1, 30_000, 100);
  sim.queueMt(genuine);
  sim.ring();
  await eventually(() => (gw.gateway.store.latest('sat.mt_refused')?.v ?? 0) === Number(refusedBefore) + 2, 30_000, 100);
  t.same(sync.schedules!.list(), { 'pump.setpoint': [{ at: later, v: 17 }] }, 'the forged one and the replay: not applied');
  t.equal(await downlinkOk(), 1, 'still one command applied');

  // ---- a genuine copy of sat-1 under a new counter (as if sent again): answered, not applied again ----
  const key = Buffer.from(MT_SECRET, 'hex');
  const copy = encodeMt({ key, context: GW, datapoints: table, commands: [] }, counter + 2000, [
    { kind: 'schedule', id: 'pump.setpoint', entries: [{ at: later, v: 55 }], ref: requestRef('sat-1') },
  ]);
  const acksBefore = sim.received.filter((m) => moKind(m.bytes) === 'ack').length;
  sim.queueMt(copy);
  sim.ring();
  await eventually(() => sim.received.filter((m) => moKind(m.bytes) === 'ack').length === acksBefore + 1, 30_000, 100);
  t.same(sync.schedules!.list(), { 'pump.setpoint': [{ at: later, v: 17 }] }, 'the copy did not replace the schedule');
  t.equal(await downlinkOk(), 1, 'the copy was answered from memory, not applied');

  // ---- alarm.ack does not fit the MT format: it waits, it is not sent over the satellite ----
  const other = await store.enqueueCommand(GW, { requestId: 'sat-2', type: 'alarm.ack', id: 'tank.high' });
  central.commands!.router.kick(GW, other);
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(mtPosts.length, 1, 'no MT message for an alarm.ack');
  t.equal((await store.command(GW, { cursor: other.cursor }))?.state, 'queued', 'it waits for a link that carries it');
});
