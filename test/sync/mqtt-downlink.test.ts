/**
 * MQTT downlink against the real process (issue 19, part 5): `outpost start` with a real
 * Mosquitto upstream, mosquitto_pub as the central side. Seen before: five copies of one
 * command sent back-to-back applied 3 times; a repeated command applied again after a restart
 * (undoing an operator's local change); a retained command re-applied at every restart; any
 * client allowed on the command topic was obeyed.
 */
import t from 'tap';
import mqtt from 'mqtt';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnOutpost, type OutpostProcess, processYamlHead } from '../helpers/process.js';
import { eventually, startTestGateway } from '../helpers/gateway.js';
import { localApi } from '../helpers/local-api.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { GATEWAY_ID, sensors, startSync, testLogger, writeReadings } from './helpers/sync.js';
import { SyncService } from '../../runtime/sync/service.js';
import { signCommand } from '../../runtime/sync/command-auth.js';
import { tempDir, type Teardown } from '../helpers/teardown.js';

const GW = 'gw1';
const SECRET = 'central-gw1-downlink-secret-7f3a9c';
const DP = 'plant.boiler.setpoint';
const SETPOINT_TOPIC = `sites/${GW}/cmd/setpoint`;

interface Ack {
  requestId: string | null;
  ok: boolean;
  result?: { id: string; v: number; t: number };
  error?: { code: string; message: string };
  t: number;
}

/** One site: a config file and data dir; `start` runs `outpost start` on them and waits until the link is up. */
class Site {
  proc: OutpostProcess | undefined;
  readonly api: ReturnType<typeof localApi>;

  private constructor(
    private readonly t: Teardown,
    readonly file: string,
    readonly dataDir: string,
  ) {
    this.api = localApi(dataDir);
  }

  static async create(t: Teardown, broker: Mosquitto, downlinkAuth: string): Promise<Site> {
    const dir = await tempDir(t, 'outpost-downlink-');
    await writeFile(join(dir, 'downlink.secret'), SECRET + '\n', { mode: 0o600 });
    const file = join(dir, 'outpost.yaml');
    await writeFile(
      file,
      `${processYamlHead({ id: GW, dataDir: join(dir, 'data') })}datapoints:
  - { id: ${DP}, kind: actuator, type: number, unit: degC, min: 30, max: 80 }
sync:
  enabled: true
  pollMs: 50
  datapointsIntervalMs: 0
  links:
    - name: central
      type: mqtt
      url: ${broker.url}
      reconnectMs: 100
      downlinkAuth: ${downlinkAuth.replace('<dir>', dir)}
`,
    );
    return new Site(t, file, join(dir, 'data'));
  }

  async start(): Promise<OutpostProcess> {
    const proc = spawnOutpost(['start', '-c', this.file]);
    this.proc = proc;
    this.t.teardown(() => proc.child.kill('SIGKILL'));
    await proc.ready;
    await eventually(async () => {
      const s = (await (await this.api('/api/sync')).json()) as { links?: Array<{ state: string }> };
      return s.links?.[0]?.state === 'up';
    }, 15_000);
    return proc;
  }

  async stop(signal: NodeJS.Signals): Promise<void> {
    const proc = this.proc!;
    proc.child.kill(signal);
    await proc.exited;
  }

  /** How often this process applied a setpoint that came from upstream (the ingest's own log line). */
  appliedFromUpstream(): number {
    return logLines(this.proc!).filter((l) => l.msg === 'setpoint applied' && String(l.source).startsWith('upstream:')).length;
  }

  async value(): Promise<number | undefined> {
    const dp = (await (await this.api(`/api/datapoints/${DP}`)).json()) as { latest: { v: number } | null };
    return dp.latest?.v;
  }

  /** The operator changes the setpoint on site (REST, with the local token). */
  async localChange(v: number): Promise<void> {
    const res = await this.api(`/api/datapoints/${DP}/setpoint`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ v }),
    });
    if (res.status !== 200) throw new Error(`local setpoint: HTTP ${res.status} ${await res.text()}`);
  }
}

