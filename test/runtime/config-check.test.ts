import t, { type Test } from 'tap';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { validateConfig } from '../../runtime/config/load.js';
import { checkConfig } from '../../runtime/config/check.js';
import { adapterTypes } from '../../adapters/index.js';
import { REPO_ROOT, spawnOutpost } from '../helpers/process.js';
import { CHARGERS_DIR, loadChargerProfiles } from '../../adapters/ocpp/chargers.js';
import { DEVICES_DIR, loadTemplates } from '../../adapters/modbus/templates.js';
import { loadSunSpec } from '../../adapters/modbus/sunspec.js';
import { parseTemplate } from '../../adapters/modbus/templates.js';

/**
 * `outpost check` refuses what `start` refuses (issue 23): the same checks, the same
 * messages, exit 2 — and start refuses before it creates anything.
 */

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-check-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function cli(args: string[], cwd?: string): Promise<{ code: number | null; out: string; err: string }> {
  const p = spawnOutpost(args, cwd ? { cwd } : {});
  const { code } = await p.exited;
  return { code, out: p.stdout(), err: p.stderr() };
}

async function issues(raw: Record<string, unknown>, cwd = REPO_ROOT): Promise<Array<{ path: string; message: string }>> {
  return checkConfig(validateConfig(raw, adapterTypes), adapterTypes, { cwd });
}

const MODBUS_BAD = `
  - id: meters
    type: modbus
    buses:
      - name: lan
        tcp: { host: 127.0.0.1, port: 1502 }
        devices:
          - { name: main, unit: 1, template: no-such-meter }
  - id: chargers
    type: ocpp
    chargers:
      - { id: CP1, securityProfile: 0, profile: no-such-charger }
`;

