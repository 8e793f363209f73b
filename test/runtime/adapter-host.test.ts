import t from 'tap';
import { z } from 'zod';
import mqtt from 'mqtt';
import { defineAdapter, type AdapterType } from '../../runtime/adapter.js';
import { startTestGateway, eventually } from '../helpers/gateway.js';

/** A test adapter whose behaviour each test scripts through shared counters. */
function scriptedAdapter(script: {
  failStarts?: number;
  hangOnStop?: boolean;
  events: string[];
  datapoint?: string;
  onCtx?: (ctx: Parameters<ReturnType<AdapterType['create']>['start']>[0]) => void;
}): AdapterType {
  let starts = 0;
  return defineAdapter({
    type: 'scripted',
    description: 'test adapter',
    schema: z.strictObject({ label: z.string().default('x') }),
    create(options, { id }) {
      script.events.push(`create ${id}`);
      return {
        async start(ctx) {
          starts++;
          script.events.push(`start ${id} #${starts}`);
          if (starts <= (script.failStarts ?? 0)) throw new Error(`boom ${starts}`);
          if (script.datapoint) await ctx.datapoints.register({ id: script.datapoint, unit: options.label });
          script.onCtx?.(ctx);
        },
        async stop() {
          script.events.push(`stop ${id}`);
          if (script.hangOnStop) await new Promise(() => undefined);
        },
      };
    },
  }) as unknown as AdapterType;
}

t.test('a failing start is reported on the status topic and retried with backoff; others go on', async (t) => {
  const events: string[] = [];
  const gw = await startTestGateway(
    t,
    { adapters: [{ id: 'flaky', type: 'scripted' }, { id: 'site', type: 'simulated', interval: 60_000 }] },
    { types: [scriptedAdapter({ failStarts: 2, events })], backoff: { initialMs: 100, maxMs: 400 } },
  );
  const statuses = () => Object.fromEntries(gw.gateway.host!.statuses().map((s) => [s.id, s]));
  t.equal(statuses().site!.state, 'running', 'the healthy adapter runs while the other fails');
  // The retry may already be under way on a loaded machine: check the failure as logged, not a snapshot.
  const firstFailure = await eventually(() => gw.logs.find((l) => l.msg === 'adapter failed' && l.adapter === 'flaky'));
  t.match(firstFailure, { code: 'ADAPTER_START_FAILED', err: { message: /boom 1/ } });

  const c = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
  t.teardown(() => c.endAsync());
  const seen: Array<{ state: string; error?: { code: string } }> = [];
  c.on('message', (_topic, payload) => seen.push(JSON.parse(payload.toString())));
  await c.subscribeAsync('outpost/adapter/flaky/status');
  await eventually(() => statuses().flaky!.state === 'running', 5000);
  await eventually(() => seen.some((s) => s.state === 'running'));
  t.equal(statuses().flaky!.restarts, 2);
  t.equal(statuses().flaky!.error, undefined, 'error cleared once running');
  t.same(events.filter((e) => e.startsWith('start flaky')), ['start flaky #1', 'start flaky #2', 'start flaky #3']);
  const failedLogs = gw.logs.filter((l) => l.msg === 'adapter failed' && l.adapter === 'flaky');
  t.equal(failedLogs.length, 2, 'each failure logged once');
  const metrics = await (await fetch(`${gw.httpUrl}/metrics`)).text();
  t.match(metrics, /outpost_adapter_restarts_total\{adapter="flaky"\} 2/);
  t.match(metrics, /outpost_adapter_up\{adapter="flaky",type="scripted"\} 1/);
});

t.test('a failure reported after start stops and restarts the adapter', async (t) => {
  const events: string[] = [];
  let fail: ((err: unknown) => void) | undefined;
  const gw = await startTestGateway(t, { adapters: [{ id: 'a', type: 'scripted' }] }, {
    types: [scriptedAdapter({ events, onCtx: (ctx) => (fail = ctx.fail) })],
    backoff: { initialMs: 50, maxMs: 50 },
  });
  const first = fail!;
  first(new Error('serial port vanished'));
  await eventually(() => events.includes('start a #2') && gw.gateway.host!.statuses()[0]!.state === 'running');
  t.ok(events.indexOf('stop a') < events.indexOf('start a #2'), 'stopped before restarted');
  first(new Error('late report from the old run'));
  await new Promise((r) => setTimeout(r, 150));
  t.notOk(events.includes('start a #3'), 'a failure from a previous run is ignored');
  t.ok(gw.logs.some((l) => l.msg === 'adapter failed' && l.code === 'ADAPTER_CRASHED'));
});