function logLines(proc: OutpostProcess): Array<Record<string, unknown>> {
  return proc
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The central side: acks through an MQTT client, commands through mosquitto_pub. */
class Central {
  readonly acks: Ack[] = [];

  private constructor(private readonly broker: Mosquitto) {}

  static async connect(t: Teardown, broker: Mosquitto): Promise<Central> {
    const c = new Central(broker);
    const client = await mqtt.connectAsync(broker.url, { clientId: 'central-acks' });
    t.teardown(() => client.endAsync(true));
    client.on('message', (_topic, payload) => c.acks.push(JSON.parse(payload.toString()) as Ack));
    await client.subscribeAsync(`sites/${GW}/ack`, { qos: 1 });
    return c;
  }

  /** mosquitto_pub, one connection; several messages go back-to-back (`-l`: one per stdin line). */
  publish(messages: string[], options: { topic?: string; retain?: boolean } = {}): Promise<void> {
    const args = ['-h', '127.0.0.1', '-p', String(this.broker.port), '-q', '1', '-t', options.topic ?? SETPOINT_TOPIC];
    if (options.retain) args.push('-r');
    args.push(...(messages.length === 1 ? ['-m', messages[0]!] : ['-l']));
    return new Promise((resolve, reject) => {
      // stdin only for -l: with -m, mosquitto_pub may exit before an empty write reaches it (EPIPE).
      const child = spawn('mosquitto_pub', args, { stdio: [messages.length === 1 ? 'ignore' : 'pipe', 'ignore', 'pipe'] });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mosquitto_pub exited ${code}: ${err}`))));
      child.stdin?.end(messages.join('\n') + '\n');
    });
  }

  acksFor(requestId: string): Ack[] {
    return this.acks.filter((a) => a.requestId === requestId);
  }

  async ackFor(requestId: string, count = 1): Promise<Ack> {
    const got = await eventually(() => this.acksFor(requestId).length >= count, 10_000);
    if (!got) throw new Error(`no ${count} ack(s) for ${requestId}; acks: ${JSON.stringify(this.acks)}`);
    return this.acksFor(requestId)[count - 1]!;
  }
}

const secretFile = '{ secretFile: <dir>/downlink.secret }';
const setpoint = (requestId: string, v: number, t = Date.now(), secret = SECRET) => signCommand(secret, { requestId, type: 'setpoint', id: DP, v }, t);
const settle = () => new Promise((r) => setTimeout(r, 500));

/** A broker, the central side on it, and a site (the real process) started against it, link up. */
async function siteAndCentral(t: Teardown): Promise<{ central: Central; site: Site; proc: OutpostProcess }> {
  const broker = await Mosquitto.create(t);
  const central = await Central.connect(t, broker);
  const site = await Site.create(t, broker, secretFile);
  const proc = await site.start();
  return { central, site, proc };
}

t.test('five copies of one command sent back-to-back: applied once, five identical acks', async (t) => {
  const { central, site } = await siteAndCentral(t);

  const cmd = setpoint('five-1', 55);
  await central.publish([cmd, cmd, cmd, cmd, cmd]);
  await central.ackFor('five-1', 5);
  await settle();
  const acks = central.acksFor('five-1');
  t.equal(acks.length, 5, 'every copy is answered');
  t.match(acks[0], { ok: true, result: { id: DP, v: 55 } });
  t.ok(
    acks.every((a) => JSON.stringify(a) === JSON.stringify(acks[0])),
    'with the same ack',
  );
  t.equal(site.appliedFromUpstream(), 1, 'applied once');
  t.equal(await site.value(), 55);
  const metrics = await (await site.api('/metrics')).text();
  t.match(metrics, /outpost_sync_downlink_total\{command="setpoint",result="ok"\} 1\n/);
});

t.test("the same command after a restart (kill -9) is answered again, not applied: the operator's local change stays", async (t) => {
  const { central, site } = await siteAndCentral(t);

  const cmd = setpoint('keep-1', 60);
  await central.publish([cmd]);
  const first = await central.ackFor('keep-1');
  t.match(first, { ok: true, result: { v: 60 } });
  await site.localChange(45);
  t.equal(await site.value(), 45, 'the operator set 45 on site');

  await site.stop('SIGKILL');
  await site.start();
  await central.publish([cmd]);
  const again = await central.ackFor('keep-1', 2);
  t.same(again, first, 'answered with the ack of the first time');
  await settle();
  t.equal(site.appliedFromUpstream(), 0, 'not applied after the restart');
  t.equal(await site.value(), 45, 'the local change is kept');

  // A new command (new requestId) does apply.
  await central.publish([setpoint('keep-2', 62)]);
  t.match(await central.ackFor('keep-2'), { ok: true, result: { v: 62 } });
  t.equal(await site.value(), 62);
});

t.test('a retained command is applied once, not at every restart; an older retained one is superseded, a newer one applies', async (t) => {
  const { central, site } = await siteAndCentral(t);

  const signedAt = Date.now();
  await central.publish([setpoint('ret-1', 50, signedAt)], { retain: true });
  t.match(await central.ackFor('ret-1'), { ok: true, result: { v: 50 } });
  await site.localChange(42);

  await site.stop('SIGTERM');
  await site.start();
  await central.ackFor('ret-1', 2);
  await settle();
  t.equal(site.appliedFromUpstream(), 0, 'the retained copy at reconnect is answered, not applied');
  t.equal(await site.value(), 42, 'the local change is kept after a restart');

  await site.stop('SIGKILL');
  await site.start();
  await central.ackFor('ret-1', 3);
  await settle();
  t.equal(site.appliedFromUpstream(), 0, 'nor after the next one');
  t.equal(await site.value(), 42);

  // While the site is down an older command (another requestId) is left retained: it must not undo ret-1.
  await site.stop('SIGTERM');
  await central.publish([setpoint('ret-old', 70, signedAt - 5000)], { retain: true });
  await site.start();
  t.match(await central.ackFor('ret-old'), { ok: false, error: { code: 'SYNC_COMMAND_SUPERSEDED' } });
  await settle();
  t.equal(site.appliedFromUpstream(), 0);
  t.equal(await site.value(), 42);

  // A newer retained command (the central side's latest wish, sent while the site was down) applies.
  await site.stop('SIGTERM');
  await central.publish([setpoint('ret-new', 65)], { retain: true });
  await site.start();
  t.match(await central.ackFor('ret-new'), { ok: true, result: { v: 65 } });
  t.equal(site.appliedFromUpstream(), 1);
  t.equal(await site.value(), 65);
});

t.test('unsigned, forged, stale and misdirected commands are refused with acks, counted, logged once', async (t) => {
  const { central, site, proc } = await siteAndCentral(t);

  await central.publish([JSON.stringify({ requestId: 'bad-1', id: DP, v: 70 })]);
  t.match(await central.ackFor('bad-1'), { ok: false, error: { code: 'SYNC_COMMAND_UNSIGNED' } }, 'unsigned');

  const forged = setpoint('bad-2', 70, Date.now(), 'not-the-secret-but-long-enough');
  await central.publish([forged, forged, forged]);
  await central.ackFor('bad-2', 3);
  t.ok(
    central.acksFor('bad-2').every((a) => a.error?.code === 'SYNC_COMMAND_FORGED'),
    'signed with another secret: forged',
  );

  const genuine = JSON.parse(setpoint('bad-3', 40)) as { t: number; sig: string; body: string };
  await central.publish([JSON.stringify({ ...genuine, body: genuine.body.replace('"v":40', '"v":79') })]);
  t.match(await central.ackFor('bad-3'), { ok: false, error: { code: 'SYNC_COMMAND_FORGED' } }, 'a signed body changed on the way: forged');

  await central.publish([setpoint('bad-4', 70, Date.now() - 10 * 60_000)]);
  t.match(await central.ackFor('bad-4'), { ok: false, error: { code: 'SYNC_COMMAND_STALE', message: /s old; at most 300 s/ } }, 'ten minutes old: stale');
  await central.publish([setpoint('bad-5', 70, Date.now() + 10 * 60_000)]);
  t.match(await central.ackFor('bad-5'), { ok: false, error: { code: 'SYNC_COMMAND_STALE', message: /in the future/ } }, 'ten minutes ahead: stale');

  await central.publish([setpoint('bad-6', 70)], { topic: `sites/${GW}/cmd/schedule` });
  t.match(
    await central.ackFor('bad-6'),
    { ok: false, error: { code: 'SYNC_COMMAND_INVALID', message: /"type" in its body must be "schedule"/ } },
    'a signed setpoint moved to another command topic',
  );
  await central.publish([signCommand(SECRET, { requestId: 'bad-7', type: 'setpoint', gw: 'gw2', id: DP, v: 70 })]);
  t.match(await central.ackFor('bad-7'), { ok: false, error: { code: 'SYNC_COMMAND_INVALID', message: /for gateway "gw2"/ } }, 'a command for another site');

  await settle();
  t.equal(site.appliedFromUpstream(), 0, 'none applied');
  t.equal(await site.value(), undefined);
  const metrics = await (await site.api('/metrics')).text();
  t.match(metrics, /outpost_sync_downlink_total\{command="setpoint",result="SYNC_COMMAND_UNSIGNED"\} 1\n/);
  t.match(metrics, /outpost_sync_downlink_total\{command="setpoint",result="SYNC_COMMAND_FORGED"\} 4\n/);
  t.match(metrics, /outpost_sync_downlink_total\{command="setpoint",result="SYNC_COMMAND_STALE"\} 2\n/);
  const refusedLogs = logLines(proc).filter((l) => String(l.msg).startsWith('downlink command refused by the link'));
  t.same(
    refusedLogs.map((l) => l.code).sort(),
    ['SYNC_COMMAND_FORGED', 'SYNC_COMMAND_INVALID', 'SYNC_COMMAND_STALE', 'SYNC_COMMAND_UNSIGNED'],
    'one warning per kind of refusal, not one per command (the repeats are counted)',
  );
  t.notOk(proc.stdout().includes(SECRET), 'the secret is never logged');

  // A refusal is not remembered: the genuine command with a requestId a forger used applies.
  await central.publish([setpoint('bad-2', 58)]);
  t.match(await central.ackFor('bad-2', 4), { ok: true, result: { v: 58 } });
  t.equal(await site.value(), 58);
});

t.test('a link without downlinkAuth refuses every command, saying how to configure it, and still drains; bad settings are config errors', async (t) => {
  const broker = await Mosquitto.create(t);
  const central = await Central.connect(t, broker);
  const gw = await startTestGateway(t, {
    datapoints: [{ id: DP, kind: 'actuator', type: 'number', min: 30, max: 80 }, ...sensors(['a.x'])],
    storage: { sync: false },
  });
  await writeReadings(gw, ['a.x'], 20, Date.UTC(2025, 0, 1));
  const { sync, logs } = await startSync(t, gw, {
    pollMs: 20,
    datapointsIntervalMs: 0,
    links: [{ name: 'central', type: 'mqtt', url: broker.url, reconnectMs: 100 }],
  });
  await eventually(async () => (await sync.snapshot()).acked === 20, 10_000);
  t.ok(
    logs.some((l) => l.level === 40 && /no downlinkAuth/.test(String(l.msg))),
    'warned at start',
  );
  await central.publish([JSON.stringify({ requestId: 'n-1', id: DP, v: 50 })]);
  await central.publish([setpoint('n-2', 50)]);
  for (const rid of ['n-1', 'n-2']) t.match(await central.ackFor(rid), { ok: false, error: { code: 'SYNC_COMMAND_UNSIGNED', message: /downlinkAuth/ } });
  t.equal(gw.gateway.store.latest(DP), undefined, 'nothing applied');

  const bad = (downlinkAuth: unknown) =>
    new SyncService({
      config: { enabled: true, links: [{ name: 'central', type: 'mqtt', url: broker.url, downlinkAuth }] },
      store: gw.gateway.store,
      ingest: gw.gateway.ingest,
      log: testLogger().log,
      clock: gw.gateway.clock,
      gatewayId: GATEWAY_ID,
      dataDir: gw.dataDir,
    });
  t.throws(() => bad({ secret: 'short' }), { code: 'CONFIG_INVALID', message: /downlinkAuth/ });
  t.throws(() => bad({ secret: SECRET, secretFile: '/etc/x' }), { code: 'CONFIG_INVALID', message: /secret or secretFile/ });
  t.throws(() => bad('nope'), { code: 'CONFIG_INVALID', message: /downlinkAuth/ });
  await t.rejects(bad({ secretFile: '/nonexistent/secret' }).start(), { code: 'SYNC_CONFIG', message: /downlinkAuth.secretFile/ });
});