t.test('check refuses what start refuses; start refuses the same, with the same words, before it creates anything', async (t) => {
  const dir = await tempDir(t);
  const dataDir = join(dir, 'data');
  const file = join(dir, 'outpost.yaml');
  await writeFile(
    file,
    `dataDir: ${dataDir}
http: { port: 0 }
broker: { mqtt: { port: 0 } }
sync:
  enabled: true
  links:
    - { name: cloud, type: mqtt, url: "mqtt://127.0.0.1:1" }
    - { name: sat, type: iridium, adapter: no-such-modem }
adapters:${MODBUS_BAD}`,
  );
  const check = await cli(['check', '-c', file]);
  t.equal(check.code, 2, 'check exits 2');
  t.match(check.err, /adapters\.0\.buses\.0\.devices\.0\.template: unknown template "no-such-meter"; known: sunspec, .*eastron-sdm630/);
  t.match(check.err, /adapters\.1\.chargers\.0\.profile: charger "CP1": unknown profile "no-such-charger" \(known: .*generic/);
  t.match(check.err, /sync\.links\.1\.adapter: no adapter "no-such-modem" \(no iridium adapter is configured\)/);
  t.equal(check.out, '', 'no "ok" line');

  const start = await cli(['start', '-c', file]);
  t.equal(start.code, 2, 'start exits 2: a configuration error, not a runtime failure');
  t.equal(start.err, check.err, 'start says exactly what check says');
  await t.rejects(readdir(dataDir), { code: 'ENOENT' }, 'start created nothing: not even the data dir');
});

t.test('check: template directories, inline registers, listeners and files named by the config', async (t) => {
  const dir = await tempDir(t);
  const tpl = join(dir, 'templates');
  await mkdir(tpl);
  await writeFile(
    join(tpl, 'broken.yaml'),
    'model: my-meter\nmanufacturer: m\ndescription: d\nsource: s\nmaxRegisters: 500\npoints:\n  - { name: p, address: 0, function: input }\n',
  );
  const file = join(dir, 'outpost.yaml');
  await writeFile(
    file,
    `http:
  port: 18080
  tls: { certFile: ${join(dir, 'missing.pem')}, keyFile: ${join(dir, 'missing.key')} }
broker: { mqtt: { port: 18080 } }
adapters:
  - id: meters
    type: modbus
    templatesDir: ${tpl}
    buses:
      - name: lan
        tcp: { host: 127.0.0.1 }
        devices:
          - name: extra
            registers: [{ name: a, address: 0 }]
`,
  );
  const check = await cli(['check', '-c', file]);
  t.equal(check.code, 2);
  t.match(check.err, /adapters\.0\.templatesDir: broken\.yaml: maxRegisters \(line 5\): /, 'a user template: file, path and line');
  t.match(check.err, /http\.tls\.certFile: cannot read .*missing\.pem: ENOENT/);
  t.match(check.err, /http\.tls\.keyFile: cannot read .*missing\.key: ENOENT/);
  t.match(check.err, /broker\.mqtt\.port: port 18080 is also http\.port/);

  await writeFile(
    join(tpl, 'broken.yaml'),
    'model: my-meter\nmanufacturer: m\ndescription: d\nsource: s\npoints:\n  - { name: p, address: 0, function: input }\n',
  );
  const ok = join(dir, 'ok.yaml');
  await writeFile(
    ok,
    `adapters:
  - id: meters
    type: modbus
    templatesDir: ${tpl}
    buses:
      - name: lan
        tcp: { host: 127.0.0.1 }
        devices:
          - { name: a, unit: 1, template: my-meter, intervals: { p: 1000 } }
          - { name: b, unit: 2, template: eastron-sdm630, only: [power] }
          - { name: c, unit: 3, template: sunspec }
  - { id: chargers, type: ocpp, chargers: [{ id: CP1, securityProfile: 0, profile: abb-terra-ac }] }
`,
  );
  const good = await cli(['check', '-c', ok]);
  t.equal(good.code, 0, good.err);
  t.match(good.out, /ok \(2 adapter\(s\)/);
});

t.test('adapter checks, each problem at its path', async (t) => {
  const modbus = (device: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    adapters: [{ id: 'm', type: 'modbus', ...extra, buses: [{ name: 'b', tcp: { host: 'h' }, devices: [device] }] }],
  });
  t.same(await issues(modbus({ name: 'a', template: 'eastron-sdm630', only: ['power', 'nope'] })), [
    { path: 'adapters.0.buses.0.devices.0.only', message: 'names unknown point(s) nope' },
  ]);
  t.same(await issues(modbus({ name: 'a', template: 'eastron-sdm630', intervals: { nope: 1000 } })), [
    { path: 'adapters.0.buses.0.devices.0.intervals.nope', message: 'names unknown point nope' },
  ]);
  t.match(await issues(modbus({ name: 'a', registers: [{ name: 'x', address: 0 }] })), [
    { path: 'adapters.0.buses.0.devices.0', message: /registers\.points\[0\] \(x\): "function" is required/ },
  ]);
  t.match(await issues(modbus({ name: 'a', template: 'nope' }, { templatesDir: '/no/such/dir' })), [
    { path: 'adapters.0.templatesDir', message: 'cannot read /no/such/dir: ENOENT' },
    { path: 'adapters.0.buses.0.devices.0.template', message: /unknown template "nope"/ },
  ]);
  const disabled = modbus({ name: 'a', template: 'nope' });
  (disabled.adapters[0] as Record<string, unknown>).enabled = false;
  t.same(await issues(disabled), [], 'a disabled adapter is not started, so not checked');

  t.match(
    await issues({
      adapters: [
        {
          id: 'p',
          type: 'mqtt',
          mappings: [
            { topic: 'a/+/b', datapoint: 'p.{2}.power' },
            { topic: 'a/b', datapoint: 'Bad Id' },
          ],
        },
      ],
    }),
    [
      { path: 'adapters.0.mappings.0.datapoint', message: /\{2\} names no wildcard level of "a\/\+\/b" \(it has 1\)/ },
      { path: 'adapters.0.mappings.1.datapoint', message: /gives no valid datapoint id/ },
    ],
  );
  t.match(await issues({ adapters: [{ id: 'sat', type: 'iridium', port: '/dev/x', datapoints: [{ id: 'a' }, { id: 'a' }] }] }), [
    { path: 'adapters.0.datapoints', message: /listed twice/ },
  ]);
  const rtu = (id: string, baudRate: number) => ({
    id,
    type: 'modbus',
    buses: [{ name: 'b', rtu: { path: '/dev/ttyRS485', baudRate }, devices: [{ name: 'd', template: 'eastron-sdm120' }] }],
  });
  t.same(
    await issues({
      adapters: [rtu('a', 9600), { ...rtu('b', 9600), buses: [{ ...rtu('b', 9600).buses[0], devices: [{ name: 'd', unit: 2, template: 'eastron-sdm120' }] }] }],
    }),
    [],
    'one RS-485 line shared with the same settings',
  );
  t.match(await issues({ adapters: [rtu('a', 9600), rtu('b', 19200), { id: 'sat', type: 'iridium', port: '/dev/ttyRS485' }] }), [
    { path: 'adapters.1.buses.0.rtu.path', message: /\/dev\/ttyRS485 is also opened by adapters\.0\.buses\.0\.rtu\.path with other settings/ },
    { path: 'adapters.2.port', message: /is also opened by adapters\.0\.buses\.0\.rtu\.path/ },
  ]);
  t.match(await issues({ adapters: [{ id: 'alc', type: 'bms-files', format: 'alc-webctrl', pointsLists: ['/no/such/points.csv'] }] }), [
    { path: 'adapters.0.pointsLists.0', message: /no\/such\/points\.csv/ },
  ]);
});

t.test('cross-references and files', async (t) => {
  const sync = (adapters: unknown[]) => ({
    adapters,
    sync: {
      enabled: true,
      links: [
        { name: 'cloud', type: 'mqtt', url: 'mqtt://h' },
        { name: 'sat', type: 'iridium', adapter: 'sat' },
      ],
    },
  });
  t.same(await issues(sync([{ id: 'sat', type: 'iridium', port: '/dev/x' }])), [], 'link to an iridium adapter');
  t.match(await issues(sync([{ id: 'sat', type: 'mqtt' }])), [{ path: 'sync.links.1.adapter', message: /is a mqtt adapter, not iridium/ }]);
  t.match(await issues(sync([{ id: 'sat', type: 'iridium', port: '/dev/x', enabled: false }])), [{ path: 'sync.links.1.adapter', message: /disabled/ }]);

  const dir = await tempDir(t);
  await writeFile(join(dir, 'junk.pem'), 'not a certificate');
  await writeFile(join(dir, 'short'), 'abc\n');
  t.match(
    await issues({ http: { tls: { certFile: 'junk.pem', keyFile: 'junk.pem' } } }, dir),
    [{ path: 'http.tls.certFile', message: /not a usable certificate\/key pair/ }],
    'relative to the cwd, as at start',
  );
  t.match(
    await issues(
      {
        sync: {
          enabled: true,
          links: [
            { name: 'a', type: 'mqtt', url: 'mqtts://h', passwordFile: 'nope', tls: { caFile: 'junk.pem' }, downlinkAuth: { secretFile: 'short' } },
            { name: 'b', type: 'http', url: 'https://h', auth: { type: 'bearer' } },
          ],
        },
      },
      dir,
    ),
    [
      { path: 'sync.links.0.tls.caFile', message: /holds no PEM certificate/ },
      { path: 'sync.links.0.passwordFile', message: /cannot read nope: ENOENT/ },
      { path: 'sync.links.0.downlinkAuth.secretFile', message: /fewer than 16 characters/ },
      { path: 'sync.links.1.auth', message: /needs a token or tokenFile/ },
    ],
  );
  t.match(await issues({ flows: { enabled: true } }), [{ path: 'flows.credentialSecret', message: /required when flows are enabled/ }]);
  t.same(await issues({ http: { port: 0 }, broker: { mqtt: { port: 0 }, mqtts: { enabled: false } } }), [], "port 0 is the system's choice");
  // start refuses it (DP_INVALID from the registry); check did not see it before.
  t.match(
    await issues({ datapoints: [{ id: 'plant.valve', kind: 'actuator', type: 'number', min: 80, max: 30 }] }),
    [{ path: 'datapoints.0', message: 'min 80 is above max 30' }],
    'a datapoint range upside down',
  );
});

t.test('every device data file shipped in the repo loads', async (t) => {
  // Any YAML under adapters/ is device data; each must be one a loader reads, and load.
  const yaml: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(f)) yaml.push(relative(REPO_ROOT, p));
    }
  };
  walk(join(REPO_ROOT, 'adapters'));
  const templates = loadTemplates();
  const sunspec = loadSunSpec();
  const profiles = loadChargerProfiles();
  t.ok(sunspec.models.size > 0);
  const covered = new Set([
    ...readdirSync(DEVICES_DIR).map((f) => relative(REPO_ROOT, join(DEVICES_DIR, f))),
    ...readdirSync(CHARGERS_DIR).map((f) => relative(REPO_ROOT, join(CHARGERS_DIR, f))),
  ]);
  for (const f of yaml) t.ok(covered.has(f), `${f} is read by a device data loader`);
  t.equal(templates.size + 1 + profiles.size, yaml.length, 'every file gives one template, the SunSpec models or one profile');
  // Each shipped template is usable from a config.
  for (const model of [...templates.keys(), 'sunspec']) {
    t.same(
      await issues({ adapters: [{ id: 'm', type: 'modbus', buses: [{ name: 'b', tcp: { host: 'h' }, devices: [{ name: 'd', template: model }] }] }] }),
      [],
      `template ${model}`,
    );
  }
  for (const name of profiles.keys()) {
    t.same(await issues({ adapters: [{ id: 'o', type: 'ocpp', chargers: [{ id: 'CP', securityProfile: 0, profile: name }] }] }), [], `profile ${name}`);
  }
});

