/**
 * The power flow (runtime/site/flow.ts): the balance from the latest readings, stale flags,
 * "other loads" never negative but flagged; the browser's twin of the formula
 * (runtime/dashboard/public/flow.js) gives the same answer; GET /api/site and
 * /api/site/flow on a real gateway (LevelDB, an OCPP adapter's connector found by id).
 */
import t from 'tap';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { DatapointSchema, type Datapoint } from '../../../core/datapoint.js';
import { siteSchema } from '../../../runtime/site/config.js';
import { resolveRoles } from '../../../runtime/site/roles.js';
import { balanceOf, siteFlow, STALE_AFTER_MS, type Balance, type FlowNode, type SiteFlow } from '../../../runtime/site/flow.js';
import { mulberry32 } from '../../helpers/rng.js';
import { startTestGateway } from '../../helpers/gateway.js';

interface BrowserFlow {
  balanceOf(nodes: Array<Pick<FlowNode, 'role' | 'w'>>): Balance;
  formatPower(w: number | null): { num: string; unit: string };
  directionOf(role: string, w: number | null): string;
}
/** The dashboard's module, as the browser loads it (plain ES module; its DOM use is inside functions). */
const browser = (): Promise<BrowserFlow> => import(pathToFileURL(join(process.cwd(), 'runtime/dashboard/public/flow.js')).href) as Promise<BrowserFlow>;

const dp = (id: string, extra: Partial<Datapoint> = {}): Datapoint => DatapointSchema.parse({ id, adapter: 'mqtt', unit: 'W', ...extra });
const NOW = Date.UTC(2025, 5, 1, 12);
const at = (w: number, ageMs = 1000, q?: 'stale' | 'bad') => ({ v: q ? null : w, t: NOW - ageMs, ...(q ? { q } : {}) });

function flowOf(power: unknown, dps: Datapoint[], readings: Record<string, { v: unknown; t: number; q?: 'stale' | 'bad' }>): SiteFlow {
  const roles = resolveRoles(siteSchema.parse({ power }).power, dps, { adapterType: () => undefined });
  return siteFlow(roles, (id) => readings[id] as never, NOW);
}

t.test('consumption = grid + pv + battery; other = consumption − chargers − loads', async (t) => {
  const f = flowOf(
    { pv: [{ datapoint: 'roof.pv.power' }], chargers: ['ev.a.power', 'ev.b.power'], loads: [{ datapoint: 'hp.power', label: 'Heat pump' }] },
    [dp('site.grid.power'), dp('roof.pv.power', { unit: 'kW' }), dp('home.battery.power'), dp('ev.a.power'), dp('ev.b.power', { unit: 'kW' }), dp('hp.power')],
    {
      'site.grid.power': at(-2000),
      'roof.pv.power': at(6.5),
      'home.battery.power': at(-1000),
      'ev.a.power': at(1500),
      'ev.b.power': at(0.7),
      'hp.power': at(300),
    },
  );
  t.same(f.balance, {
    gridW: -2000,
    pvW: 6500,
    batteryW: -1000,
    chargersW: 2200,
    loadsW: 300,
    otherW: 1000,
    consumptionW: 3500,
    otherNegative: false,
    excessW: 0,
    missing: 0,
  });
  t.same(
    f.nodes.map((n) => [n.role, n.id, n.label, n.w, n.stale]),
    [
      ['grid', 'site.grid.power', 'Grid', -2000, false],
      ['pv', 'roof.pv.power', 'PV', 6500, false],
      ['battery', 'home.battery.power', 'Battery', -1000, false],
      ['charger', 'ev.a.power', 'ev.a.power', 1500, false],
      ['charger', 'ev.b.power', 'ev.b.power', 700, false],
      ['load', 'hp.power', 'Heat pump', 300, false],
    ],
  );
  t.equal(f.t, NOW);
  t.equal(f.staleAfterMs, STALE_AFTER_MS);
});

