/**
 * Site power roles (runtime/site/roles.ts): configured refs win, roles left out are found by
 * ids (OCPP connectors by their adapter's type and meta), `[]` means none, W / kW / MW to W,
 * `invert` flips, and a datapoint that cannot be read as power says why.
 */
import t from 'tap';
import { DatapointSchema, type Datapoint } from '../../../core/datapoint.js';
import { siteSchema } from '../../../runtime/site/config.js';
import { resolveRoles, wattsPerUnit, idWords, type RolePower } from '../../../runtime/site/roles.js';

const dp = (id: string, extra: Partial<Datapoint> = {}): Datapoint => DatapointSchema.parse({ id, adapter: 'mqtt', unit: 'W', ...extra });
const ocpp = (id: string, charger: string, connector: number, adapter = 'ev'): Datapoint => dp(id, { adapter, meta: { charger, connector } });
const types: Record<string, string> = { ev: 'ocpp', wallboxes: 'ocpp', plc: 'modbus' };
const lookup = { adapterType: (id: string) => types[id] };
const power = (raw: unknown) => siteSchema.parse({ power: raw }).power;
const pick = (p: RolePower[], role: string) => p.filter((x) => x.role === role).map((x) => x.id);

/** A site as adapters leave it: meters, an inverter, a battery with SoC, two OCPP chargers, a Modbus meter with OCPP-looking meta. */
const SITE: Datapoint[] = [
  dp('site.grid.power', { description: 'Grid connection power' }),
  dp('meter.main.power', { unit: 'kW' }),
  dp('roof.pv2.power', { description: 'Roof array west' }),
  dp('carport.solar_field.power'),
  dp('hybrid.inverter.power', { unit: 'kW' }),
  dp('hybrid.inverter.power_limit'),
  dp('pv.inverter.energy', { unit: 'kWh' }),
  dp('home.battery.power', { unit: 'kW' }),
  dp('home.battery.soc', { unit: '%' }),
  dp('plug.kitchen.power'),
  dp('lab.current.power', { unit: 'A' }),
  dp('odd.pv.power', { unit: 'mW' }),
  dp('text.pv.power', { type: 'string', unit: undefined }),
  ocpp('ev.cp1.0.power', 'CP1', 0),
  ocpp('ev.cp1.1.power', 'CP1', 1),
  ocpp('ev.cp1.2.power', 'CP1', 2),
  ocpp('ev.cp1.1.power_offered', 'CP1', 1),
  ocpp('ev.solar-port.1.power', 'Solar-Port', 1),
  ocpp('wb.solo.0.power', 'SOLO', 0, 'wallboxes'),
  ocpp('plc.fake.1.power', 'FAKE', 1, 'plc'),
  ocpp('gone.cp9.1.power', 'CP9', 1, 'removed-adapter'),
].sort((a, b) => (a.id < b.id ? -1 : 1));

t.test('roles left out are found by their ids', async (t) => {
  const r = resolveRoles(power({}), SITE, lookup);
  t.same(pick(r.power, 'grid'), ['site.grid.power'], 'grid: the id ending in grid.power');
  t.same(
    pick(r.power, 'charger'),
    ['ev.cp1.1.power', 'ev.cp1.2.power', 'ev.solar-port.1.power', 'wb.solo.0.power'],
    'chargers: OCPP connectors ≥ 1; connector 0 only for a charger without others; not a Modbus point with the same meta, not an adapter gone from the config',
  );
  t.same(pick(r.power, 'battery'), ['home.battery.power']);
  t.same(
    pick(r.power, 'pv'),
    ['carport.solar_field.power', 'hybrid.inverter.power', 'roof.pv2.power'],
    'pv: the words pv / solar / inverter, .power only, not a charger named solar, not mW, not text',
  );
  t.same(pick(r.power, 'load'), [], 'loads are never guessed: the rest is "other loads"');
  t.same(r.roles, { grid: 'found', pv: 'found', battery: 'found', load: 'none', charger: 'found', batterySoc: 'found' });
  t.same(r.socs, [{ id: 'home.battery.soc', battery: 'home.battery.power', source: 'found', why: 'found by id: beside the battery power' }]);
  const battery = r.power.find((p) => p.role === 'battery')!;
  t.match(battery, { label: 'Battery', unit: 'kW', scale: 1000, invert: false, source: 'found' }, 'kW read as 1000 W; the only battery is called Battery');
  t.match(
    r.power.find((p) => p.id === 'ev.cp1.2.power'),
    { label: 'CP1 #2', why: /OCPP connector 2 of charger CP1 \(adapter ev\)/ },
  );
  t.equal(r.power.find((p) => p.id === 'roof.pv2.power')!.label, 'Roof array west', 'one of several PV: its description');
  t.equal(r.power.find((p) => p.id === 'carport.solar_field.power')!.label, 'carport.solar_field.power', 'no description: the id');
  t.equal(r.power.find((p) => p.role === 'grid')!.label, 'Grid');
  t.ok(
    r.power.every((p) => !p.problem),
    'found datapoints can all be read as power',
  );
});