t.test('one error format for device data: file, path, line', async (t) => {
  const good = 'model: x\nmanufacturer: m\ndescription: d\nsource: s\npoints:\n  - { name: a, address: 0, function: input }\n';
  t.throws(() => parseTemplate(good.replace('source: s\n', 'source: s\nmaxGap: -1\n'), 'x.yaml'), {
    code: 'MODBUS_TEMPLATE_INVALID',
    message: /^x\.yaml: maxGap \(line 5\): /,
  });
  t.throws(
    () => parseTemplate(good + 'model: y\n', 'x.yaml'),
    { message: /^x\.yaml: \(root\) \(line 7\): not valid YAML: .*unique/i },
    'duplicate keys are refused',
  );
  const { parseChargerProfile } = await import('../../adapters/ocpp/chargers.js');
  t.throws(() => parseChargerProfile('name: x\ndescription: d\nphases: 2\nmaxCurrentA: 32\n', 'p.yaml'), {
    code: 'CONFIG_INVALID',
    message: /^p\.yaml: phases \(line 3\): /,
  });
});

t.test('check prints warnings (doubtful but possibly right) and still passes', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'outpost.yaml');
  await writeFile(
    file,
    `dataDir: ${join(dir, 'data')}
datapoints:
  - { id: plant.boiler.temp, kind: sensor, type: number, unit: °C }
alarms:
  rules:
    - { id: pumps-hot, type: threshold, datapoint: "plant.pump*.temp", above: 80 }
`,
  );
  const check = await cli(['check', '-c', file]);
  t.equal(check.code, 0, 'a warning does not refuse the file');
  t.match(check.err, /warnings:\n.*alarms\.rules\.0\.datapoint: .*plant\.pump\*\.temp/, 'the glob matching nothing is named by its path');
  t.match(check.out, /: ok \(/);
});
