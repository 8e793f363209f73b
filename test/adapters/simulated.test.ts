import t from 'tap';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { hourFormatter, localHour, occupancy, pvPower, nextCloud, hvacPower } from '../../adapters/simulated/curves.js';

t.test('curves have the shapes an operator expects', async (t) => {
  t.equal(pvPower(3, 1), 0, 'no PV at night');
  t.ok(pvPower(13, 1) > 11_000, 'near peak at midday');
  t.ok(occupancy(12) > occupancy(7));
  t.equal(occupancy(23), 0);
  let c = 0.9;
  for (let i = 0; i < 10_000; i++) c = nextCloud(c, Math.random);
  t.ok(c >= 0.35 && c <= 1, 'cloud cover stays bounded');
  t.equal(hvacPower({ cloud: 1, hvacSetpoint: 21, hvacEnabled: false }, 5), 0);
  t.ok(
    hvacPower({ cloud: 1, hvacSetpoint: 24, hvacEnabled: true }, 5) > hvacPower({ cloud: 1, hvacSetpoint: 18, hvacEnabled: true }, 5),
    'a higher setpoint costs more',
  );
  const berlin = hourFormatter('Europe/Berlin');
  t.equal(localHour(Date.UTC(2026, 0, 15, 11, 30), berlin), 12.5, 'CET is UTC+1 in January');
  t.equal(localHour(Date.UTC(2026, 6, 15, 11, 30), berlin), 13.5, 'CEST is UTC+2 in July');
});