t.test('consumers above the consumption: other loads 0, flagged with the excess', async (t) => {
  const f = flowOf({ chargers: ['ev.a.power'] }, [dp('site.grid.power'), dp('ev.a.power')], { 'site.grid.power': at(1000), 'ev.a.power': at(1400) });
  t.match(f.balance, { consumptionW: 1000, chargersW: 1400, otherW: 0, otherNegative: true, excessW: 400 });
});

t.test('stale, bad and missing readings; invert; −0 never shown', async (t) => {
  const f = flowOf(
    {
      grid: { datapoint: 'meter.power', invert: true },
      pv: ['a.pv.power', 'b.pv.power', 'c.pv.power'],
      battery: ['x.battery.power'],
      batterySoc: ['x.battery.soc'],
    },
    [dp('meter.power', { unit: 'kW' }), dp('a.pv.power'), dp('b.pv.power'), dp('c.pv.power'), dp('x.battery.power'), dp('x.battery.soc', { unit: '%' })],
    {
      'meter.power': at(0),
      'a.pv.power': at(800, STALE_AFTER_MS + 1),
      'b.pv.power': at(0, 10, 'bad'),
      'x.battery.power': at(250, STALE_AFTER_MS),
      'x.battery.soc': at(64),
    },
  );
  const byId = Object.fromEntries(f.nodes.map((n) => [n.id, n]));
  t.same([byId['meter.power']!.w, Object.is(byId['meter.power']!.w, -0)], [0, false], 'an inverted 0 is 0, not −0');
  t.match(byId['a.pv.power'], { w: 800, stale: true, t: NOW - STALE_AFTER_MS - 1 }, 'older than the bound: stale, still added up');
  t.match(byId['b.pv.power'], { w: null, stale: true, t: NOW - 10 }, 'quality bad: no value, stale');
  t.match(byId['c.pv.power'], { w: null, stale: true, t: null }, 'never read');
  t.match(byId['x.battery.power'], { w: 250, stale: false }, 'exactly at the bound: not stale yet');
  t.match(f.balance, { pvW: 800, batteryW: 250, consumptionW: 1050, missing: 2 });
  t.same(f.socs, [{ id: 'x.battery.soc', battery: 'x.battery.power', v: 64, t: NOW - 1000, stale: false }]);
  const inverted = flowOf({ grid: { datapoint: 'meter.power', invert: true } }, [dp('meter.power', { unit: 'kW' })], { 'meter.power': at(1.25) });
  t.equal(inverted.nodes[0]!.w, -1250, 'kW and invert: −1250 W (exporting)');
  const text = flowOf({ grid: 'meter.power' }, [dp('meter.power', { type: 'string', unit: undefined })], { 'meter.power': { v: 'n/a', t: NOW } });
  t.match(text.nodes[0], { w: null, stale: true, problem: 'a string, not a number' });
});

t.test('the browser computes the same balance as the gateway', async (t) => {
  const web = await browser();
  const seed = Number(process.env.SEED ?? Date.now() % 1e9);
  t.comment(`seed ${seed} (SEED=${seed} replays it)`);
  const rnd = mulberry32(seed);
  const roles = ['grid', 'pv', 'battery', 'load', 'charger'] as const;
  let negative = 0;
  for (let i = 0; i < 500; i++) {
    const nodes = Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => ({
      role: roles[Math.floor(rnd() * roles.length)]!,
      // Readings as they arrive: kW scaled (fractions), W, negatives, and no reading.
      w: rnd() < 0.1 ? null : Math.round((rnd() - 0.35) * 40_000) / (rnd() < 0.5 ? 1 : 7),
    }));
    const server = balanceOf(nodes);
    t.same(web.balanceOf(nodes), server, `case ${i}`, { diagnostic: false });
    if (server.otherNegative) negative++;
  }
  t.ok(negative > 0, `the cases include flagged negative other loads (${negative})`);
  t.same(
    [1, 999.4, 999.6, -2280, 12_345, 99_949, 99_950, 140_000, null].map((w) => web.formatPower(w)),
    [
      { num: '1', unit: 'W' },
      { num: '999', unit: 'W' },
      { num: '1.0', unit: 'kW' },
      { num: '-2.3', unit: 'kW' },
      { num: '12.3', unit: 'kW' },
      { num: '99.9', unit: 'kW' },
      { num: '100', unit: 'kW' },
      { num: '140', unit: 'kW' },
      { num: '—', unit: '' },
    ],
    'figures: W below 1 kW, kW with one decimal below 100 kW',
  );
  t.same(
    [
      ['grid', 500],
      ['grid', -500],
      ['grid', 5],
      ['battery', 500],
      ['battery', -500],
      ['pv', 500],
      ['charger', 500],
      ['charger', null],
    ].map(([role, w]) => web.directionOf(role as string, w as number | null)),
    ['import', 'export', 'idle', 'discharging', 'charging', 'producing', 'charging', 'no reading'],
  );
});

