/**
 * Remote configuration, the parts a process test cannot reach cheaply (issue 26, item 3): what
 * counts as a security-sensitive change, the gate in front of the handler (off by default,
 * not over the satellite, audited when the link refused the command), and the crash windows
 * of `outpost start` applying a pending config. remote-config.test.ts runs the real process.
 */
import t from 'tap';
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { adapterTypes } from '../../adapters/index.js';
import { OutpostError } from '../../core/errors.js';
import { validateConfig } from '../../runtime/config/load.js';
import { ConfigStartup, configFiles, readReport, sha256Hex, type TrialMarker } from '../../runtime/config/pending.js';
import { securityChanges } from '../../runtime/config/remote-policy.js';
import type { AuditInput } from '../../runtime/audit/entry.js';
import { Downlink } from '../../runtime/sync/downlink.js';
import { RemoteConfigReceiver } from '../../runtime/sync/remote-config.js';
import { systemClock } from '../../core/clock.js';
import { tempDir } from '../helpers/teardown.js';
import { testLogger } from './helpers/sync.js';

const link = { name: 'central', type: 'http', url: 'https://ingest.example.com/v1', auth: { type: 'hmac', secretFile: '/etc/outpost/hmac' } };
const base = {
  gateway: { id: 'site-1' },
  sync: { enabled: true, links: [link], remoteConfig: { enabled: true } },
  adapters: [
    { id: 'sim', type: 'simulated', interval: 1000 },
    {
      id: 'meters',
      type: 'modbus',
      buses: [{ name: 'rs485', rtu: { path: '/dev/ttyUSB0', baudRate: 9600 }, devices: [{ name: 'm1', unit: 1, template: 'eastron-sdm630' }] }],
    },
  ],
};
const config = (patch: (c: typeof base & Record<string, unknown>) => void = () => undefined) => {
  const raw = structuredClone(base) as typeof base & Record<string, unknown>;
  patch(raw);
  return validateConfig(raw, adapterTypes);
};

t.test('security-sensitive changes are named by path; tuning and site data are not', async (t) => {
  const active = config();
  const changes = (patch: Parameters<typeof config>[0]) => securityChanges(active, config(patch));
  t.same(
    changes(() => undefined),
    [],
    'the same config changes nothing',
  );
  t.same(
    changes((c) => {
      c.log = { level: 'debug' };
      c.gateway = { id: 'site-1', name: 'Pump house' } as typeof c.gateway;
      c.datapoints = [{ id: 'site.mode', kind: 'actuator', type: 'string' }];
      c.sync.links = [{ ...link, batchRecords: 500, downlink: { intervalMs: 5000 } } as typeof link];
      c.adapters[0] = { id: 'sim', type: 'simulated', interval: 5000 };
      (c.sync.remoteConfig as Record<string, unknown>).enabled = false;
    }),
    [],
    'log level, names, datapoints, link tuning, a simulated adapter and turning remote config off are free',
  );
  t.same(
    changes((c) => {
      c.auth = { loopback: 'admin' };
    }),
    ['auth.loopback'],
  );
  t.same(
    changes((c) => {
      c.http = { host: '0.0.0.0', tokens: [`sha256:${'a'.repeat(64)}`] };
    }),
    ['http.host', 'http.tokens'],
  );
  t.same(
    changes((c) => {
      c.broker = { anonymous: 'never', users: [] } as unknown as undefined;
    }),
    ['broker.anonymous'],
  );
  t.same(
    changes((c) => {
      c.sync.links = [{ ...link, auth: { type: 'hmac', secretFile: '/etc/shadow' } }];
    }),
    ['sync.links.0.auth.secretFile'],
  );
  t.same(
    changes((c) => {
      c.sync.links = [{ ...link, downlink: { url: 'https://elsewhere.example.net' } } as typeof link];
    }),
    ['sync.links.0.downlink.url'],
    'a downlink URL is not tuning',
  );
  t.match(
    changes((c) => {
      c.sync.links = [link, { ...link, name: 'exfil' }];
    }),
    [/^sync\.links\.1 \(new link "exfil"\)$/],
  );
  t.same(
    changes((c) => {
      c.sync.remoteConfig = { enabled: true, restart: true, allowSecurity: true } as typeof c.sync.remoteConfig;
    }),
    ['sync.remoteConfig.restart', 'sync.remoteConfig.allowSecurity'],
    'a push cannot give remote configuration more power',
  );
  const trends = changes((c) => {
    c.adapters.push({ id: 'trends', type: 'bms-files', format: 'siemens-insight', dropDir: '/etc', pointsLists: ['/root/.ssh/id_rsa'] } as never);
  });
  for (const key of ['dropDir', 'pointsLists', 'type', 'enabled'])
    t.ok(trends.includes(`adapters.2.${key} (adapter "trends")`), `a new adapter reading folders and files: ${key}`);
  t.same(
    changes((c) => {
      c.adapters[1] = {
        ...c.adapters[1]!,
        buses: [{ name: 'rs485', rtu: { path: '/dev/ttyS9', baudRate: 9600 }, devices: [{ name: 'm1', unit: 1, template: 'eastron-sdm630' }] }],
      } as never;
    }),
    ['adapters.1.buses.0.rtu.path (adapter "meters")'],
    'a device path, whatever its key is called',
  );
  t.same(
    changes((c) => {
      c.adapters.pop();
    }),
    ['adapters (adapter "meters" removed)'],
  );
  t.same(
    changes((c) => {
      c.dataDir = '/tmp/elsewhere';
      c.flows = { enabled: false, defaultFlows: true };
    }),
    ['dataDir', 'flows.defaultFlows'],
  );
});

