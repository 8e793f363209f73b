import t, { type Test } from 'tap';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { isOutpostError } from '../../core/errors.js';
import { loadCentralConfig, validateCentralConfig } from '../../central/config.js';
import { GatewayDirectory } from '../../central/gateways.js';
import { REPO_ROOT, spawnOutpost } from '../helpers/process.js';
import { tempDir } from '../helpers/teardown.js';

function refused(t: Test, raw: unknown, says: RegExp, what: string, env?: NodeJS.ProcessEnv): void {
  try {
    validateCentralConfig(raw, env ? { env } : {});
    t.fail(`${what}: accepted`);
  } catch (err) {
    t.ok(isOutpostError(err, 'CONFIG_INVALID'), `${what}: CONFIG_INVALID`);
    t.match((err as Error).message, says, `${what}: names it`);
  }
}

t.test('central.example.yaml is valid, and its commented sections too', async (t) => {
  const text = await readFile(join(REPO_ROOT, 'central.example.yaml'), 'utf8');
  const config = validateCentralConfig(parse(text));
  t.equal(config.database, 'level');
  t.equal(config.http.port, 8090);
  t.equal(config.http.host, '127.0.0.1', 'loopback by default');
  t.same(config.http.tokens, [], 'no API token by default: the API answers 401');
  t.equal(config.level.cacheDatapoints, 200_000, 'the embedded store keeps a fleet of 200,000 datapoints warm (a gateway: 20,000)');
  // The commented examples, uncommented: what an operator will do first.
  const raw = parse(text) as { ingest: Record<string, unknown>; gateways: unknown[] };
  raw.ingest.mqtt = { url: 'mqtts://broker.example.com:8883', clientId: 'outpost-central-1', username: 'central', password: 'x' };
  raw.ingest.rockblock = { verify: 'none' };
  (raw as Record<string, unknown>).level = { cacheDatapoints: 50_000 };
  raw.gateways = [
    {
      id: 'site-042',
      name: 'Pump station 42',
      tags: ['north', 'pumps'],
      location: { lat: 52.39, lon: 0.29 },
      auth: { type: 'hmac', secret: '0123456789abcdef0123' },
      iridium: {
        imei: '300234010753370',
        datapoints: [
          { id: 'tank.level', decimals: 2 },
          { id: 'tank.overflow', type: 'boolean', alarm: true },
        ],
      },
    },
  ];
  const full = validateCentralConfig(raw);
  t.equal(full.level.cacheDatapoints, 50_000);
  t.equal(full.ingest.mqtt?.group, 'outpost-central');
  t.equal(full.ingest.mqtt?.topicRoot, 'sites/+');
  t.equal(full.ingest.mqtt?.protocolVersion, 5);
  t.equal(full.gateways[0]?.iridium?.timeResolutionMs, 1000);
  const directory = await GatewayDirectory.load(full);
  t.ok(directory.byModem('300234010753370')?.codec, 'the codec table loads');
});

