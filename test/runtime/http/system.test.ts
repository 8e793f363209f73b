// GET /api/system and POST /api/system/restart (runtime/http/system.ts) and their probes
// (runtime/system-info.ts): who would start the gateway again, clock synchronisation from
// whichever tool answers, and a restart refused where nothing would bring it back.
import t from 'tap';
import express from 'express';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { OutpostError, toOutpostError } from '../../../core/errors.js';
import { systemClock } from '../../../core/clock.js';
import { systemRoutes, type SystemDeps } from '../../../runtime/http/system.js';
import { EXIT_RESTART, clockSync, detectSupervisor, type Runner } from '../../../runtime/system-info.js';
import type { AuditInput } from '../../../runtime/audit/entry.js';
import { startTestGateway } from '../../helpers/gateway.js';
import type { Teardown } from '../../helpers/teardown.js';

const none = () => false;

t.test('supervisor: a terminal wins, then systemd, containers, pm2, supervisord', async (t) => {
  t.equal(
    detectSupervisor({ env: { INVOCATION_ID: 'x' }, stdinIsTTY: true, exists: none }),
    'terminal',
    'a shell in a unit-run terminal emulator is still a terminal',
  );
  t.equal(detectSupervisor({ env: { INVOCATION_ID: 'abc' }, stdinIsTTY: false, exists: none }), 'systemd');
  t.equal(detectSupervisor({ env: { NOTIFY_SOCKET: '/run/systemd/notify' }, stdinIsTTY: false, exists: none }), 'systemd');
  t.equal(detectSupervisor({ env: {}, stdinIsTTY: false, exists: (p) => p === '/.dockerenv' }), 'container');
  t.equal(detectSupervisor({ env: { container: 'podman' }, stdinIsTTY: false, exists: none }), 'container');
  t.equal(detectSupervisor({ env: { pm_id: '0' }, stdinIsTTY: false, exists: none }), 'pm2');
  t.equal(detectSupervisor({ env: { SUPERVISOR_ENABLED: '1' }, stdinIsTTY: false, exists: none }), 'supervisord');
  t.equal(detectSupervisor({ env: {}, stdinIsTTY: false, exists: none }), 'unknown');
  t.equal(EXIT_RESTART, 75, 'EX_TEMPFAIL: non-zero, so Restart=on-failure restarts');
});

t.test('clock sync: timedatectl, else chronyc, else timesyncd, else unknown; never throws', async (t) => {
  const enoent = Object.assign(new Error('spawn ENOENT'), { code: 'ENOENT' });
  const runner =
    (answers: Record<string, string | Error>): Runner =>
    async (file) => {
      const a = answers[file] ?? enoent;
      if (a instanceof Error) throw a;
      return a;
    };
  t.same(await clockSync(runner({ timedatectl: 'yes\n' }), none), { synchronized: true, source: 'timedatectl', detail: 'NTPSynchronized=yes' });
  t.match(await clockSync(runner({ timedatectl: 'no\n' }), none), { synchronized: false, source: 'timedatectl' });
  const tracking = 'Reference ID    : C0A80001 (gw)\nStratum         : 3\nSystem time     : 0.000012 seconds fast of NTP time\nLeap status     : Normal\n';
  const noSystemd = Object.assign(new Error('Command failed'), { stderr: 'System has not been booted with systemd as init system (PID 1).' });
  t.match(await clockSync(runner({ timedatectl: noSystemd, chronyc: tracking }), none), {
    synchronized: true,
    source: 'chronyc',
    detail: /leap status Normal; system time 0\.000012 seconds fast/,
  });
  t.match(await clockSync(runner({ chronyc: 'Leap status     : Not synchronised\n' }), none), { synchronized: false, source: 'chronyc' });
  t.match(await clockSync(runner({}), (p) => p === '/run/systemd/timesync/synchronized'), { synchronized: true, source: 'timesyncd' });
  const unknown = await clockSync(runner({ timedatectl: noSystemd }), none);
  t.equal(unknown.synchronized, null);
  t.equal(unknown.source, null);
  t.match(
    unknown.detail,
    /^unknown: timedatectl: System has not been booted with systemd.*; chronyc: not installed; no \/run\/systemd\/timesync\/synchronized/,
  );
});

/** systemRoutes behind a stand-in for the auth layer (`role` header) and the gateway's error answer. */
async function serve(t: Teardown, deps: Partial<SystemDeps>): Promise<{ url: string; audit: AuditInput[] }> {
  const audit: AuditInput[] = [];
  const app = express();
  app.use((req, res, next) => {
    const role = req.headers.role as string | undefined;
    if (role) res.locals.principal = { kind: 'session', name: `${role}-user`, role };
    next();
  });
  app.use(
    systemRoutes({
      dataDir: process.cwd(),
      gateway: { id: 'gw', timezone: 'UTC' },
      version: '9.9.9',
      startedAt: Date.now() - 5000,
      clock: systemClock,
      flows: { enabled: false, editorPath: '/flows' },
      log: pino({ level: 'silent' }),
      audit: { record: (e) => audit.push(e) },
      clockProbe: async () => ({ synchronized: false, source: 'timedatectl', detail: 'NTPSynchronized=no' }),
      ...deps,
    }),
  );
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    const e = toOutpostError(err);
    res.status(e.status).json({ error: { code: e.code, message: e.message } });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, audit };
}

