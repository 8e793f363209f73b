import t from 'tap';
import { startTestGateway } from '../../helpers/gateway.js';
import { siteEnergy, type EnergyDeps, type EnergyReport } from '../../../runtime/site/energy.js';
import { energyPeriod } from '../../../runtime/site/energy-periods.js';
import { classifyCounters, roleFromId } from '../../../runtime/site/energy-roles.js';
import { tariffSchema } from '../../../core/tariff.js';
import { siteSchema } from '../../../runtime/site/config.js';
import type { PointRecord } from '../../../storage/store.js';

const BERLIN = 'Europe/Berlin';
const HOUR = 3_600_000;
/** Tuesday 2025-06-10, local midnight in Berlin (UTC+2 in summer). */
const DAY = Date.UTC(2025, 5, 9, 22);
const TUESDAY = { y: 2025, m: 6, d: 10 };
/** Well after the day: every bucket has begun. */
const LATER = Date.UTC(2025, 5, 12);

// Per local hour 00…23 of the day, in kWh. Import: 1 kWh an hour, none while the sun is up
// (10-15), and the meter was replaced in hour 03 (reading 0.4 after 10,003: 0.4 kWh, not −10,002.6).
const IMPORT = [1, 1, 1, 0.4, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
const EXPORT = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const PRODUCTION = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0];

/** Import: 0.30, weekdays 17-21 peak 0.50, every night 22-06 (wrapping midnight) 0.20; export flat 0.08. */
const TOU = tariffSchema.parse({
  currency: 'EUR',
  import: {
    default: 0.3,
    periods: [
      { days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '17:00', to: '21:00', price: 0.5, name: 'peak' },
      { from: '22:00', to: '06:00', price: 0.2, name: 'night' },
    ],
  },
  export: 0.08,
});

const DATAPOINTS = [
  { id: 'site.grid.energy_import', kind: 'sensor', type: 'number', unit: 'kWh' },
  { id: 'site.grid.energy_export', kind: 'sensor', type: 'number', unit: 'Wh' },
  { id: 'site.pv.energy', kind: 'sensor', type: 'number', unit: 'kWh' },
  { id: 'site.hvac.energy', kind: 'sensor', type: 'number', unit: 'kWh', description: 'a sub-meter' },
  { id: 'meter.main.energy_total', kind: 'sensor', type: 'number', unit: 'kWh' },
  { id: 'site.load.energy', kind: 'sensor', type: 'number', unit: 'MWh' },
  { id: 'bms.battery.energy_charged', kind: 'sensor', type: 'number', unit: 'kWh' },
  { id: 'bms.battery.energy_discharged', kind: 'sensor', type: 'number', unit: 'kWh' },
  { id: 'site.water.volume', kind: 'sensor', type: 'number', unit: 'm³', meta: { counter: true } },
];

/** Readings at half past each local hour (and one the evening before), adding up `perHour`. */
function readings(id: string, perHour: number[], start: number, factor = 1): PointRecord[] {
  const out: PointRecord[] = [{ id, t: DAY - 30 * 60_000, v: start }];
  let v = start;
  perHour.forEach((kwh, h) => {
    v = id.endsWith('import') && h === 3 ? kwh * factor : v + kwh * factor;
    out.push({ id, t: DAY + h * HOUR + 30 * 60_000, v: Math.round(v * 1e6) / 1e6 });
  });
  return out;
}

const near = (a: number | null, b: number) => a !== null && Math.abs(a - b) < 1e-9;

