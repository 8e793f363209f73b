// POST /api/system/restart on the real process (runtime/cli.ts): it stops cleanly and exits
// with EXIT_RESTART (75), on which systemd's Restart=on-failure starts it again (README,
// Operations); readings acknowledged before and while it stops are all there after the start.
// Run under "systemd" (INVOCATION_ID set, as systemd sets it for every unit).
import t from 'tap';
import mqtt from 'mqtt';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnOutpost, processYamlHead } from '../helpers/process.js';
import { localApi } from '../helpers/local-api.js';
import { tempDir } from '../helpers/teardown.js';
import { EXIT_RESTART } from '../../runtime/system-info.js';

function mqttPortOf(stdout: string): number {
  const m = /MQTT on 127\.0\.0\.1:(\d+)/.exec(stdout);
  if (!m) throw new Error(`no MQTT port in: ${stdout}`);
  return Number(m[1]);
}

t.test('restart: a clean stop, exit 75, nothing acknowledged lost, the restart audited', async (t) => {
  const dir = await tempDir(t, 'outpost-restart-');
  const dataDir = join(dir, 'data');
  const file = join(dir, 'outpost.yaml');
  await writeFile(file, processYamlHead({ id: 'restart', timezone: 'UTC', dataDir }));
  const api = localApi(dataDir);
  const env = { INVOCATION_ID: 'outpost-restart-test' };

  const first = spawnOutpost(['start', '-c', file], { env });
  t.teardown(() => first.child.kill('SIGKILL'));
  await first.ready;
  const system = (await (await api('/api/system')).json()) as { restart: { available: boolean; supervisor: string; exitCode: number; note: string } };
  t.match(system.restart, { available: true, supervisor: 'systemd', exitCode: EXIT_RESTART, note: /systemd starts it again/ });

  // A device publishing QoS 1 readings without pause, before and while the gateway stops.
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPortOf(first.stdout())}`, { reconnectPeriod: 0, clientId: 'restart-probe' });
  client.on('error', () => undefined);
  const base = Date.now() - 60_000;
  const acked: number[] = [];
  let stop = false;
  const publishing = (async () => {
    for (let i = 0; !stop && i < 100_000; i++) {
      try {
        await client.publishAsync('outpost/dp/restart.probe/value', JSON.stringify({ v: i, t: base + i }), { qos: 1 });
        acked.push(i);
      } catch {
        return; // the connection closed with the gateway: what was not acknowledged is the device's to resend
      }
    }
  })();
  while (acked.length < 200) await new Promise((r) => setTimeout(r, 10));

  const answer = await api('/api/system/restart', { method: 'POST' });
  t.equal(answer.status, 202);
  t.match(await answer.json(), { restarting: true, supervisor: 'systemd', exitCode: EXIT_RESTART, message: /stops cleanly/ });
  const exit = await first.exited;
  stop = true;
  // A publish in flight when the connection closed may never settle: end the client, wait a moment at most.
  await client.endAsync(true).catch(() => undefined);
  await Promise.race([publishing, new Promise((r) => setTimeout(r, 2000))]);
  t.same(exit, { code: EXIT_RESTART, signal: null }, `exits with ${EXIT_RESTART}: Restart=on-failure starts it again`);
  t.match(first.stdout(), /Outpost stopping for a restart \(exit code 75/, 'says so on the terminal');
  t.match(first.stdout(), /"exitCode":75,"msg":"stopped"/, 'stopped cleanly: adapters, HTTP, broker, storage');
  t.match(first.stdout(), /restart requested/);
  t.ok(acked.length >= 200, `${acked.length} readings acknowledged`);

  // What systemd does on exit 75: start it again, on the same data.
  const second = spawnOutpost(['start', '-c', file], { env });
  t.teardown(() => second.child.kill('SIGKILL'));
  await second.ready;
  const stored = (await (await api(`/api/datapoints/restart.probe/values?from=${base}&to=${base + 100_000}&limit=100000`)).json()) as {
    values: Array<{ v: number }>;
  };
  const have = new Set(stored.values.map((p) => p.v));
  const lost = acked.filter((v) => !have.has(v));
  t.same(lost, [], `every one of the ${acked.length} acknowledged readings is stored after the restart`);

  const audit = (await (await api('/api/audit?action=system.restart')).json()) as { items: Array<Record<string, unknown>> };
  t.match(
    audit.items,
    [{ action: 'system.restart', outcome: 'ok', target: 'restart', details: { supervisor: 'systemd', exitCode: EXIT_RESTART } }],
    'the restart is in the audit trail',
  );

  second.child.kill('SIGTERM');
  t.equal((await second.exited).code, 0, 'SIGTERM still exits 0');
});