t.test('the config command: off by default, never over the satellite, audited when the link refused it', async (t) => {
  const audit: AuditInput[] = [];
  const make = (raw: Record<string, unknown>) =>
    new Downlink({
      ingest: { setpoint: async () => ({ id: 'x', v: 1, t: 0 }) },
      log: testLogger().log,
      clock: systemClock,
      memory: 100,
      remoteConfig: new RemoteConfigReceiver({
        configFile: '/nonexistent/outpost.yaml',
        config: validateConfig(raw, adapterTypes),
        adapterTypes,
        audit: { record: (e) => audit.push(e) },
        clock: systemClock,
        log: testLogger().log,
      }),
    });
  const payload = (o: Record<string, unknown>) => Buffer.from(JSON.stringify({ requestId: `r${Math.random()}`, yaml: 'gateway: { id: x }\n', ...o }));

  const off = await make({}).handle({ source: 'http-poll:central', payload: payload({ type: 'config' }) }, 'central');
  t.match(off, { ok: false, error: { code: 'CONFIG_REMOTE_DISABLED', message: /sync\.remoteConfig\.enabled/ } }, 'a site without sync.remoteConfig refuses');
  t.match(audit.at(-1), { action: 'config.push', actor: { kind: 'upstream', name: 'central' }, outcome: 'refused', error: { code: 'CONFIG_REMOTE_DISABLED' } });

  const on = make({ sync: { remoteConfig: { enabled: true } } });
  const sat = await on.handle({ source: 'iridium:sat:mt7', name: 'config', payload: payload({}) }, 'sat');
  t.match(sat, { ok: false, error: { code: 'CONFIG_REMOTE_TRANSPORT' } });

  const forged = await on.handle(
    {
      source: 'sites/x/cmd/config',
      name: 'config',
      payload: payload({}),
      refused: { error: new OutpostError('SYNC_COMMAND_FORGED', 'bad signature'), requestId: 'r-forged' },
    },
    'central',
  );
  t.match(forged, { ok: false, error: { code: 'SYNC_COMMAND_FORGED' } });
  t.match(
    audit.at(-1),
    { action: 'config.push', outcome: 'refused', error: { code: 'SYNC_COMMAND_FORGED' }, details: { requestId: 'r-forged' } },
    'a forged push is audited',
  );

  const big = 'x'.repeat(70 * 1024);
  const setpoint = await on.handle({ source: 's', name: 'setpoint', payload: Buffer.from(JSON.stringify({ requestId: 'big', id: 'x', v: big })) });
  t.match(setpoint, { ok: false, error: { code: 'SYNC_COMMAND_INVALID', message: /at most 65536/ } }, 'other commands keep the 64 KiB limit');
  const unnamed = await on.handle({ source: 's', payload: Buffer.from(JSON.stringify({ requestId: 'big2', type: 'setpoint', id: 'x', v: big })) });
  t.match(unnamed, { ok: false, error: { code: 'SYNC_COMMAND_INVALID', message: /at most 65536/ } }, 'also when the type is in the body');
});

/** A config dir with an active file, and what a push and a start leave there. */
async function site(t: Parameters<typeof tempDir>[0]) {
  const dir = await tempDir(t, 'outpost-pending-');
  const file = join(dir, 'outpost.yaml');
  const yaml = (name: string) => `gateway: { id: site-1, name: ${name} }\ndataDir: ${join(dir, 'data')}\nsync: { remoteConfig: { enabled: true } }\n`;
  await writeFile(file, yaml('one'));
  const files = await configFiles(file);
  const prepare = () => ConfigStartup.prepare({ configPath: file, adapterTypes, env: {} });
  const exists = (p: string) =>
    access(p).then(
      () => true,
      () => false,
    );
  const marker = (m: Partial<TrialMarker>): TrialMarker => ({
    phase: 'trial',
    sha256: sha256Hex(yaml('two')),
    previousSha256: sha256Hex(yaml('one')),
    requestId: 'r1',
    from: 'upstream:central',
    startedAt: 1,
    ...m,
  });
  const pend = async (text: string, sha = sha256Hex(text)) => {
    await writeFile(files.pending, text);
    await writeFile(files.pendingMeta, JSON.stringify({ sha256: sha, requestId: 'r1', from: 'upstream:central', receivedAt: 1, apply: 'restart' }));
  };
  return { file, files, yaml, prepare, exists, marker, pend };
}