t.test('GET /api/site and /api/site/flow on a running gateway', async (t) => {
  const gw = await startTestGateway(t, {
    datapoints: [
      { id: 'site.grid.power', kind: 'sensor', type: 'number', unit: 'W' },
      { id: 'roof.pv.power', kind: 'sensor', type: 'number', unit: 'kW' },
      { id: 'hp.power', kind: 'sensor', type: 'number', unit: 'W', description: 'Heat pump' },
    ],
    adapters: [{ id: 'ev', type: 'ocpp' }],
    site: { power: { loads: ['hp.power'] } },
  });
  const g = gw.gateway;
  // A connector the OCPP adapter would register when its charger connects (adapters/ocpp/mapping.ts).
  await g.registry.register({ id: 'ev.cp7.1.power', adapter: 'ev', type: 'number', unit: 'W', meta: { charger: 'CP7', connector: 1 } });
  const now = Date.now();
  await g.store.write([
    { id: 'site.grid.power', t: now - 500, v: 4200 },
    { id: 'roof.pv.power', t: now - 500, v: 1.5 },
    { id: 'hp.power', t: now - 500, v: 900 },
    { id: 'ev.cp7.1.power', t: now - 500, v: 3700 },
  ]);
  const site = (await (await fetch(`${gw.httpUrl}/api/site`)).json()) as { timezone: string; power: { power: Array<Record<string, unknown>>; roles: object } };
  t.equal(site.timezone, 'UTC');
  t.same(
    site.power.power.map((p) => [p.role, p.id, p.source, p.why]),
    [
      ['grid', 'site.grid.power', 'found', 'found by id: ends in grid.power'],
      ['pv', 'roof.pv.power', 'found', 'found by id: word "pv", ends in .power'],
      ['charger', 'ev.cp7.1.power', 'found', 'found: OCPP connector 1 of charger CP7 (adapter ev)'],
      ['load', 'hp.power', 'configured', 'site.power.loads[0]'],
    ],
    'what is drawn and why',
  );
  t.match(site.power.roles, { grid: 'found', load: 'configured', charger: 'found', battery: 'none' });
  const flow = (await (await fetch(`${gw.httpUrl}/api/site/flow`)).json()) as SiteFlow;
  t.match(flow.balance, { gridW: 4200, pvW: 1500, consumptionW: 5700, chargersW: 3700, loadsW: 900, otherW: 1100, otherNegative: false });
  t.ok(Math.abs(flow.t - Date.now()) < 60_000, 'the answer carries the gateway time');
  t.same(
    flow.nodes.map((n) => [n.id, n.label, n.w, n.stale]),
    [
      ['site.grid.power', 'Grid', 4200, false],
      ['roof.pv.power', 'PV', 1500, false],
      ['ev.cp7.1.power', 'CP7 #1', 3700, false],
      ['hp.power', 'Heat pump', 900, false],
    ],
  );
});
