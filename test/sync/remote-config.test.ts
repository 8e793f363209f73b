/**
 * Remote configuration against the real process (issue 26, item 3): `outpost start` with an
 * HTTP link polling a small central on loopback, which pushes `config` commands. Before, the
 * command was unknown (SYNC_COMMAND_INVALID) and nothing of this existed: every ack code, the
 * restart, the applied file, the rollback and the `gateway.config.*` report below fail on it.
 */
import t from 'tap';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { spawnOutpost, processYamlHead, type OutpostProcess } from '../helpers/process.js';
import { eventually } from '../helpers/gateway.js';
import { localApi } from '../helpers/local-api.js';
import { tempDir, type Teardown } from '../helpers/teardown.js';
import { decodeBatch, wireRecords, SeqDeduper } from '../../runtime/sync/codec.js';
import type { OutboxRecord } from '../../storage/store.js';

const SECRET = 'remote-config-hmac-secret-0123456789';
const GW = 'gw-remote';
const sha = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

interface Ack {
  cursor: string;
  requestId: string | null;
  ok: boolean;
  result?: { state: string; sha256: string; apply: string; note: string };
  error?: { code: string; message: string; retryable: boolean };
}

/** The central side: a downlink queue the test fills, the acks, and the uplink records (deduplicated). */
async function central(t: Teardown) {
  const commands: Array<Record<string, unknown>> = [];
  const acks: Ack[] = [];
  const uplink: OutboxRecord[] = [];
  const dedupe = new SeqDeduper();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url!, 'http://x');
      if (req.method === 'GET' && url.pathname === '/api/downlink') {
        const after = Number(url.searchParams.get('after') ?? 0);
        const page = commands.filter((c) => Number(c.cursor) > after);
        if (page.length === 0) return void res.writeHead(204).end();
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ commands: page }));
      }
      if (req.method === 'POST' && url.pathname === '/api/downlink/ack') {
        acks.push(JSON.parse(body.toString('utf8')) as Ack);
        return void res.writeHead(204).end();
      }
      const batch = decodeBatch(gunzipSync(body));
      uplink.push(...dedupe.accept(batch.gw, wireRecords(batch)));
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/api`;
  let cursor = 0;
  return {
    base,
    acks,
    push(body: Record<string, unknown>): string {
      const requestId = `cfg-${++cursor}`;
      commands.push({ cursor: String(cursor), requestId, type: 'config', ...body });
      return requestId;
    },
    ack: (requestId: string) => acks.find((a) => a.requestId === requestId),
    /** The latest value of an uplinked datapoint. */
    latest: (id: string) => uplink.filter((r) => r.id === id).at(-1)?.v,
    values: (id: string) => uplink.filter((r) => r.id === id).map((r) => r.v),
  };
}

interface SiteOptions {
  name: string;
  url: string;
  extra?: string;
  httpPort?: number;
  remoteConfig?: string;
  log?: string;
}

/** An outpost.yaml of the test site; pushes are variations of it. */
function siteYaml(dir: string, o: SiteOptions): string {
  const head = processYamlHead({ id: GW, dataDir: join(dir, 'data'), log: o.log ?? 'info', httpPort: o.httpPort ?? 0 });
  return `${head.replace(`gateway: { id: ${GW} }`, `gateway: { id: ${GW}, name: ${o.name} }`)}
datapoints:
  - { id: site.mode, kind: actuator, type: string, allowed: [auto, off] }
${o.extra ?? ''}sync:
  enabled: true
  pollMs: 50
  datapointsIntervalMs: 0
  remoteConfig: ${o.remoteConfig ?? '{ enabled: true, restart: true }'}
  links:
    - name: central
      type: http
      url: ${o.url}
      auth: { type: hmac, secret: ${SECRET} }
      downlink: { intervalMs: 100 }