const restartAs = (url: string, role?: string) => fetch(`${url}/api/system/restart`, { method: 'POST', headers: role ? { role } : {} });

t.test('restart: admin only, refused when run from a terminal or embedded, audited either way', async (t) => {
  let restarts = 0;
  const terminal = await serve(t, { supervisor: 'terminal', restart: () => restarts++ });
  t.equal((await restartAs(terminal.url, 'operator')).status, 403, 'an operator may not');
  const refused = await restartAs(terminal.url, 'admin');
  t.equal(refused.status, 409);
  t.match(await refused.json(), { error: { code: 'SYSTEM_RESTART_UNSUPERVISED', message: /terminal.*Ctrl-C/ } });
  t.equal(restarts, 0, 'nothing stopped');
  t.match(terminal.audit, [
    { action: 'system.restart', outcome: 'refused', error: { code: 'FORBIDDEN' } },
    { action: 'system.restart', outcome: 'refused', actor: { name: 'admin-user' }, error: { code: 'SYSTEM_RESTART_UNSUPERVISED' } },
  ]);

  const embedded = await serve(t, { supervisor: 'systemd' });
  const r = await restartAs(embedded.url, 'admin');
  t.equal(r.status, 409);
  t.match(await r.json(), { error: { code: 'SYSTEM_RESTART_UNAVAILABLE' } });

  const supervised = await serve(t, { supervisor: 'systemd', restart: () => restarts++ });
  const ok = await restartAs(supervised.url, 'admin');
  t.equal(ok.status, 202);
  t.match(await ok.json(), { restarting: true, supervisor: 'systemd', exitCode: 75, message: /systemd starts it again/ });
  await new Promise((r) => setTimeout(r, 50));
  t.equal(restarts, 1, 'the hook runs once the answer is sent');
  t.equal((await restartAs(supervised.url, 'admin')).status, 202, 'asked again while restarting: the same answer');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(restarts, 1, '… and no second stop');
  t.match(supervised.audit, [{ action: 'system.restart', outcome: 'ok', target: 'gw', details: { supervisor: 'systemd', exitCode: 75 } }]);
});

t.test('GET /api/system on a real gateway: disk, memory, clock, versions, flows, restart', async (t) => {
  const gw = await startTestGateway(t, { gateway: { id: 'sys', timezone: 'Europe/Berlin' }, storage: { retention: { maxBytes: 50_000_000 } } });
  const s = (await (await fetch(`${gw.httpUrl}/api/system`)).json()) as Record<string, Record<string, unknown>>;
  t.match(s.gateway, { id: 'sys', timezone: 'Europe/Berlin' });
  t.match(s.disk, { path: gw.dataDir, totalBytes: Number, freeBytes: Number, usedPercent: Number, storeBytes: Number, budgetBytes: 50_000_000 });
  t.ok((s.disk.storeBytes as number) > 0, 'the database has a size');
  t.ok((s.disk.usedPercent as number) >= 0 && (s.disk.usedPercent as number) <= 100);
  t.match(s.memory, { totalBytes: Number, availableBytes: Number, process: { rssBytes: Number, heapUsedBytes: Number } });
  t.ok((s.memory.process as { rssBytes: number }).rssBytes > 10e6, 'the process RSS');
  t.match(s.cpu, { count: Number, load: { avg1: Number, avg5: Number, avg15: Number } });
  t.ok((s.uptime.processSeconds as number) >= 0 && (s.uptime.hostSeconds as number) > 0);
  t.ok([true, false, null].includes(s.clock.synchronized as boolean | null), `clock: ${JSON.stringify(s.clock)}`);
  t.match(s.versions, { outpost: String, node: process.versions.node, aedes: /^\d+\.\d+/, level: /^\d+/, leveldbBinding: /^\d+/, os: String });
  t.same(s.flows, { enabled: false, editor: null });
  t.match(s.restart, { available: false, exitCode: 75, note: /inside another program/ }, 'an in-process gateway has no restart hook');
  t.same(await (await fetch(`${gw.httpUrl}/api/system/flows`)).json(), { enabled: false, editor: null });
  const refused = await fetch(`${gw.httpUrl}/api/system/restart`, { method: 'POST' });
  t.equal(refused.status, 409, 'no hook, no restart');
  t.ok(new OutpostError('SYSTEM_RESTART_UNAVAILABLE').status === 409);
});
