/**
 * Issue 24 item 4 end to end, in real time: a strict OCPP 1.6-J charge point (the adapter's
 * simulator) reporting MeterValues every 10 s (the gateway asks for 5 s), whose car follows a new
 * limit after 1.5 s and ramps at 4 A/s, and a grid meter publishing the true site power every
 * second (export negative: PV minus other load plus what the car draws at that moment).
 *
 * The charger is started from REST with the configured remoteStartIdTag, charges in pv mode
 * (short delays: disable 10 s, enable 5 s) and follows the surplus, pauses when a cloud takes
 * it, resumes when the sun is back; then an operator switches it to `now` (audited) while the
 * house draws 12 kW with no sun, and load management holds the 32 A breaker. Pause, resume and
 * the site meter going stale and back land in the event log; the session has energy and cost
 * (site tariff 0.30 EUR/kWh) in REST and the CSV; the mode survives a gateway restart.
 */
import t from 'tap';
import type { AdapterType } from '../../../runtime/adapter.js';
import ocpp from '../../../adapters/ocpp/index.js';
import { startTestGateway, eventually } from '../../helpers/gateway.js';
import { ChargePointSimulator } from '../../../adapters/ocpp/simulator.js';
import { drivenAdapter } from '../../helpers/driven-adapter.js';
import type { GatewayEventInput } from '../../../core/events.js';
import { getJson, postJson } from './helpers.js';

const LIMIT = 32;
const VOLT = 230;
const PRICE = 0.3;
const gridMeter = drivenAdapter('test-grid-meter', 'grid meter driven by the test', async (ctx) => {
  await ctx.datapoints.register({ id: 'site.grid.power', type: 'number', unit: 'W', description: 'grid power, chargers included, export negative' });
});

const config = (dataDir?: string) => ({
  ...(dataDir ? { dataDir } : {}),
  site: { tariff: { currency: 'EUR', import: PRICE } },
  adapters: [
    { id: 'meter', type: 'test-grid-meter' },
    {
      id: 'chargers',
      type: 'ocpp',
      chargers: [{ id: 'PV1', securityProfile: 0, mode: 'pv' }],
      idTags: { allow: ['DASH-START'] },
      remoteStartIdTag: 'DASH-START',
      loadManagement: {
        limitA: LIMIT,
        marginA: 1,
        fallbackA: 16,
        meter: { datapoint: 'site.grid.power', unit: 'W', staleAfterMs: 3000 },
        control: { minPauseMs: 5000 },
        pv: { enableDelayS: 5, disableDelayS: 10 },
      },
    },
  ],
});