t.test('configured refs win; [] means none; invert and units', async (t) => {
  const r = resolveRoles(
    power({
      grid: { datapoint: 'meter.main.power', invert: true },
      pv: [],
      battery: ['home.battery.power'],
      batterySoc: [],
      loads: [{ datapoint: 'plug.kitchen.power', label: 'Kitchen' }, 'site.grid.power', 'lab.current.power', 'nowhere.power', 'text.pv.power'],
      chargers: [{ datapoint: 'ev.cp1.1.power', label: 'Drive' }],
    }),
    SITE,
    lookup,
  );
  t.same(r.roles, { grid: 'configured', pv: 'configured', battery: 'configured', load: 'configured', charger: 'configured', batterySoc: 'configured' });
  t.match(
    r.power.find((p) => p.role === 'grid'),
    { id: 'meter.main.power', scale: -1000, invert: true, source: 'configured', why: 'site.power.grid' },
  );
  t.same(pick(r.power, 'pv'), [], 'pv: [] — none, though site has pv ids');
  t.same(r.socs, [], 'batterySoc: [] — none, though home.battery.soc is there');
  t.same(pick(r.power, 'charger'), ['ev.cp1.1.power'], 'only the configured charger');
  const loads = r.power.filter((p) => p.role === 'load');
  t.same(
    loads.map((p) => [p.id, p.label, p.scale, p.why, p.problem]),
    [
      ['plug.kitchen.power', 'Kitchen', 1, 'site.power.loads[0]', undefined],
      ['site.grid.power', 'Grid connection power', 1, 'site.power.loads[1]', undefined],
      ['lab.current.power', 'lab.current.power', 0, 'site.power.loads[2]', 'unit "A" is not a power unit (W, kW, MW)'],
      ['nowhere.power', 'nowhere.power', 0, 'site.power.loads[3]', 'not registered (yet): no adapter or MQTT client has reported it'],
      ['text.pv.power', 'text.pv.power', 0, 'site.power.loads[4]', 'a string, not a number'],
    ],
    'each configured load, or why it cannot be added up',
  );
  t.equal(r.power.find((p) => p.role === 'charger')!.label, 'Drive');
});

t.test('an id has one role: configured first, then found as grid, chargers, battery, pv (listed grid, pv, battery, chargers, loads)', async (t) => {
  const r = resolveRoles(power({ loads: ['site.grid.power', 'hybrid.inverter.power'] }), SITE, lookup);
  t.same(pick(r.power, 'grid'), [], 'the only grid.power id is a configured load, so no grid is found');
  t.same(pick(r.power, 'pv'), ['carport.solar_field.power', 'roof.pv2.power']);
  const twice = resolveRoles(power({ grid: 'site.grid.power', loads: ['site.grid.power'] }), SITE, lookup);
  t.same(
    twice.power.filter((p) => p.role === 'grid' || p.role === 'load').map((p) => [p.role, p.id]),
    [['grid', 'site.grid.power']],
    'configured twice: the first role keeps it',
  );
  const batteryPv = resolveRoles(power({}), [dp('hybrid.inverter.battery.power'), dp('hybrid.inverter.pv.power')], lookup);
  t.same(
    batteryPv.power.map((p) => [p.role, p.id]),
    [
      ['pv', 'hybrid.inverter.pv.power'],
      ['battery', 'hybrid.inverter.battery.power'],
    ],
    "a hybrid inverter's battery port is a battery, not PV",
  );
});

t.test('battery SoC: beside each battery, else the one battery…soc; configured in battery order', async (t) => {
  const two = [dp('a.battery.power'), dp('a.battery.soc'), dp('b.battery.power'), dp('b.battery.soc')];
  t.same(
    resolveRoles(power({}), two, lookup).socs.map((s) => [s.id, s.battery]),
    [
      ['a.battery.soc', 'a.battery.power'],
      ['b.battery.soc', 'b.battery.power'],
    ],
  );
  const apart = [dp('inv.battery.power'), dp('bms.battery_pack.soc', { unit: '%' })];
  t.same(
    resolveRoles(power({}), apart, lookup).socs.map((s) => [s.id, s.battery, s.why]),
    [['bms.battery_pack.soc', 'inv.battery.power', 'found by id: the one battery…soc']],
  );
  const configured = resolveRoles(power({ batterySoc: ['bms.battery_pack.soc', 'not.there'] }), apart, lookup);
  t.same(
    configured.socs.map((s) => [s.id, s.battery, s.problem]),
    [
      ['bms.battery_pack.soc', 'inv.battery.power', undefined],
      ['not.there', undefined, 'not registered (yet)'],
    ],
  );
});

t.test('no datapoints: every role none, nothing drawn', async (t) => {
  const r = resolveRoles(power({}), [], lookup);
  t.same(r.power, []);
  t.same(r.socs, []);
  t.same(r.roles, { grid: 'none', pv: 'none', battery: 'none', load: 'none', charger: 'none', batterySoc: 'none' });
});

t.test('units and words', async (t) => {
  t.same(['W', 'kW', 'MW', undefined, '', 'mW', 'kw', 'A', 'kWh', 'toString'].map(wattsPerUnit), [
    1,
    1000,
    1e6,
    1,
    1,
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
  ]);
  t.same(idWords('roof.pv2.solar_field-3.power'), ['roof', 'pv', 'solar', 'field', 'power']);
});