t.test('Energy figures from real counters in a real store', async (t) => {
  const gw = await startTestGateway(t, {
    gateway: { id: 'energy', timezone: BERLIN },
    datapoints: DATAPOINTS,
    site: { tariff: { currency: 'EUR', import: 0.3 } },
  });
  const store = gw.gateway.store;
  await store.write([
    ...readings('site.grid.energy_import', IMPORT, 10_000),
    ...readings('site.grid.energy_export', EXPORT, 5_000_000, 1000),
    ...readings('site.pv.energy', PRODUCTION, 2_000),
  ]);
  const deps = (over: Partial<EnergyDeps> = {}): EnergyDeps => ({
    store,
    datapoints: gw.gateway.registry.list(),
    energy: siteSchema.parse({}).energy,
    tariff: TOU,
    timezone: BERLIN,
    now: LATER,
    ...over,
  });

  await t.test('a local day with a time-of-use tariff: exact kWh, %, cost (roles found by id)', async (t) => {
    const r = await siteEnergy(deps(), 'day', TUESDAY);
    t.equal(r.start, DAY, 'the day starts at local midnight');
    t.equal(r.end, DAY + 24 * HOUR);
    t.equal(r.interval, '1h');
    t.strictSame(
      r.buckets.map((b) => b.label),
      Array.from({ length: 24 }, (_, h) => String(h).padStart(2, '0')),
      'local hours 00…23',
    );
    t.strictSame(
      r.buckets.map((b) => b.import),
      IMPORT,
      'import per hour: the reset hour counts 0.4 kWh from 0',
    );
    t.strictSame(
      r.buckets.map((b) => b.export),
      EXPORT,
      'export per hour, Wh as kWh',
    );
    t.strictSame(
      r.buckets.map((b) => b.production),
      PRODUCTION,
    );
    t.strictSame(
      r.buckets.map((b) => b.consumption),
      IMPORT.map((imp, h) => imp + PRODUCTION[h]! - EXPORT[h]!),
      'consumption = import + production − export, per hour',
    );
    t.strictSame(
      r.buckets.map((b) => b.selfConsumed),
      PRODUCTION.map((p, h) => p - EXPORT[h]!),
    );
    // Night 00-05: 5.4 kWh × 0.20; 06-09 and 16: 5 × 0.30; peak 17-20: 4 × 0.50; 21: 0.30; 22-23: 2 × 0.20.
    t.ok(near(r.buckets[3]!.cost, 0.08), 'hour 03: 0.4 kWh at the night price');
    t.ok(near(r.buckets[18]!.cost, 0.5), 'hour 18 (Tuesday): peak');
    t.ok(near(r.buckets[21]!.cost, 0.3), 'hour 21: default');
    t.ok(near(r.buckets[23]!.cost, 0.2), 'hour 23: night, wrapping midnight');
    t.strictSame(r.totals, {
      import: 17.4,
      export: 4,
      production: 26,
      consumption: 39.4,
      selfConsumed: 22,
      batteryCharge: 0,
      batteryDischarge: 0,
      cost: 5.28,
      earnings: 0.32,
      netCost: 4.96,
      selfConsumption: 84.62,
      selfSufficiency: 55.84,
    });
    t.equal(r.currency, 'EUR');
    t.equal(r.consumptionFrom, 'balance');
    t.strictSame(r.roles, { import: 'found', export: 'found', production: 'found', consumption: 'found', battery_charge: 'found', battery_discharge: 'found' });
    const used = Object.fromEntries(r.counters.map((c) => [c.id, [c.role, c.used, c.readings]]));
    t.strictSame(used['site.grid.energy_import'], ['import', true, 24]);
    t.strictSame(used['site.grid.energy_export'], ['export', true, 24]);
    t.strictSame(used['site.pv.energy'], ['production', true, 24]);
    t.strictSame(used['site.hvac.energy'], ['consumption', false, 0], 'a sub-meter is not added to the balance');
    t.strictSame(used['meter.main.energy_total'], ['total', false, 0]);
    t.strictSame(used['bms.battery.energy_charged'], ['battery_charge', true, 0], 'battery counters without readings count 0');
    t.notOk(used['site.water.volume'], 'a counter in m³ is not an energy counter');
    t.match(r.counters.find((c) => c.id === 'site.hvac.energy')?.note, /sub-meter/);
  });

  await t.test('a role without counters: the figures that need it are null, not 0', async (t) => {
    const only = gw.gateway.registry.list().filter((d) => d.id === 'site.grid.energy_import');
    const r = await siteEnergy(deps({ datapoints: only }), 'day', TUESDAY);
    t.equal(r.totals.import, 17.4);
    t.equal(r.totals.cost, 5.28);
    for (const k of ['export', 'production', 'consumption', 'selfConsumed', 'earnings', 'selfConsumption', 'selfSufficiency'] as const) {
      t.equal(r.totals[k], null, `${k} is null`);
    }
    t.equal(r.totals.netCost, 5.28, 'net cost without earnings is the cost');
    t.ok(r.buckets.every((b) => b.export === null && b.consumption === null));
    t.strictSame(r.roles.export, 'none');
    t.match(r.warnings.join('\n'), /No grid export counter.*\n.*No production counter/);

    const none = await siteEnergy(deps({ datapoints: [] }), 'day', TUESDAY);
    t.equal(none.totals.import, null, 'no import counter: import null');
    t.equal(none.totals.cost, null, 'and its cost');
    t.equal(none.totals.netCost, null);

    // `[]` says "none here": no PV and no feed-in, so they are 0 and consumption is the import.
    const energy = siteSchema.parse({ energy: { export: [], production: [] } }).energy;
    const plain = await siteEnergy(deps({ datapoints: only, energy }), 'day', TUESDAY);
    t.strictSame(
      [plain.totals.export, plain.totals.production, plain.totals.consumption, plain.totals.selfSufficiency, plain.totals.selfConsumption],
      [0, 0, 17.4, 0, null],
      'export 0, production 0, consumption = import, self-sufficiency 0 %, self-consumption of nothing null',
    );
    t.equal(plain.roles.production, 'configured');
  });

  await t.test('buckets that have not begun are null; the running one counts so far', async (t) => {
    const r = await siteEnergy(deps({ now: DAY + 12 * HOUR + 10 * 60_000 }), 'day', TUESDAY);
    t.strictSame(
      r.buckets.slice(11, 14).map((b) => b.production),
      [3, 3, null],
    );
    t.equal(r.buckets[12]!.production, 3, 'hour 12 has begun (its reading came at 12:30 in this store)');
    t.ok(r.buckets.slice(13).every((b) => b.import === null && b.cost === null));
  });

  await t.test('site.energy lists win over meta and ids; measured consumption', async (t) => {
    await store.write([
      { id: 'site.load.energy', t: DAY - 30 * 60_000, v: 1 },
      { id: 'site.load.energy', t: DAY + 12 * HOUR, v: 1.03 },
    ]);
    const energy = siteSchema.parse({
      energy: { import: ['site.grid.energy_import'], consumption: ['site.load.energy'], production: ['site.pv.energy', 'nope.energy'] },
    }).energy;
    const r = await siteEnergy(deps({ energy }), 'day', TUESDAY);
    t.equal(r.consumptionFrom, 'counters');
    t.ok(near(r.totals.consumption, 30), 'consumption from its own counter: 0.03 MWh');
    t.equal(r.totals.selfSufficiency, 42, '(30 − 17.4) / 30');
    t.match(r.warnings.join('\n'), /site\.energy\.production nope\.energy: no such datapoint/);
    t.strictSame(r.roles.import, 'configured');
  });

  await t.test('battery counters enter the balance', async (t) => {
    await store.write([
      { id: 'bms.battery.energy_charged', t: DAY - HOUR, v: 100 },
      { id: 'bms.battery.energy_charged', t: DAY + 13 * HOUR, v: 105 },
      { id: 'bms.battery.energy_discharged', t: DAY - HOUR, v: 50 },
      { id: 'bms.battery.energy_discharged', t: DAY + 20 * HOUR, v: 53 },
    ]);
    const r = await siteEnergy(deps(), 'day', TUESDAY);
    t.equal(r.totals.batteryCharge, 5);
    t.equal(r.totals.batteryDischarge, 3);
    t.equal(r.totals.consumption, 39.4 + 3 - 5, 'consumption = import + production − export + discharge − charge');
    t.equal(r.buckets[13]!.consumption, 0 + 3 - 1 - 5);
  });

  await t.test('time-of-use on a DST day: 25 local hours, each priced by its wall-clock time', async (t) => {
    // 2025-10-26 in Berlin: 00:00 CEST is 22:00 UTC the day before; 02:00-03:00 happens twice.
    const start = Date.UTC(2025, 9, 25, 22);
    const points: PointRecord[] = [{ id: 'dst.energy_import', t: start - 30 * 60_000, v: 0 }];
    for (let h = 0; h < 25; h++) points.push({ id: 'dst.energy_import', t: start + h * HOUR + 30 * 60_000, v: h + 1 });
    await store.write(points);
    const tariff = tariffSchema.parse({
      import: {
        default: 0.3,
        periods: [
          { from: '22:00', to: '06:00', price: 0.2 },
          { days: ['sun'], from: '12:00', to: '13:00', price: 1 },
        ],
      },
    });
    const dp = { id: 'dst.energy_import', adapter: 'test', kind: 'sensor' as const, type: 'number' as const, unit: 'kWh' };
    const r = await siteEnergy(deps({ datapoints: [dp], tariff, now: Date.UTC(2025, 10, 1) }), 'day', { y: 2025, m: 10, d: 26 });
    t.equal(r.buckets.length, 25);
    t.equal(r.totals.import, 25);
    t.strictSame(
      r.buckets.map((b) => b.cost),
      [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 1, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.2, 0.2],
      'night 00-06 (seven hours with the repeated 02), Sunday noon 1.00, night again from 22',
    );
    t.equal(r.totals.cost, 7.3);
  });

  await t.test('a quarter-hour tariff edge prices 15 min intervals', async (t) => {
    const tariff = tariffSchema.parse({ import: { default: 0, periods: [{ from: '07:30', to: '08:00', price: 1 }] } });
    const quarters: PointRecord[] = [];
    for (let i = 0; i <= 96; i++) quarters.push({ id: 'site.load.energy', t: DAY + 5 * HOUR + i * 900_000 + 60_000, v: 2 + i * 0.00025 });
    await store.write(quarters);
    const energy = siteSchema.parse({ energy: { import: ['site.load.energy'] } }).energy;
    const r = await siteEnergy(deps({ energy, tariff, now: DAY + 30 * HOUR }), 'day', { y: 2025, m: 6, d: 11 });
    t.equal(r.interval, '15m');
    t.equal(r.totals.cost, 0, 'the next day: no readings in 07:30-08:00');
    const today = await siteEnergy(deps({ energy, tariff }), 'day', TUESDAY);
    t.equal(today.interval, '15m');
    t.ok(near(today.totals.cost, 0.5), `two 0.25 kWh quarters at 1.00: ${today.totals.cost}`);
  });
});