t.test('start: a pending config becomes a trial, then applied; a hand edit since makes it local', async (t) => {
  const s = await site(t);
  await s.pend(s.yaml('two'));
  const startup = await s.prepare();
  t.same(
    startup.notes.filter((n) => n.level === 'error'),
    [],
  );
  t.equal(await readFile(s.file, 'utf8'), s.yaml('two'));
  t.equal(await readFile(s.files.previous, 'utf8'), s.yaml('one'));
  t.match(JSON.parse(await readFile(s.files.trial, 'utf8')), { phase: 'trial', sha256: sha256Hex(s.yaml('two')) });
  t.notOk(await s.exists(s.files.pending));
  t.notOk(await s.exists(s.files.pendingMeta));
  t.match(await startup.ready(), { state: 'applied', sha256: sha256Hex(s.yaml('two')), error: '', requestId: 'r1' });
  t.equal(startup.outcome, 'applied');
  t.notOk(await s.exists(s.files.trial), 'ready: the trial marker is gone');
  await writeFile(s.file, s.yaml('three'));
  t.match(await readReport(s.files, sha256Hex(s.yaml('three'))), { state: 'local' }, 'edited by hand: not the pushed one any more');
});

t.test('start: crash windows of the apply and of the rollback', async (t) => {
  const s = await site(t);
  // Killed after the rename, before the marker said trial: this start is the trial.
  await writeFile(s.file, s.yaml('two'));
  await writeFile(s.files.previous, s.yaml('one'));
  await writeFile(s.files.trial, JSON.stringify(s.marker({ phase: 'applying' })));
  let startup = await s.prepare();
  t.match(JSON.parse(await readFile(s.files.trial, 'utf8')), { phase: 'trial' }, 'renamed already: a trial now');
  t.equal(await readFile(s.file, 'utf8'), s.yaml('two'));

  // That start failed (the CLI noted why): the next one rolls back.
  await startup.failed(new OutpostError('CONFIG_INVALID', 'listen EADDRINUSE 127.0.0.1:8080'));
  startup = await s.prepare();
  t.equal(await readFile(s.file, 'utf8'), s.yaml('one'), 'previous restored');
  t.equal(await readFile(s.files.rejected, 'utf8'), s.yaml('two'));
  t.notOk(await s.exists(s.files.trial));
  t.match(await startup.ready(), { state: 'rolled-back', sha256: sha256Hex(s.yaml('one')), error: /EADDRINUSE.*previous config/ });

  // Killed after restoring the file, before the status: finished at the next start.
  await writeFile(s.files.status, '{}');
  await writeFile(s.files.trial, JSON.stringify(s.marker({ error: 'boom' })));
  startup = await s.prepare();
  t.equal(startup.outcome, 'rolled-back');
  t.match(await startup.ready(), { state: 'rolled-back', error: /boom/ });

  // Killed before the rename (pending still there): applied as if nothing had happened.
  await s.pend(s.yaml('four'));
  await writeFile(s.files.trial, JSON.stringify(s.marker({ phase: 'applying', sha256: sha256Hex(s.yaml('four')) })));
  startup = await s.prepare();
  t.equal(await readFile(s.file, 'utf8'), s.yaml('four'));
  t.match(await startup.ready(), { state: 'applied', sha256: sha256Hex(s.yaml('four')) });
});

t.test('start: a pending config that fails the checks now, or is cut off, is set aside', async (t) => {
  const s = await site(t);
  await s.pend(s.yaml('two'), sha256Hex('what the meta said'));
  let startup = await s.prepare();
  t.equal(await readFile(s.file, 'utf8'), s.yaml('one'));
  t.match(await startup.ready(), { state: 'rolled-back', error: /does not match its sha256/ });

  // The operator turned remote configuration off after it was accepted: the start respects that.
  await writeFile(s.file, s.yaml('one').replace('enabled: true', 'enabled: false'));
  await s.pend(s.yaml('two'));
  startup = await s.prepare();
  t.equal(await readFile(s.file, 'utf8'), s.yaml('one').replace('enabled: true', 'enabled: false'));
  t.match(await startup.ready(), { state: 'rolled-back', error: /remote configuration is off/ });
  t.equal(await readFile(s.files.rejected, 'utf8'), s.yaml('two'));
  t.notOk(await s.exists(s.files.pending));
});
