import t from 'tap';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig, loadConfigFile } from '../../runtime/config/load.js';
import { adapterTypes } from '../../adapters/index.js';
import { OutpostError } from '../../core/errors.js';
import { demoConfig } from '../../runtime/config/demo.js';
import { REPO_ROOT } from '../helpers/process.js';

function issuesOf(fn: () => unknown): Array<{ path: string; message: string }> {
  try {
    fn();
  } catch (err) {
    if (err instanceof OutpostError && err.code === 'CONFIG_INVALID') return err.details as Array<{ path: string; message: string }>;
    throw err;
  }
  throw new Error('expected CONFIG_INVALID');
}

t.test('an empty config gets the documented defaults', async (t) => {
  const c = validateConfig({}, adapterTypes);
  t.equal(c.gateway.id, 'outpost');
  t.equal(c.broker.mqtt.host, '127.0.0.1', 'broker listens on loopback by default');
  t.equal(c.http.host, '127.0.0.1', 'HTTP listens on loopback by default');
  t.equal(c.broker.anonymous, 'loopback');
  t.equal(c.auth.loopback, 'none', 'no credential-less role for HTTP: a proxy on this host would hand it to everyone');
  t.same(c.http.trustedProxies, [], 'no proxy is believed by default');
  t.equal(c.storage.sync, true, 'durable by default');
  t.same(c.adapters, []);
});

t.test('the demo config and the example file are valid', async (t) => {
  t.ok(validateConfig(demoConfig('/tmp/x'), adapterTypes));
  const c = await loadConfigFile(join(REPO_ROOT, 'outpost.example.yaml'), adapterTypes, {});
  t.ok(c.adapters.length > 0, 'example declares adapters');
});

t.test('every error is listed, each by its path', async (t) => {
  const issues = issuesOf(() =>
    validateConfig(
      {
        gateway: { id: 'Bad Id', timezone: 'Mars/Olympus' },
        http: { port: 'eighty', hots: 'x' },
        adapters: [
          { id: 'sim', type: 'simulated', interval: 'fast' },
          { id: 'x', type: 'nope' },
          { id: 'sim', type: 'simulated', typo: 1 },
          { id: 'sim', type: 'simulated' },
        ],
      },
      adapterTypes,
    ),
  );
  const paths = issues.map((i) => i.path).sort();
  t.same(
    paths,
    [
      'adapters.0.interval',
      'adapters.1.type',
      'adapters.2.id',
      'adapters.2.typo',
      'adapters.3.id',
      'gateway.id',
      'gateway.timezone',
      'http.hots',
      'http.port',
    ].sort(),
  );
  t.match(issues.find((i) => i.path === 'http.hots')!.message, /unknown key "hots"/);
  t.match(issues.find((i) => i.path === 'adapters.1.type')!.message, /unknown adapter type "nope".*simulated/);
  t.match(issues.find((i) => i.path === 'gateway.timezone')!.message, /IANA/);
  t.match(issues.find((i) => i.path === 'adapters.2.id')!.message, /duplicate/);
});

t.test('unknown top-level keys are errors', async (t) => {
  const issues = issuesOf(() => validateConfig({ brokr: {} }, adapterTypes));
  t.match(issues[0], { path: 'brokr', message: /unknown key "brokr"/ });
});

t.test('plain-text passwords are refused in broker.users', async (t) => {
  const issues = issuesOf(() => validateConfig({ broker: { users: [{ username: 'meter', passwordHash: 'hunter2' }] } }, adapterTypes));
  t.match(issues[0], { path: 'broker.users.0.passwordHash', message: /outpost hash-password/ });
});

t.test('OUTPOST_* env vars override keys, case-insensitively, with YAML scalars', async (t) => {
  const c = validateConfig({ http: { port: 8080 } }, adapterTypes, {
    env: {
      OUTPOST_HTTP_PORT: '9090',
      OUTPOST_LOG_LEVEL: 'debug',
      OUTPOST_DATADIR: '/var/lib/outpost',
      OUTPOST_BROKER_MQTT_ENABLED: 'false',
      OUTPOST_CONFIG: 'ignored.yaml',
    },
  });
  t.equal(c.http.port, 9090);
  t.equal(c.log.level, 'debug');
  t.equal(c.dataDir, '/var/lib/outpost');
  t.equal(c.broker.mqtt.enabled, false);
});

t.test('an env var that names no key is an error, not ignored', async (t) => {
  const issues = issuesOf(() => validateConfig({}, adapterTypes, { env: { OUTPOST_HTTP_PROT: '1' } }));
  t.match(issues[0], { path: 'env OUTPOST_HTTP_PROT', message: /does not name/ });
  const bad = issuesOf(() => validateConfig({}, adapterTypes, { env: { OUTPOST_HTTP_PORT: 'abc' } }));
  t.match(bad[0], { path: 'http.port' });
});

t.test("the project's own test and benchmark switches in the environment are not configuration", async (t) => {
  const env = {
    OUTPOST_TEST_FROM_SOURCE: '1',
    OUTPOST_CHROMIUM: '/usr/bin/chromium',
    OUTPOST_BENCH_CLI: 'x',
    OUTPOST_SOAK_MINUTES: '1',
    OUTPOST_FUZZ_SEED: '2',
    OUTPOST_PROOF_LONG: '1',
  };
  const c = validateConfig({}, adapterTypes, { env });
  t.equal(c.http.port, 8080, 'started as if they were not there');
  const typo = issuesOf(() => validateConfig({}, adapterTypes, { env: { OUTPOST_TESTS: '1' } }));
  t.match(typo[0], { path: 'env OUTPOST_TESTS', message: /does not name/ }, 'only the exact prefixes are reserved');
});

t.test('config files: missing file, YAML syntax error, duplicate keys', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-cfg-'));
  await t.rejects(loadConfigFile(join(dir, 'none.yaml'), adapterTypes, {}), { code: 'CONFIG_NOT_FOUND' });
  await writeFile(join(dir, 'bad.yaml'), 'http:\n  port: 80\n   host: x\n');
  await t.rejects(loadConfigFile(join(dir, 'bad.yaml'), adapterTypes, {}), { code: 'CONFIG_INVALID', message: /line \d+/ });
  await writeFile(join(dir, 'dup.yaml'), 'http:\n  port: 80\n  port: 81\n');
  await t.rejects(loadConfigFile(join(dir, 'dup.yaml'), adapterTypes, {}), { code: 'CONFIG_INVALID' });
  await writeFile(join(dir, 'list.yaml'), '- a\n- b\n');
  await t.rejects(loadConfigFile(join(dir, 'list.yaml'), adapterTypes, {}), { code: 'CONFIG_INVALID', message: /mapping/ });
});

t.test('http.trustedProxies: addresses and CIDRs only, each bad entry named', async (t) => {
  t.same(validateConfig({ http: { trustedProxies: ['127.0.0.1', '::1', '10.0.0.0/8', 'fd00::/8'] } }, adapterTypes).http.trustedProxies, [
    '127.0.0.1',
    '::1',
    '10.0.0.0/8',
    'fd00::/8',
  ]);
  const issues = issuesOf(() => validateConfig({ http: { trustedProxies: ['nginx', '10.0.0.0/33', '127.0.0.1/8/1', '::1/129'] } }, adapterTypes));
  t.same(
    issues.map((i) => i.path),
    ['http.trustedProxies.0', 'http.trustedProxies.1', 'http.trustedProxies.2', 'http.trustedProxies.3'],
  );
  t.match(issues[0]!.message, /"nginx" is not an IP address or CIDR/);
  t.match(issues[1]!.message, /prefix length out of range \(0–32\)/);
});