t.test('local periods: DST days, weeks from Monday, months, years', async (t) => {
  const spring = energyPeriod('day', { y: 2025, m: 3, d: 30 }, BERLIN);
  t.equal(spring.buckets.length, 23, 'the spring-forward day has 23 hours');
  t.strictSame(
    spring.buckets.slice(1, 3).map((b) => b.label),
    ['01', '03'],
  );
  const autumn = energyPeriod('day', { y: 2025, m: 10, d: 26 }, BERLIN);
  t.equal(autumn.buckets.length, 25, 'the fall-back day has 25 hours');
  t.strictSame(
    autumn.buckets.slice(2, 4).map((b) => b.name),
    ['02:00–03:00 (UTC+02:00)', '02:00–03:00 (UTC+01:00)'],
    'the repeated hour names its offset',
  );
  t.equal(autumn.end - autumn.start, 25 * HOUR);
  const week = energyPeriod('week', TUESDAY, BERLIN);
  t.equal(week.date, '2025-06-09', 'weeks start on Monday');
  t.strictSame(
    week.buckets.map((b) => b.label),
    ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'],
  );
  t.equal(week.title, 'Week 24: Mon 9 Jun – Sun 15 Jun 2025');
  t.strictSame([week.previous, week.next], ['2025-06-02', '2025-06-16']);
  const month = energyPeriod('month', { y: 2025, m: 10, d: 31 }, BERLIN);
  t.equal(month.buckets.length, 31);
  t.equal(month.end - month.start, 31 * 24 * HOUR + HOUR, 'October in Berlin has one hour more');
  t.strictSame([month.previous, month.next], ['2025-09-01', '2025-11-01']);
  const year = energyPeriod('year', { y: 2024, m: 7, d: 4 }, 'America/New_York');
  t.equal(year.start, Date.UTC(2024, 0, 1, 5), 'New York: local midnight, 05:00 UTC');
  t.strictSame(year.buckets.map((b) => b.label).slice(0, 3), ['Jan', 'Feb', 'Mar']);
  t.equal(year.buckets[6]!.start, Date.UTC(2024, 6, 1, 4), 'July 1 at 04:00 UTC (EDT)');
  const kolkata = energyPeriod('day', TUESDAY, 'Asia/Kolkata');
  t.equal(kolkata.start, Date.UTC(2025, 5, 9, 18, 30), 'a half-hour zone');
});

