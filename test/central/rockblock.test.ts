import t from 'tap';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { openSerial, ptyPair, FAST_TIMING } from '../adapters/iridium/harness.js';
import { TcpGate } from '../sync/helpers/tcp-gate.js';
import { IridiumSimulator } from '../../adapters/iridium/simulator.js';
import { serialPortIo } from '../../adapters/iridium/at-transport.js';
import { MoCodec, type Reading } from '../../adapters/iridium/codec.js';
import { moKind } from '../../adapters/iridium/mo-ack.js';
import type { StoredValue } from '../../storage/store.js';
import { API_TOKEN, postRockblock, rock7Keys, startTestCentral, transmitTime } from './helpers.js';

const GW = 'buoy-7';
const IMEI = '300234010753370';
const SECRET = 'buoy-7-hmac-secret-0123456789';
const T0 = Date.UTC(2025, 0, 1);
/** The codec table: the same on the site (adapter) and in central.yaml (gateways[].iridium). */
const TABLE = [
  { id: 'tank.level', decimals: 2 },
  { id: 'site.temp', decimals: 1 },
  { id: 'pump.power', decimals: 0 },
  { id: 'tank.overflow.alarm', type: 'boolean' as const },
];

t.test(
  'satellite then backfill: MO messages from the gateway’s modem, posted as Rock7 does, are decoded and stored; the same readings over the http link are dropped by seq',
  async (t) => {
    const keys = await rock7Keys(t);
    const central = await startTestCentral(t, {
      ingest: { rockblock: { verify: 'jwt', jwt: { publicKeyFile: keys.publicKeyFile } } },
      gateways: [{ id: GW, auth: { type: 'hmac', secret: SECRET }, iridium: { imei: IMEI, timeResolutionMs: 1000, datapoints: TABLE } }],
    });
    const store = central.store!;
    // The primary (http) link goes through a gate that is shut: the site is offline but for its modem.
    const gate = await TcpGate.create(t, Number(new URL(central.url).port));
    await gate.close();

    const { a, b } = await ptyPair(t);
    const sim = new IridiumSimulator(serialPortIo(await openSerial(t, b)), { echo: true, signal: 5, imei: IMEI });
    t.teardown(() => sim.close());
    const gw = await startTestGateway(t, {
      gateway: { id: GW },
      storage: { sync: false },
      datapoints: [...TABLE.map((d) => ({ id: d.id, kind: 'sensor', type: d.type ?? 'number' })), { id: 'site.note', kind: 'sensor', type: 'string' }],
      adapters: [
        { id: 'sat', type: 'iridium', port: a, forward: false, datapoints: TABLE, budget: { dailyCredits: 40, alarmReserve: 3 }, timing: FAST_TIMING },
      ],
      sync: {
        enabled: true,
        pollMs: 20,
        datapointsIntervalMs: 0,
        backoff: { initialMs: 50, maxMs: 200 },
        fallback: { afterMs: 1000, intervalMs: 300 },
        links: [
          {
            name: 'central',
            type: 'http',
            url: `http://127.0.0.1:${gate.port}/api/ingest/batch`,
            auth: { type: 'hmac', secret: SECRET },
            batchRecords: 100,
            ackTimeoutMs: 2000,
          },
          { name: 'sat', type: 'iridium', adapter: 'sat', messageBytes: 100 },
        ],
      },
    });

    // Readings while offline; some with more precision than the codec carries (2 decimals, whole seconds).
    const points: Array<{ id: string; v: unknown; t: number; q?: 'bad' }> = [];
    for (let i = 0; i < 300; i++)
      points.push({ id: TABLE[i % 3]!.id, v: i % 3 === 0 ? 1 + i / 1000 : i % 3 === 1 ? -5 + i / 10 : i * 10, t: T0 + i * 1000 + (i % 7) * 10 });
    points.push({ id: 'tank.overflow.alarm', v: true, t: T0 + 150_500 });
    points.push({ id: 'site.note', v: 'hatch open', t: T0 + 400_000 });
    await gw.gateway.ingest.acceptMany('test', points as never);
    const outbox = new Map((await gw.gateway.store.readOutbox(0, 100_000)).map((r) => [r.seq, r]));

    // New values keep the fallback lane busy: a few MO messages.
    let k = 0;
    const feeder = setInterval(() => {
      k++;
      void gw.gateway.ingest.acceptMany('test', [{ id: 'site.temp', v: 10 + k / 10, t: T0 + 500_000 + k * 1000 }]);
    }, 200);
    t.teardown(() => clearInterval(feeder));
    const readings = () => sim.received.filter((m) => moKind(m.bytes) === 'readings');
    await eventually(() => readings().length >= 3, 30_000, 50);
    clearInterval(feeder);
    for (const r of await gw.gateway.store.readOutbox(0, 100_000)) outbox.set(r.seq, r);

    // ---- the Rock7 cloud delivers each MO message to the webhook, signed ----
    const codec = new MoCodec({ timeResolutionMs: 1000, datapoints: TABLE.map((d) => ({ id: d.id, decimals: d.decimals ?? 0, type: d.type ?? 'number' })) });
    const viaSatellite: Reading[] = [];
    for (const mo of readings()) {
      const fields = {
        imei: IMEI,
        serial: '12345',
        momsn: String(mo.momsn),
        transmit_time: transmitTime(Date.now()),
        iridium_latitude: '43.2',
        iridium_longitude: '-9.1',
        iridium_cep: '3',
        data: mo.bytes.toString('hex'),
      };
      const res = await postRockblock(central.url, fields, keys.privateKey);
      t.equal(res.status, 200, `MO ${mo.momsn}: taken`);
      t.equal(res.body.version, 2, 'codec version 2: readings with their outbox seqs');
      viaSatellite.push(...codec.decode(mo.bytes).readings);
      // Rock7 retries a delivery it thinks failed: the same message again stores nothing.
      if (mo === readings()[0]) {
        const again = await postRockblock(central.url, fields, keys.privateKey);
        t.same([again.body.stored, again.body.duplicates], [0, res.body.readings], 'a redelivered webhook: all duplicates');
      }
    }
    t.ok(viaSatellite.length >= 5, `${viaSatellite.length} readings came over the satellite`);
    for (const r of viaSatellite) {
      const original = outbox.get(r.seq!)!;
      const expected = codec.quantise(original as Reading);
      const [stored] = await store.query(GW, r.id, { from: expected.t, to: expected.t });
      t.same(stored, expected.q ? { t: expected.t, v: null, q: expected.q } : { t: expected.t, v: expected.v }, `seq ${r.seq} (${r.id}): decoded and stored`);
    }
    t.equal(await store.countSeqs(GW), viaSatellite.length, 'each satellite seq stored once');
    const summary = (await central.get(`/api/gateways/${GW}`)).body;
    t.equal(summary.state, 'satellite', 'the fleet sees the site on satellite');
    t.equal(summary.satellite.received.today.messages, readings().length, 'the MO messages received today');
    t.equal(
      summary.satellite.received.today.credits,
      readings().reduce((n, m) => n + Math.max(1, Math.ceil(m.bytes.length / 50)), 0),
      'and their credits',
    );

    // ---- the primary comes back: the backfill carries every seq; the satellite ones are duplicates ----
    await gate.open();
    const lastSeq = () => gw.gateway.store.stats().lastSeq;
    await eventually(async () => (await store.countSeqs(GW)) >= lastSeq() && gw.gateway.store.stats().ackedSeq >= lastSeq(), 60_000, 100);
    t.equal(await store.countSeqs(GW), lastSeq(), 'every seq once, both paths together');
    const satSeqs = new Set(viaSatellite.map((r) => r.seq));
    for (const id of [...TABLE.map((d) => d.id), 'site.note']) {
      const site = await gw.gateway.store.query(id, { from: T0, to: T0 + 10_000_000, limit: 100_000 });
      const atCentral = await store.query(GW, id, { from: T0, to: T0 + 10_000_000, limit: 100_000 });
      t.equal(atCentral.length, site.length, `${id}: ${site.length} readings, none twice`);
      // What central holds: the satellite's copy of the seqs it carried, the site's reading of the rest.
      const seqOf = new Map([...outbox.values()].filter((r) => r.id === id).map((r) => [r.t, r.seq]));
      const expected: StoredValue[] = site
        .map((v) => {
          const seq = seqOf.get(v.t);
          if (seq === undefined || !satSeqs.has(seq)) return v;
          const q = codec.quantise({ id, ...v } as Reading);
          return q.q ? { t: q.t, v: null, q: q.q } : { t: q.t, v: q.v };
        })
        .sort((x, y) => x.t - y.t);
      t.same(atCentral, expected, `${id}: the readings, the satellite's copy where it came first`);
    }
    const metrics = await (await fetch(`${central.url}/metrics`, { headers: { authorization: `Bearer ${API_TOKEN}` } })).text();
    const dup = Number(/outpost_central_ingest_records_total\{via="http",lane="history",result="duplicate"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    t.ok(dup >= viaSatellite.length, `the backfill's copies of the satellite readings were dropped as duplicates (${dup} ≥ ${viaSatellite.length})`);
    t.equal((await store.query(GW, 'site.note', { from: T0, to: T0 + 1_000_000 }))[0]?.v, 'hatch open', 'what the modem could not carry came over the primary');
    t.equal((await central.get(`/api/gateways/${GW}`)).body.link, 'http');
  },
);