`;
}

function start(t: Teardown, file: string): OutpostProcess {
  const proc = spawnOutpost(['start', '-c', file]);
  t.teardown(() => proc.child.kill('SIGKILL'));
  return proc;
}

/** `outpost check` on a file: its stderr lines naming problems (`  path: message`). */
async function checkLines(t: Teardown, file: string): Promise<string[]> {
  const proc = spawnOutpost(['check', '-c', file]);
  t.teardown(() => proc.child.kill('SIGKILL'));
  const { code } = await proc.exited;
  if (code !== 2) throw new Error(`outpost check exited ${code}: ${proc.stderr()}`);
  return proc
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('  '));
}

t.test('pushed configs: refused with codes, accepted as pending, applied on restart, rolled back after a failed start, reported upstream', async (t) => {
  const dir = await tempDir(t, 'outpost-remote-config-');
  const srv = await central(t);
  const file = join(dir, 'outpost.yaml');
  const original = siteYaml(dir, { name: 'Before', url: srv.base });
  await writeFile(file, original);
  const api = localApi(join(dir, 'data'));

  // The schema error as `outpost check` reports it, for comparison with the ack.
  const badSchema = siteYaml(dir, { name: 'Before', url: srv.base, log: 'loud' });
  await writeFile(join(dir, 'bad.yaml'), badSchema);
  const [expectedLines, p1] = await Promise.all([checkLines(t, join(dir, 'bad.yaml')), Promise.resolve(start(t, file))]);
  await p1.ready;

  const valid = (name: string, extra = ''): string => siteYaml(dir, { name, url: srv.base, extra });
  const ids = {
    yamlError: srv.push({ yaml: `${original}  broken: [\n` }),
    schema: srv.push({ yaml: badSchema }),
    tooBig: srv.push({ yaml: `${original}# ${'x'.repeat(300 * 1024)}\n` }),
    hash: srv.push({ yaml: valid('Hash'), sha256: sha('something else') }),
    auth: srv.push({ yaml: `${valid('Auth')}auth: { loopback: admin }\n` }),
    linkUrl: srv.push({ yaml: valid('Url').replace(`url: ${srv.base}`, 'url: https://collector.example.net/api') }),
    escalate: srv.push({ yaml: siteYaml(dir, { name: 'Esc', url: srv.base, remoteConfig: '{ enabled: true, restart: true, allowSecurity: true }' }) }),
    dropDir: srv.push({ yaml: valid('Drop', 'adapters:\n  - { id: trends, type: bms-files, format: siemens-insight, dropDir: /etc }\n') }),
    template: srv.push({
      yaml: valid(
        'Tpl',
        'adapters:\n  - id: meters\n    type: modbus\n    buses: [{ name: lan, tcp: { host: 127.0.0.1, port: 1502 }, devices: [{ name: m1, unit: 1, template: no-such-meter }] }]\n',
      ),
    }),
    nextStart: srv.push({ yaml: valid('PendingA'), sha256: sha(valid('PendingA')), apply: 'next-start' }),
  };
  await eventually(() => srv.acks.length >= Object.keys(ids).length, 30_000, 50);
  const refused = (rid: string) => srv.ack(rid)!.error!;

  t.equal(refused(ids.yamlError).code, 'CONFIG_INVALID');
  t.match(refused(ids.yamlError).message, /line \d+, column \d+/, 'a YAML error names its line and column');
  t.equal(refused(ids.schema).code, 'CONFIG_INVALID');
  t.ok(expectedLines.length > 0 && expectedLines.some((l) => l.startsWith('  log.level:')), 'outpost check names log.level');
  t.same(refused(ids.schema).message.split('\n').slice(1), expectedLines, 'the ack carries the problems exactly as `outpost check` lists them');
  t.match(refused(ids.tooBig), { code: 'CONFIG_REMOTE_TOO_BIG', message: /at most 262144/ });
  t.equal(refused(ids.hash).code, 'CONFIG_REMOTE_HASH_MISMATCH');
  t.match(refused(ids.auth), { code: 'CONFIG_REMOTE_SECURITY', message: /auth\.loopback/ });
  t.match(refused(ids.linkUrl), { code: 'CONFIG_REMOTE_SECURITY', message: /sync\.links\.0\.url/ });
  t.notMatch(refused(ids.linkUrl).message, /collector\.example\.net/, 'values are never echoed upstream');
  t.match(refused(ids.escalate), { code: 'CONFIG_REMOTE_SECURITY', message: /sync\.remoteConfig\.allowSecurity/ });
  t.match(refused(ids.dropDir), { code: 'CONFIG_REMOTE_SECURITY', message: /adapters\.0\.dropDir/ });
  t.match(
    refused(ids.template),
    { code: 'CONFIG_INVALID', message: /adapters\.0\.buses\.0\.devices\.0\.template/ },
    'what start checks (templates) is checked too',
  );
  t.match(srv.ack(ids.nextStart), { ok: true, result: { state: 'pending', sha256: sha(valid('PendingA')), apply: 'next-start' } });
  t.equal(await readFile(`${file}.pending`, 'utf8'), valid('PendingA'), 'stored as <config>.pending');
  t.equal(await readFile(file, 'utf8'), original, 'the active file is untouched until a start');
  await eventually(() => srv.latest('gateway.config.state') === 'pending', 15_000, 50);
  t.equal(srv.latest('gateway.config.sha256'), sha(original), 'upstream: pending, still running the original');
  t.equal(p1.child.exitCode, null, 'apply: next-start does not restart');

  // A push that restarts: acked first, then exit 75 for the service manager.
  const bYaml = valid('After').replace('datapoints:\n', 'datapoints:\n  - { id: site.extra, kind: sensor, type: number }\n');
  const restartId = srv.push({ yaml: bYaml });
  t.equal((await p1.exited).code, 75, 'the gateway restarts itself (exit 75)');
  t.match(srv.ack(restartId), { ok: true, result: { state: 'pending', sha256: sha(bYaml), apply: 'restart' } }, 'acked before the restart');

  const p2 = start(t, file);
  await p2.ready;
  t.equal(await readFile(file, 'utf8'), bYaml, 'the newest pending config is the active file (the earlier pending one superseded)');
  t.equal(await readFile(`${file}.previous`, 'utf8'), original, 'the previous config is kept');
  t.equal((await api('/api/datapoints/site.extra')).status, 200, 'it runs on the new config');
  t.equal(((await (await api('/api/system')).json()) as { gateway: { name: string } }).gateway.name, 'After');
  await eventually(() => srv.latest('gateway.config.state') === 'applied', 15_000, 50);
  t.equal(srv.latest('gateway.config.sha256'), sha(bYaml), 'upstream: applied, with the hash of the pushed file');
  const audit = (await (await api('/api/audit?action=config&limit=100')).json()) as {
    items: Array<{ action: string; by: string; outcome: string; error?: { code: string } }>;
  };
  t.equal(audit.items.length, Object.keys(ids).length + 1, 'every config command audited');
  t.ok(
    audit.items.every((e) => e.action === 'config.push' && e.by === 'upstream:central'),
    'as config.push by upstream:central',
  );
  t.equal(audit.items.filter((e) => e.outcome === 'refused').length, 9);
  const events = (await (await api('/api/events?source=sync&limit=100')).json()) as { items: Array<{ kind: string }> };
  t.ok(
    events.items.some((e) => e.kind === 'config.applied'),
    'the event log says it was applied',
  );

  // Passes every check, fails at start: the HTTP port is taken by another program.
  const squatter = createTcpServer();
  await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => squatter.close(() => r())));
  const taken = (squatter.address() as { port: number }).port;
  const broken = bYaml.replace('http: { host: 127.0.0.1, port: 0 }', `http: { host: 127.0.0.1, port: ${taken} }`);
  t.not(broken, bYaml);
  const brokenId = srv.push({ yaml: broken });
  t.equal((await p2.exited).code, 75);
  t.match(srv.ack(brokenId), { ok: true, result: { state: 'pending' } });

  const p3 = start(t, file);
  await t.rejects(p3.ready, /exited \(1\) before ready/, 'the start on it fails');
  t.equal(await readFile(file, 'utf8'), broken, 'it was the active file for that start (trial)');

  const p4 = start(t, file);
  await p4.ready;
  t.equal(await readFile(file, 'utf8'), bYaml, 'the next start rolled back to the previous config');
  t.equal(await readFile(`${file}.rejected`, 'utf8'), broken, 'the failed one is kept for a look');
  await eventually(() => srv.latest('gateway.config.state') === 'rolled-back', 15_000, 50);
  t.equal(srv.latest('gateway.config.sha256'), sha(bYaml));
  t.match(String(srv.latest('gateway.config.error')), /EADDRINUSE|address already in use/i, 'upstream: why the pushed config did not start');
  const states = srv.values('gateway.config.state').filter((v, i, all) => i === 0 || all[i - 1] !== v);
  t.same(states, ['local', 'pending', 'applied', 'pending', 'rolled-back'], 'the states upstream, in order');
  p4.child.kill('SIGTERM');
  t.equal((await p4.exited).code, 0);
});