t.test('classification: configured lists win, then meta.energy, then the words of the id', async (t) => {
  const dp = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    adapter: 'x',
    kind: 'sensor' as const,
    type: 'number' as const,
    unit: 'kWh',
    ...extra,
  });
  const { counters, roles } = classifyCounters(
    [
      dp('meter.main.energy_import'),
      dp('meter.sub.energy_import'),
      dp('pv2.energy', { meta: { energy: 'consumption' } }),
      dp('ev.cp1.1.session_energy'),
      dp('ev.cp1.1.energy'),
      dp('site.setpoint', { kind: 'actuator' }),
      dp('gas.volume', { unit: 'm³', meta: { counter: true } }),
      dp('meter.main.energy', { meta: { counter: false } }),
    ],
    siteSchema.parse({ energy: { import: ['meter.main.energy_import'], export: ['gas.volume'] } }).energy,
  );
  const by = Object.fromEntries(counters.map((c) => [c.id, c]));
  t.match(by['meter.main.energy_import'], { role: 'import', source: 'configured', why: 'site.energy.import' });
  t.match(by['meter.sub.energy_import'], { role: 'import', source: 'found' }, 'still import by its id (the Consumption page ranks it)');
  t.match(by['pv2.energy'], { role: 'consumption', source: 'meta' });
  t.match(by['ev.cp1.1.energy'], { role: 'consumption', source: 'found' });
  t.match(by['gas.volume'], { role: 'export', source: 'configured', problem: /not Wh, kWh or MWh/ });
  t.notOk(by['ev.cp1.1.session_energy'] ?? by['site.setpoint'] ?? by['meter.main.energy'], 'session energy, actuators and meta.counter: false are no counters');
  t.strictSame(roles, {
    import: 'configured',
    export: 'configured',
    production: 'none',
    consumption: 'found',
    battery_charge: 'none',
    battery_discharge: 'none',
  });
  t.strictSame(
    ['grid.energy_feedin', 'inverter3.yield_total', 'meter.total', 'bat.energy_out', 'storage.import', 'house.load', 'hvac'].map((id) => roleFromId(id).role),
    ['export', 'production', 'total', 'battery_discharge', 'battery_charge', 'consumption', 'consumption'],
  );
});