t.test('the adapter publishes all datapoints, obeys setpoints, and its counter never goes back', async (t) => {
  const dataDir = (await import('node:fs/promises')).mkdtemp((await import('node:path')).join((await import('node:os')).tmpdir(), 'outpost-sim-'));
  const dir = await dataDir;
  t.teardown(() => import('node:fs/promises').then((fs) => fs.rm(dir, { recursive: true, force: true })));
  const cfg = { adapters: [{ id: 'site', type: 'simulated', interval: 100, prefix: 'plant' }] };
  const gw = await startTestGateway(t, cfg, { dataDir: dir });
  for (const id of [
    'plant.grid.power',
    'plant.grid.energy_import',
    'plant.grid.energy_export',
    'plant.pv.energy',
    'plant.load.power',
    'plant.pv.power',
    'plant.outdoor.temperature',
    'plant.hvac.setpoint',
    'plant.hvac.enabled',
  ]) {
    t.ok(gw.gateway.registry.get(id), id);
  }
  await eventually(async () => (await gw.gateway.store.query('plant.grid.power', {})).length >= 20);
  const g = (await gw.gateway.store.query('plant.grid.power', {})).at(-1)!;
  const l = await gw.gateway.store.query('plant.load.power', { from: g.t, to: g.t });
  const p = await gw.gateway.store.query('plant.pv.power', { from: g.t, to: g.t });
  t.equal(g.v, (l[0]!.v as number) - (p[0]!.v as number), 'grid = load - pv for the same instant');
  await gw.gateway.ingest.setpoint('plant.hvac.enabled', { v: false }, 'test');
  t.equal(gw.gateway.store.latest('plant.hvac.enabled')?.v, false);
  // The counters integrate the powers (import − export = ∫grid, production = ∫pv), so the
  // Energy page's balance import + production − export is the load.
  const counters = ['plant.grid.energy_import', 'plant.grid.energy_export', 'plant.pv.energy'];
  for (const id of counters) {
    const dp = gw.gateway.registry.get(id)!;
    t.match(dp, { unit: 'kWh', meta: { counter: true } }, `${id} is a kWh counter`);
    const vs = (await gw.gateway.store.query(id, {})).map((p) => p.v as number);
    t.ok(
      vs.every((v, i) => i === 0 || v >= vs[i - 1]!),
      `${id} never goes back`,
    );
  }
  // Same instants in every series (one batch per tick): check the integrals exactly, to the counters' 0.1 Wh rounding.
  const series = async (id: string) => new Map((await gw.gateway.store.query(id, {})).map((p) => [p.t, p.v as number]));
  const [grid, pv, imp, exp, prod] = await Promise.all(['plant.grid.power', 'plant.pv.power', ...counters].map(series));
  const ts = [...imp!.keys()].filter((x) => grid!.has(x) && exp!.has(x) && prod!.has(x) && pv!.has(x)).sort((x, y) => x - y);
  let gridKwh = 0;
  let pvKwh = 0;
  for (let i = 1; i < ts.length; i++) {
    gridKwh += (grid!.get(ts[i]!)! * (ts[i]! - ts[i - 1]!)) / 3.6e9;
    pvKwh += (pv!.get(ts[i]!)! * (ts[i]! - ts[i - 1]!)) / 3.6e9;
  }
  const delta = (m: Map<number, number>) => m.get(ts.at(-1)!)! - m.get(ts[0]!)!;
  t.ok(ts.length >= 20, `${ts.length} ticks`);
  t.ok(Math.abs(delta(imp!) - delta(exp!) - gridKwh) < 2e-4, `import − export = ∫grid (${delta(imp!) - delta(exp!)} vs ${gridKwh} kWh)`);
  t.ok(Math.abs(delta(prod!) - pvKwh) < 2e-4, `production = ∫pv (${delta(prod!)} vs ${pvKwh} kWh)`);
  const energy = (await import('../../runtime/site/energy-roles.js')).classifyCounters(gw.gateway.registry.list(), {});
  t.same(
    energy.counters.filter((c) => c.id.startsWith('plant.')).map((c) => [c.id, c.role]),
    [
      ['plant.grid.energy_export', 'export'],
      ['plant.grid.energy_import', 'import'],
      ['plant.pv.energy', 'production'],
    ],
    'the Energy page finds the grid and PV counters',
  );
  const before = gw.gateway.store.latest('plant.grid.energy_import')!.v as number;
  const beforePv = gw.gateway.store.latest('plant.pv.energy')!.v as number;
  await gw.stop();

  const again = await startTestGateway(t, cfg, { dataDir: dir });
  t.equal(again.gateway.store.latest('plant.hvac.enabled')?.v, false, 'actuator state survives a restart');
  await eventually(() => (again.gateway.store.latest('plant.grid.energy_import')?.t ?? 0) > 0);
  t.ok((again.gateway.store.latest('plant.grid.energy_import')!.v as number) >= before, 'energy counter continues from the stored value');
  await eventually(() => (again.gateway.store.latest('plant.pv.energy')?.t ?? 0) > 0);
  t.ok((again.gateway.store.latest('plant.pv.energy')!.v as number) >= beforePv, 'so does the PV counter');
});

t.test('addPower: the grid meter measures other devices too (the demo chargers for load management)', async (t) => {
  const gw = await startTestGateway(t, {
    datapoints: [{ id: 'ev.cp1.1.power', kind: 'sensor', type: 'number', unit: 'W' }],
    adapters: [
      { id: 'quiet', type: 'simulated', interval: 100, prefix: 'quiet' },
      { id: 'site', type: 'simulated', interval: 100, prefix: 'plant', addPower: ['ev.cp1.1.power'] },
    ],
  });
  await gw.gateway.store.write([{ id: 'ev.cp1.1.power', t: Date.now(), v: 1_000_000 }]);
  const load = await eventually(async () => {
    const v = gw.gateway.store.latest('plant.load.power')?.v as number | undefined;
    return v !== undefined && v > 900_000 ? v : undefined;
  });
  t.ok(load! >= 1_000_000 - 5_000, `the charger's 1 MW is in the site load (${load} W)`);
  t.ok((gw.gateway.store.latest('quiet.load.power')?.v as number) < 100_000, 'a site without addPower does not see it');
});