t.test('pv mode follows the surplus under real timing; now mode holds the breaker; costs, events, restart', async (t) => {
  const gw = await startTestGateway(t, config(), { types: [gridMeter.type, ocpp as unknown as AdapterType] });
  const events: GatewayEventInput[] = [];
  // What the adapter hands the event log: the gateway's own sink (runtime/alarms) is watched, or,
  // on a gateway without one, a sink of the test's is provided.
  const sink = gw.gateway.services.get('events', 'gateway');
  if (sink) {
    const record = sink.record.bind(sink);
    sink.record = (e) => {
      events.push(e);
      record(e);
    };
  } else gw.gateway.services.register('events', 'gateway', { record: (e) => events.push(e) });
  const wsUrl = gw.httpUrl.replace(/^http/, 'ws') + '/ocpp';
  const sim = new ChargePointSimulator({
    endpoint: wsUrl,
    identity: 'PV1',
    meterIntervalMs: 10_000,
    car: { delayMs: 1500, rampUpAPerS: 4, rampDownAPerS: 100 },
  });
  t.teardown(() => sim.close());
  await sim.connect();

  let pvKw = 8;
  let otherKw = 0.5;
  let meterOn = true;
  const siteA = (): number => ((otherKw - pvKw) * 1000) / (3 * VOLT) + sim.drawNow(1);
  const samples: Array<{ at: number; siteA: number; carA: number; limitA: number }> = [];
  const sampler = setInterval(() => samples.push({ at: Date.now(), siteA: siteA(), carA: sim.drawNow(1), limitA: sim.connector(1).limitA }), 100);
  const meterReadings: number[] = [];
  const meter = setInterval(() => {
    if (!meterOn) return;
    meterReadings.push(Date.now());
    void gridMeter.ctx?.bus.publishValue('site.grid.power', Math.round(siteA() * 3 * VOLT));
  }, 1000);
  t.teardown(() => {
    clearInterval(sampler);
    clearInterval(meter);
  });
  const plan = async () =>
    (
      await getJson<{
        plan: { allocations: Array<{ key: string; limitA: number; reason: string; mode?: string }>; surplus: { kind: string; watts?: number } };
      }>(`${gw.httpUrl}/api/charging/plan`)
    ).body.plan;

  // Start from REST without an idTag: the configured remoteStartIdTag is sent.
  const started = await postJson<{ result: { status: string } }>(`${gw.httpUrl}/api/charging/chargers/PV1/remote-start`, { connectorId: 1 });
  t.equal(started.body.result.status, 'Accepted', 'the charger accepted the remote start');
  await eventually(() => sim.connector(1).transactionId !== undefined && sim.connector(1).transactionId! > 0, 5000);
  t.equal(sim.connector(1).idTag, 'DASH-START', 'the session runs under remoteStartIdTag');
  const chargers = await getJson<{ remoteStartIdTag: string; chargers: Array<{ connectors: Array<{ id: number; mode: string }> }> }>(
    `${gw.httpUrl}/api/charging/chargers`,
  );
  t.equal(chargers.body.remoteStartIdTag, 'DASH-START');
  t.equal(chargers.body.chargers[0]!.connectors.find((c) => c.id === 1)!.mode, 'pv', 'the configured mode');

  // Sun: 8 kW PV, 0.5 kW house → 7.5 kW surplus = 10 A per phase.
  const surplusA = Math.floor((7.5 * 1000) / (3 * VOLT));
  const followed = Date.now();
  await eventually(() => sim.connector(1).limitA === surplusA && sim.drawNow(1) >= surplusA - 0.1, 40_000, 100);
  t.pass(`the car follows the surplus: ${surplusA} A after ${((Date.now() - followed) / 1000).toFixed(1)} s`);
  const sunny = await plan();
  t.match(sunny.allocations[0], { key: 'PV1/1', limitA: surplusA, mode: 'pv' });
  t.match(sunny.allocations[0]!.reason, /PV: surplus 7\.\d kW \(10 A\)/, `the plan says why: ${sunny.allocations[0]!.reason}`);
  t.match(sunny.surplus, { kind: 'measured' });
  await new Promise((r) => setTimeout(r, 5000));
  const steady = samples.filter((s) => s.at >= Date.now() - 5000);
  t.ok(
    steady.every((s) => s.siteA <= 0.5),
    `in the sun the site imports at most ${Math.max(...steady.map((s) => s.siteA)).toFixed(2)} A (charging from the surplus)`,
  );

  // A cloud: 2 kW PV → 1.5 kW surplus (2 A): the minimum for 10 s, then paused.
  pvKw = 2;
  const cloudAt = Date.now();
  await eventually(() => sim.connector(1).limitA === 0 && sim.drawNow(1) === 0, 30_000, 100);
  const pausedAfter = Date.now() - cloudAt;
  t.ok(pausedAfter >= 10_000 && pausedAfter <= 16_000, `paused ${(pausedAfter / 1000).toFixed(1)} s after the surplus went (disable delay 10 s)`);
  const atMin = samples.filter((s) => s.at > cloudAt + 4000 && s.at < cloudAt + 9000);
  t.ok(
    atMin.every((s) => s.limitA === 6),
    'during the disable delay the car keeps the minimum 6 A',
  );
  t.match((await plan()).allocations[0]!.reason, /^paused: /);

  // The sun is back: resumed after the enable delay (5 s; the minimum pause is 5 s too).
  pvKw = 8;
  const sunAt = Date.now();
  await eventually(() => sim.connector(1).limitA >= 6, 30_000, 100);
  const resumedAfter = Date.now() - sunAt;
  t.ok(resumedAfter >= 5000 && resumedAfter <= 10_000, `resumed ${(resumedAfter / 1000).toFixed(1)} s after the sun came back (enable delay 5 s)`);
  await eventually(() => sim.connector(1).limitA === surplusA, 40_000, 100);
  t.pass('and follows the surplus again');

  // An operator picks "now" while the house draws 12 kW and the sun is gone: the breaker wins.
  const set = await postJson<{ v: string }>(`${gw.httpUrl}/api/datapoints/ev.pv1.1.mode/setpoint`, { v: 'now' });
  t.equal(set.status, 200);
  pvKw = 0;
  otherKw = 12;
  const heavyAt = Date.now();
  const headroom = LIMIT - 1 - (12 * 1000) / (3 * VOLT);
  await eventually(() => sim.connector(1).limitA > surplusA, 60_000, 100);
  await new Promise((r) => setTimeout(r, 15_000));
  const heavy = samples.filter((s) => s.at >= heavyAt);
  const above = heavy.filter((s) => s.siteA > LIMIT);
  t.same(above, [], `the site stays at or under ${LIMIT} A in now mode (highest ${Math.max(...heavy.map((s) => s.siteA)).toFixed(1)} A)`);
  t.ok(
    sim.connector(1).limitA <= headroom && sim.connector(1).limitA >= headroom - 2,
    `now: the car gets the headroom, ${sim.connector(1).limitA} A of ${headroom.toFixed(1)} A`,
  );
  const audit = await getJson<{ items: Array<{ action: string; target: string; details: { v: string }; outcome: string }> }>(
    `${gw.httpUrl}/api/audit?action=setpoint`,
  );
  t.match(
    audit.body.items.find((e) => e.target === 'ev.pv1.1.mode'),
    { action: 'setpoint', outcome: 'ok', details: { v: 'now' } },
    'the mode change is in the audit trail',
  );
  const refused = await postJson(`${gw.httpUrl}/api/datapoints/ev.pv1.1.mode/setpoint`, { v: 'turbo' });
  t.equal(refused.status, 400, 'an unknown mode is refused');
  t.match(refused.body, { error: { message: /not one of \["off","now","minpv","pv"\]/ } });

  // The meter goes quiet for 4 s (stale after 3 s), then comes back.
  meterOn = false;
  await eventually(() => events.some((e) => e.kind === 'meter.stale'), 10_000, 100);
  meterOn = true;
  await eventually(() => events.some((e) => e.kind === 'meter.fresh'), 10_000, 100);
  t.match(
    events.find((e) => e.kind === 'meter.stale'),
    { source: 'chargers', severity: 'warning', message: /site meter stale/ },
  );
  t.match(
    events.find((e) => e.kind === 'load.paused' && e.message.includes('surplus 1.5 kW')),
    { source: 'chargers', severity: 'info', message: /PV1\/1 paused by load management: PV: surplus/ },
  );
  t.ok(
    events.some((e) => e.kind === 'load.resumed'),
    'the resume is in the event log too',
  );

  // Stop from REST; the closed session has energy and cost priced per meter-value interval.
  const txId = sim.connector(1).transactionId!;
  const stopped = await postJson<{ result: { status: string } }>(`${gw.httpUrl}/api/charging/chargers/PV1/remote-stop`, { transactionId: txId });
  t.equal(stopped.body.result.status, 'Accepted');
  const session = (await eventually(async () => {
    const r = await getJson<{ sessions: Array<Record<string, unknown>> }>(`${gw.httpUrl}/api/charging/sessions`);
    return r.body.sessions.find((s) => s.id === txId && s.stop !== undefined);
  }, 10_000))!;
  const energy = session.energyKwh as number;
  t.ok(energy > 0, `the session charged ${energy} kWh`);
  t.match(session, { currency: 'EUR', costBasis: 'samples' });
  t.ok(Math.abs((session.cost as number) - energy * PRICE) < 0.0002, `cost ${session.cost} EUR = ${energy} kWh × ${PRICE} EUR (flat tariff)`);
  t.notOk('pricing' in session, 'the running figures stay internal');
  const detail = await getJson<{ series: { power: Array<{ t: number; v: number }>; energyKwh: Array<{ t: number; v: number }> } }>(
    `${gw.httpUrl}/api/charging/sessions/${txId}`,
  );
  t.ok(detail.body.series.power.length >= 5, `the session chart has ${detail.body.series.power.length} power points`);
  t.ok(detail.body.series.power.some((p) => p.v > 0) && detail.body.series.power.some((p) => p.v === 0), 'power over the session: charging and paused');
  t.equal(detail.body.series.energyKwh.at(-1)!.v, energy, 'the energy series ends at the session energy');
  const csv = await (await fetch(`${gw.httpUrl}/api/charging/sessions.csv`)).text();
  const [head, row] = csv.trim().split('\r\n');
  const cols = head!.split(',');
  const cells = row!.split(',');
  t.equal(cells[cols.indexOf('cost')], String(session.cost), 'the CSV has the cost');
  t.equal(cells[cols.indexOf('currency')], 'EUR');
  t.equal(cells[cols.indexOf('costBasis')], 'samples');

  // The chosen mode survives a restart (the actuator's stored value wins over the configured pv).
  clearInterval(meter);
  await sim.close();
  await gw.stop();
  const again = await startTestGateway(t, config(gw.dataDir), { types: [gridMeter.type, ocpp as unknown as AdapterType], dataDir: gw.dataDir });
  const sim2 = new ChargePointSimulator({ endpoint: again.httpUrl.replace(/^http/, 'ws') + '/ocpp', identity: 'PV1' });
  t.teardown(() => sim2.close());
  await sim2.connect();
  const modeAfter = await eventually(async () => {
    const r = await getJson<{ chargers: Array<{ connectors: Array<{ id: number; mode: string }> }> }>(`${again.httpUrl}/api/charging/chargers`);
    return r.body.chargers[0]?.connectors.find((c) => c.id === 1)?.mode;
  }, 5000);
  t.equal(modeAfter, 'now', 'after a restart the connector is still in the mode picked last');
});