t.test('GET /api/site/energy and /counters in the running gateway; bad parameters are refused with reasons', async (t) => {
  const gw = await startTestGateway(t, {
    gateway: { id: 'energy-http', timezone: BERLIN },
    datapoints: DATAPOINTS.slice(0, 3),
    site: { tariff: TOU },
  });
  await gw.gateway.store.write([...readings('site.grid.energy_import', IMPORT, 10_000), ...readings('site.pv.energy', PRODUCTION, 2_000)]);
  const get = async (q: string) => {
    const res = await fetch(`${gw.httpUrl}/api/site/energy${q}`);
    return { status: res.status, body: (await res.json()) as EnergyReport & { error?: { code: string; message: string } } };
  };
  const ok = await get('?period=day&at=2025-06-10');
  t.equal(ok.status, 200);
  t.equal(ok.body.totals.import, 17.4);
  t.equal(ok.body.totals.cost, 5.28);
  t.equal(ok.body.totals.production, 26);
  t.equal(ok.body.title, 'Tue 10 Jun 2025');
  t.strictSame([ok.body.previous, ok.body.next], ['2025-06-09', '2025-06-11']);
  const instant = await get(`?period=month&at=${DAY + 3 * HOUR}`);
  t.equal(instant.body.date, '2025-06-01', 'epoch ms: the month containing that instant');
  t.equal(instant.body.totals.import, 17.4);
  t.equal((await get('?period=year&at=2025-06-10T12:00:00Z')).body.buckets.length, 12);
  t.equal((await get('')).status, 200, 'defaults: today');
  for (const [q, message] of [
    ['?period=decade', /"period" must be one of day, week, month, year, got "decade"/],
    ['?period=day&period=week', /"period" must be one of/],
    ['?at=2025-02-30', /"at" is not a calendar date: "2025-02-30"/],
    ['?at=yesterday', /"at" must be a date \(YYYY-MM-DD\), epoch milliseconds or an ISO 8601 date-time, got "yesterday"/],
    ['?at=1969-12-31', /years 1970 to 9999/],
    ['?at=1&at=2', /"at" must be given once/],
  ] as const) {
    const r = await get(q);
    t.equal(r.status, 400, `${q}: 400`);
    t.equal(r.body.error?.code, 'BAD_REQUEST');
    t.match(r.body.error?.message, message, q);
  }
  const counters = (await (await fetch(`${gw.httpUrl}/api/site/energy/counters`)).json()) as ReturnType<typeof classifyCounters>;
  t.strictSame(
    counters.counters.map((c) => [c.id, c.role, c.source]),
    [
      ['site.grid.energy_export', 'export', 'found'],
      ['site.grid.energy_import', 'import', 'found'],
      ['site.pv.energy', 'production', 'found'],
    ],
  );
});