t.test('stop has a time limit and adapters stop in reverse order', async (t) => {
  const events: string[] = [];
  const hanging = scriptedAdapter({ events, hangOnStop: true });
  const gw = await startTestGateway(t, { adapterStopTimeoutMs: 200, adapters: [{ id: 'first', type: 'scripted' }, { id: 'second', type: 'scripted' }] }, { types: [hanging] });
  const started = Date.now();
  await gw.stop();
  t.ok(Date.now() - started < 3000, 'a hanging stop does not block shutdown');
  t.same(events.filter((e) => e.startsWith('stop')), ['stop second', 'stop first']);
  t.equal(gw.logs.filter((l) => l.code === 'ADAPTER_STOP_TIMEOUT').length, 2);
});

t.test('two adapters claiming one datapoint: the second fails with a clear error', async (t) => {
  const events: string[] = [];
  const gw = await startTestGateway(t, { adapters: [{ id: 'one', type: 'scripted' }, { id: 'two', type: 'scripted' }] }, {
    types: [scriptedAdapter({ events, datapoint: 'shared.point' })],
    backoff: { initialMs: 60_000, maxMs: 60_000 },
  });
  const st = gw.gateway.host!.statuses();
  const failed = st.filter((s) => s.state === 'error');
  t.equal(failed.length, 1);
  t.match(failed[0]!.error, { message: /shared\.point is owned by adapter "(one|two)"/ });
});

t.test('disabled adapters are created but not started, and say so', async (t) => {
  const events: string[] = [];
  const gw = await startTestGateway(t, { adapters: [{ id: 'off', type: 'scripted', enabled: false }] }, { types: [scriptedAdapter({ events })] });
  t.same(events, []);
  t.equal(gw.gateway.host!.statuses()[0]!.state, 'disabled');
});

t.test('setpoints to an adapter that is not running get 503', async (t) => {
  const gw = await startTestGateway(t, { adapters: [{ id: 'site', type: 'simulated', interval: 60_000 }] });
  await gw.gateway.host!.stop();
  const res = await fetch(`${gw.httpUrl}/api/datapoints/site.hvac.setpoint/setpoint`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"v":21}' });
  t.equal(res.status, 503);
  t.match(await res.json(), { error: { code: 'ADAPTER_UNAVAILABLE', retryable: true } });
});

t.test('adapter status: published retained, numeric info exported to /metrics', async (t) => {
  const events: string[] = [];
  const gw = await startTestGateway(t, { adapters: [{ id: 'importer', type: 'scripted' }] }, {
    types: [scriptedAdapter({ events, onCtx: (ctx) => ctx.setStatus({ degraded: true, message: '1 of 2 devices offline', info: { files: 3, healthy: false, devices: { a: 1.5 }, name: 'x' } }) })],
  });
  const c = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
  t.teardown(() => c.endAsync());
  const seen: unknown[] = [];
  c.on('message', (_t, p) => seen.push(JSON.parse(p.toString())));
  await c.subscribeAsync('outpost/adapter/importer/status');
  await eventually(() => seen.length > 0);
  t.match(seen.at(-1), { state: 'running', degraded: true, message: '1 of 2 devices offline', info: { files: 3 } });
  const metrics = await (await fetch(`${gw.httpUrl}/metrics`)).text();
  t.match(metrics, /outpost_adapter_info\{adapter="importer",key="files"\} 3/);
  t.match(metrics, /outpost_adapter_info\{adapter="importer",key="healthy"\} 0/);
  t.match(metrics, /outpost_adapter_info\{adapter="importer",key="devices.a"\} 1.5/);
  t.notMatch(metrics, /key="name"/, 'strings are not metrics');
});
