import t from 'tap';
import mqtt from 'mqtt';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnOutpost, processYamlHead } from '../helpers/process.js';
import { eventually } from '../helpers/gateway.js';
import { localApi } from '../helpers/local-api.js';
import { tempDir, type Teardown } from '../helpers/teardown.js';

async function tempConfig(t: Teardown, extra = ''): Promise<{ dir: string; file: string }> {
  const dir = await tempDir(t, 'outpost-e2e-');
  const file = join(dir, 'outpost.yaml');
  await writeFile(
    file,
    `${processYamlHead({ id: 'e2e', timezone: 'Europe/Berlin', dataDir: join(dir, 'data') })}adapters:
  - { id: site, type: simulated, interval: 200 }
${extra}`,
  );
  return { dir, file };
}

function mqttPortOf(stdout: string): number {
  const m = /MQTT on 127\.0\.0\.1:(\d+)/.exec(stdout);
  if (!m) throw new Error(`no MQTT port in: ${stdout}`);
  return Number(m[1]);
}

t.test('the real process: publish over MQTT, read over REST, SIGKILL, restart, data still there', async (t) => {
  const { file, dir } = await tempConfig(t);
  // The token of `outpost api`, re-read at every call: each start makes a new one.
  const api = localApi(join(dir, 'data'));
  const first = spawnOutpost(['start', '-c', file]);
  t.teardown(() => first.child.kill('SIGKILL'));
  const url = await first.ready;
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPortOf(first.stdout())}`, { reconnectPeriod: 0 });
  const base = Date.now() - 10_000;
  for (let i = 0; i < 20; i++) {
    await client.publishAsync('outpost/dp/e2e.probe/value', JSON.stringify({ v: i, t: base + i }), { qos: 1 });
  }
  await client.endAsync();
  t.equal((await fetch(`${url}/api/datapoints`)).status, 401, 'no credentials, no data, even from this host');
  const read = async () => (await (await api(`/api/datapoints/e2e.probe/values?from=${base}&to=${base + 100}`)).json()) as { values: Array<{ v: number }> };
  t.same(
    (await read()).values.map((p) => p.v),
    [...Array(20).keys()],
    'REST returns what MQTT published',
  );
  const live = await eventually(async () => {
    const r = (await (await api(`/api/datapoints/site.grid.power`)).json()) as { latest: { t: number } | null };
    return r.latest;
  });
  t.ok(live!.t > base, 'the simulated adapter produces live values');

  first.child.kill('SIGKILL');
  t.equal((await first.exited).signal, 'SIGKILL');

  const second = spawnOutpost(['start', '-c', file]);
  t.teardown(() => second.child.kill('SIGKILL'));
  await second.ready;
  t.same(
    (await read()).values.map((p) => p.v),
    [...Array(20).keys()],
    'every acknowledged value survived kill -9',
  );
  const meta = (await (await api(`/api/datapoints/e2e.probe`)).json()) as { adapter: string };
  t.equal(meta.adapter, 'mqtt', 'auto-registered datapoint survived too');
  const energy = (await (await api(`/api/datapoints/site.grid.energy_import/values?order=desc&limit=2`)).json()) as { values: Array<{ v: number }> };
  t.ok(energy.values[0]!.v >= energy.values[1]!.v, 'the simulated energy counter continues, never goes back');

  second.child.kill('SIGTERM');
  const exit = await second.exited;
  t.equal(exit.code, 0, 'SIGTERM: graceful shutdown exits 0');
  t.match(second.stdout(), /shutting down/);
  t.match(second.stdout(), /"msg":"stopped"/);
  t.notOk(existsSync(join(dir, 'data', 'auth', 'local-access.json')), 'a graceful stop removes the local access file (its token is dead)');
});

t.test('outpost check: exit code and every error named by path', async (t) => {
  const { dir, file } = await tempConfig(t);
  const ok = spawnOutpost(['check', '-c', file]);
  t.equal((await ok.exited).code, 0);
  t.match(ok.stdout(), /ok \(1 adapter/);

  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, 'http:\n  port: 99999\nadapters:\n  - { id: site, type: simulated, interval: soon }\n  - { id: x, type: modbuss }\nloglevel: debug\n');
  const res = spawnOutpost(['check', '-c', bad]);
  t.equal((await res.exited).code, 2);
  t.match(res.stderr(), /http\.port: /);
  t.match(res.stderr(), /adapters\.0\.interval: /);
  t.match(res.stderr(), /adapters\.1\.type: unknown adapter type "modbuss"/);
  t.match(res.stderr(), /loglevel: unknown key "loglevel"/);

  const start = spawnOutpost(['start', '-c', bad]);
  t.equal((await start.exited).code, 2, 'start refuses a bad config the same way');
  const missing = spawnOutpost(['start', '-c', join(dir, 'none.yaml')]);
  t.equal((await missing.exited).code, 2);
  t.match(missing.stderr(), /cannot read config file/);
  const envTypo = spawnOutpost(['check', '-c', file], { env: { OUTPOST_HTTP_PROT: '1' } });
  t.equal((await envTypo.exited).code, 2);
  t.match(envTypo.stderr(), /OUTPOST_HTTP_PROT/);
});

t.test('outpost --version, --help, unknown command, busy port', async (t) => {
  const v = spawnOutpost(['--version']);
  t.equal((await v.exited).code, 0);
  t.match(v.stdout(), /^\d+\.\d+\.\d+/);
  const h = spawnOutpost(['--help']);
  t.equal((await h.exited).code, 0);
  t.match(h.stdout(), /outpost start -c outpost.yaml/);
  const u = spawnOutpost(['frobnicate']);
  t.equal((await u.exited).code, 2);
  t.match(u.stderr(), /unknown command "frobnicate"/);

  const { file } = await tempConfig(t);
  const a = spawnOutpost(['start', '-c', file]);
  t.teardown(() => a.child.kill('SIGKILL'));
  await a.ready;
  const port = mqttPortOf(a.stdout());
  const b = spawnOutpost(['start', '-c', file], {
    env: { OUTPOST_BROKER_MQTT_PORT: String(port), OUTPOST_DATADIR: join(tmpdir(), `outpost-busy-${process.pid}`) },
  });
  t.equal((await b.exited).code, 1, 'a port in use is a clear runtime failure');
  t.match(b.stdout() + b.stderr(), /EADDRINUSE/);
});
