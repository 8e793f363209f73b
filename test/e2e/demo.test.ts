import t from 'tap';

import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { outpostCommand, REPO_ROOT, spawnOutpost } from '../helpers/process.js';
import { localApi } from '../helpers/local-api.js';
import { eventually } from '../helpers/gateway.js';
import { tempDir } from '../helpers/teardown.js';

// What a newcomer gets from `npm start`: the demo with every simulated device, live values over REST.
t.test('outpost demo: simulated site, Modbus meter, two charging cars, BMS files and Iridium modem, live over REST', async (t) => {
  const dir = await tempDir(t, 'outpost-demo-');
  const dataDir = join(dir, 'data');
  const demo = spawnOutpost(['demo', '--data-dir', dataDir], { env: { OUTPOST_HTTP_PORT: '0', OUTPOST_BROKER_MQTT_PORT: '0' } });
  t.teardown(() => demo.child.kill('SIGKILL'));
  const url = await demo.ready;
  // As the README's examples: local tools use the token only the service user can read.
  const api = localApi(dataDir);
  const latest = async (id: string) =>
    ((await (await api(`/api/datapoints/${id}`)).json()) as { latest?: { v: unknown; t: number } | null }).latest ?? undefined;

  const first = await eventually(() => latest('site.grid.power'), 10_000);
  await eventually(async () => ((await latest('site.grid.power'))?.t ?? 0) > first!.t, 10_000);
  t.pass('the simulated site meter produces live values');
  t.type((await eventually(() => latest('meter.main.power'), 15_000))!.v, 'number', 'the Modbus SDM630 simulator is polled');
  t.equal((await eventually(() => latest('ev.cp1.online'), 15_000))!.v, true, 'simulated charger CP1 is connected over OCPP');
  await eventually(async () => (await latest('ev.cp1.1.status'))?.v === 'Charging', 20_000);
  t.pass('a session is charging');
  // The README: two charge points "that plug in a car each". Both must charge, not just start:
  // with one tag for both cars, CP2's session was answered ConcurrentTx and stopped within 20 ms.
  const sessionsOf = async (charger: string) =>
    (
      (await (await api(`/api/charging/sessions?charger=${charger}`)).json()) as {
        sessions: Array<{ id: number; idTag: string; authorization: string; stop?: number }>;
      }
    ).sessions;
  await eventually(async () => (await sessionsOf('CP2')).length > 0, 25_000);
  await new Promise((r) => setTimeout(r, 2000)); // a refused session is stopped in milliseconds; give it time to show
  const sessions = { CP1: await sessionsOf('CP1'), CP2: await sessionsOf('CP2') };
  for (const [charger, list] of Object.entries(sessions)) {
    t.match(list, [{ authorization: 'Accepted', stop: undefined }], `${charger}: one session, accepted and still open`);
    t.equal(list.length, 1, `${charger}: no second (refused) session`);
  }
  t.not(sessions.CP1[0]?.idTag, sessions.CP2[0]?.idTag, 'each car has its own id tag');
  for (const key of ['cp1', 'cp2']) {
    // On a timeout the assertions below say what is missing.
    await eventually(
      async () => (await latest(`ev.${key}.1.status`))?.v === 'Charging' && ((await latest(`ev.${key}.1.allocated_current`))?.v as number) > 0,
      15_000,
    ).catch(() => undefined);
    t.equal((await latest(`ev.${key}.1.status`))?.v, 'Charging', `${key}: connector 1 is Charging`);
    const allocated = (await latest(`ev.${key}.1.allocated_current`))?.v;
    t.ok(typeof allocated === 'number' && allocated > 0, `${key}: load management grants it current (${String(allocated)} A)`);
  }
  // The simulated report has ~1 % gaps ('No Data', stored as null), so its newest cell may be one:
  // look for numbers among what the import stored, not only at the newest reading.
  await eventually(() => latest('bms.outdoor.temperature'), 20_000);
  const imported = (
    (await (await api('/api/datapoints/bms.outdoor.temperature/values?from=0&order=desc&limit=1000')).json()) as { values: Array<{ v: unknown }> }
  ).values;
  t.ok(
    imported.some((r) => typeof r.v === 'number'),
    `a simulated Insight report was imported (${imported.length} readings)`,
  );
  t.type((await eventually(() => latest('site.pv.self_supply'), 20_000))!.v, 'number', 'the Node-RED demo flow derives a datapoint');
  // The simulated RockBLOCK (serialport mock binding) answers +CSQ; the spend starts at 0 credits.
  t.equal((await eventually(() => latest('iridium.signal'), 15_000))!.v, 4, 'the Iridium modem simulator reports its signal');
  // 0 at start, 1 once CP1's "online" alarm has gone out: within the demo's daily budget of 20 either way.
  const credits = (await eventually(() => latest('iridium.credits_today'), 15_000))!.v;
  t.ok(typeof credits === 'number' && credits >= 0 && credits <= 20, `the Iridium credit counter is published (${String(credits)})`);
  t.match(demo.stdout(), /First start: dashboard login "admin", password \S+/, 'the first admin password is printed once');
  const page = await fetch(`${url}/`);
  t.equal(page.status, 200);
  t.match(await page.text(), /<html/i, 'the dashboard is served');
  t.equal((await fetch(`${url}/flows/`, { headers: { origin: url } })).status, 401, 'the Node-RED editor needs a login');
  t.equal(
    (await fetch(`${url}/api/datapoints`)).status,
    401,
    'a request from this host without credentials gets nothing (a proxy here would make every stranger local)',
  );
  const { command, args } = outpostCommand(['api', 'GET', '/api/datapoints/site.grid.power', '--data-dir', dataDir]);
  const cli = await promisify(execFile)(command, args, { cwd: REPO_ROOT });
  t.equal((JSON.parse(cli.stdout) as { id: string }).id, 'site.grid.power', '`outpost api GET ...` reads the API as the local admin');
  const adapters = ((await (await api(`/api/adapters`)).json()) as { items: Array<{ id: string; state: string }> }).items;
  t.same(Object.fromEntries(adapters.map((a) => [a.id, a.state])), {
    site: 'running',
    insight: 'running',
    plugs: 'running',
    modbus: 'running',
    chargers: 'running',
    iridium: 'running',
  });

  demo.child.kill('SIGTERM');
  t.equal((await demo.exited).code, 0, 'stops cleanly');
});