t.test('bad values name their path', async (t) => {
  refused(t, { htpp: {} }, /htpp: unknown key "htpp"/, 'a typo');
  refused(t, { http: { port: 'eighty' } }, /http\.port/, 'a port that is no number');
  refused(t, { gateways: [{ id: 'Site 1' }] }, /gateways\.0\.id/, 'a gateway id');
  refused(t, { level: { cacheDatapoints: 10 } }, /level\.cacheDatapoints/, 'a cache too small to matter');
  refused(t, { level: { cacheDatapoint: 100_000 } }, /level\.cacheDatapoint: unknown key "cacheDatapoint"/, 'a typo in level');
  refused(t, { gateways: [{ id: 'a' }, { id: 'a' }] }, /gateways\.1\.id: gateway "a" is listed twice/, 'a gateway twice');
  refused(
    t,
    { gateways: [{ id: 'a', auth: { type: 'hmac' } }] },
    /gateways\.0\.auth: hmac needs exactly one of secret or secretFile/,
    'hmac without its secret',
  );
  refused(t, { gateways: [{ id: 'a', auth: { type: 'hmac', secret: 'short' } }] }, /at least 16 characters/, 'a short secret');
  refused(t, { gateways: [{ id: 'a', auth: { type: 'bearer', tokenHash: 'plain-token' } }] }, /sha256:<64 hex>/, 'a token instead of its hash');
  const imei = { imei: '300234010753370', datapoints: [{ id: 'x' }] };
  refused(
    t,
    {
      gateways: [
        { id: 'a', iridium: imei },
        { id: 'b', iridium: imei },
      ],
    },
    /gateways\.1\.iridium\.imei: IMEI also belongs to gateways\.0/,
    'one modem for two gateways',
  );
  refused(t, { gateways: [{ id: 'a', iridium: { imei: '12', datapoints: [{ id: 'x' }] } }] }, /15-digit IMEI/, 'an IMEI');
  refused(
    t,
    { gateways: [{ id: 'a', iridium: { imei: '300234010753370', datapoints: [{ id: 'x' }, { id: 'x' }] } }] },
    /datapoints\.1\.id: "x" is listed twice/,
    'a datapoint twice',
  );
  refused(t, { database: 'mysql://x' }, /database: expected level/, 'an unknown database');
  refused(t, { database: 'http://central:8090' }, /forward: a receiver forwarding/, 'a receiver without its token');
  refused(t, { ingest: { mqtt: { url: 'http://broker', clientId: 'a' } } }, /ingest\.mqtt\.url/, 'an MQTT URL');
  refused(
    t,
    { ingest: { mqtt: { url: 'mqtt://broker', clientId: 'a', topicRoot: 'sites/#' } } },
    /topicRoot: exactly one "\+"/,
    'a topic root without its gateway level',
  );
  refused(t, { ingest: { mqtt: { url: 'mqtt://broker' } } }, /clientId/, 'an MQTT receiver without its stable client id');
  refused(t, { ingest: { rockblock: {} } }, /ingest\.rockblock\.jwt: verify: jwt needs jwt\.publicKeyFile/, 'JWT verification without the key');
});

t.test('OUTPOST_CENTRAL_* overrides', async (t) => {
  const c = validateCentralConfig({}, { env: { OUTPOST_CENTRAL_HTTP_PORT: '9100', OUTPOST_CENTRAL_LOG_LEVEL: 'debug', OUTPOST_HTTP_PORT: '1' } });
  t.equal(c.http.port, 9100);
  t.equal(c.log.level, 'debug');
  const g = validateCentralConfig({ gateways: [{ id: 'a' }] }, { env: { OUTPOST_CENTRAL_GATEWAYS_0_NAME: 'Site A' } });
  t.equal(g.gateways[0]?.name, 'Site A', 'into a list');
  refused(t, {}, /env OUTPOST_CENTRAL_HTTP_PROT: does not name a configuration key/, 'a variable that names no key', { OUTPOST_CENTRAL_HTTP_PROT: '1' });
});

t.test('a file: YAML errors and missing secret files', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'central.yaml');
  await writeFile(file, 'http: { port: [\n');
  await t.rejects(loadCentralConfig(file, {}), { code: 'CONFIG_INVALID', message: /not valid YAML/ });
  await t.rejects(loadCentralConfig(join(dir, 'none.yaml'), {}), { code: 'CONFIG_NOT_FOUND' });
  await writeFile(file, `gateways:\n  - id: a\n    auth: { type: hmac, secretFile: ${join(dir, 'missing')} }\n`);
  const config = await loadCentralConfig(file, {});
  await t.rejects(GatewayDirectory.load(config), { code: 'CONFIG_INVALID', message: /gateways\.0\.auth\.secretFile: .*missing cannot be read/ });
});

t.test('outpost central -c FILE: a bad config exits 2 naming the path, before anything starts', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'central.yaml');
  await writeFile(file, `dataDir: ${join(dir, 'data')}\nhttp: { port: 0 }\ngateways: [{ id: Bad-Id }]\n`);
  const p = spawnOutpost(['central', '-c', file]);
  const { code } = await p.exited;
  t.equal(code, 2, 'exit 2');
  t.match(p.stderr(), /gateways\.0\.id: expected the gateway id/, 'the path and what is expected');
  t.notOk(existsSync(join(dir, 'data')), 'no data dir made');
  const none = spawnOutpost(['central']);
  t.equal((await none.exited).code, 2, 'no config named: exit 2');
  t.match(none.stderr(), /-c central\.yaml/);
});
