import t from 'tap';
import { z } from 'zod';
import mqtt from 'mqtt';
import { defineAdapter, type AdapterType } from '../../runtime/adapter.js';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { OutpostError } from '../../core/errors.js';

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
    {
      adapters: [
        { id: 'flaky', type: 'scripted' },
        { id: 'site', type: 'simulated', interval: 60_000 },
      ],
    },
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
  t.same(
    events.filter((e) => e.startsWith('start flaky')),
    ['start flaky #1', 'start flaky #2', 'start flaky #3'],
  );
  const failedLogs = gw.logs.filter((l) => l.msg === 'adapter failed' && l.adapter === 'flaky');
  t.equal(failedLogs.length, 2, 'each failure logged once');
  const metrics = await (await fetch(`${gw.httpUrl}/metrics`)).text();
  t.match(metrics, /outpost_adapter_restarts_total\{adapter="flaky"\} 2/);
  t.match(metrics, /outpost_adapter_up\{adapter="flaky",type="scripted"\} 1/);
});

t.test('a failure reported after start stops and restarts the adapter', async (t) => {
  const events: string[] = [];
  let fail: ((err: unknown) => void) | undefined;
  const gw = await startTestGateway(
    t,
    { adapters: [{ id: 'a', type: 'scripted' }] },
    {
      types: [scriptedAdapter({ events, onCtx: (ctx) => (fail = ctx.fail) })],
      backoff: { initialMs: 50, maxMs: 50 },
    },
  );
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
  const gw = await startTestGateway(
    t,
    {
      adapterStopTimeoutMs: 200,
      adapters: [
        { id: 'first', type: 'scripted' },
        { id: 'second', type: 'scripted' },
      ],
    },
    { types: [hanging] },
  );
  const started = Date.now();
  await gw.stop();
  t.ok(Date.now() - started < 3000, 'a hanging stop does not block shutdown');
  t.same(
    events.filter((e) => e.startsWith('stop')),
    ['stop second', 'stop first'],
  );
  t.equal(gw.logs.filter((l) => l.code === 'ADAPTER_STOP_TIMEOUT').length, 2);
});

t.test('two adapters claiming one datapoint: the second fails with a clear error', async (t) => {
  const events: string[] = [];
  const gw = await startTestGateway(
    t,
    {
      adapters: [
        { id: 'one', type: 'scripted' },
        { id: 'two', type: 'scripted' },
      ],
    },
    {
      types: [scriptedAdapter({ events, datapoint: 'shared.point' })],
      backoff: { initialMs: 60_000, maxMs: 60_000 },
    },
  );
  const st = gw.gateway.host!.statuses();
  // DP_CONFLICT is not retryable: no retry can mend two adapters claiming one id (a config error).
  const failed = st.filter((s) => s.state === 'failed');
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
  const res = await fetch(`${gw.httpUrl}/api/datapoints/site.hvac.setpoint/setpoint`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"v":21}',
  });
  t.equal(res.status, 503);
  t.match(await res.json(), { error: { code: 'ADAPTER_UNAVAILABLE', retryable: true } });
});

t.test('adapter status: published retained, numeric info exported to /metrics', async (t) => {
  const events: string[] = [];
  const gw = await startTestGateway(
    t,
    { adapters: [{ id: 'importer', type: 'scripted' }] },
    {
      types: [
        scriptedAdapter({
          events,
          onCtx: (ctx) =>
            ctx.setStatus({ degraded: true, message: '1 of 2 devices offline', info: { files: 3, healthy: false, devices: { a: 1.5 }, name: 'x' } }),
        }),
      ],
    },
  );
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

// ---- The contract the host enforces (issue 23) ----

type Ctx = Parameters<ReturnType<AdapterType['create']>['start']>[0];

/** An adapter type whose instances hand their context to the test (`ctxs[id]`, the latest run's). */
function openAdapter(
  type: string,
  onStart: (ctx: Ctx, run: number) => Promise<void> | void = () => undefined,
): { type: AdapterType; ctxs: Record<string, Ctx>; runs: Record<string, number> } {
  const ctxs: Record<string, Ctx> = {};
  const runs: Record<string, number> = {};
  const adapter = defineAdapter({
    type,
    description: 'test adapter',
    schema: z.strictObject({}),
    create(_options, { id }) {
      return {
        async start(ctx) {
          runs[id] = (runs[id] ?? 0) + 1;
          ctxs[id] = ctx;
          await onStart(ctx, runs[id]!);
        },
        async stop() {},
      };
    },
  }) as unknown as AdapterType;
  return { type: adapter, ctxs, runs };
}

t.test("an adapter writes only its own datapoints: another adapter's or the config's are refused, nothing stored", async (t) => {
  const open = openAdapter('owner', async (ctx) => {
    await ctx.datapoints.register({ id: `${ctx.id}.power`, type: 'number' });
  });
  const gw = await startTestGateway(
    t,
    {
      datapoints: [{ id: 'cfg.limit', kind: 'sensor', type: 'number' }],
      adapters: [
        { id: 'one', type: 'owner' },
        { id: 'two', type: 'owner' },
      ],
    },
    { types: [open.type] },
  );
  const { one, two } = open.ctxs;
  const store = gw.gateway.store;
  await one!.bus.publishValue('one.power', 5);
  t.equal(store.latest('one.power')?.v, 5, 'its own datapoint is written');

  await t.rejects(two!.bus.publishValue('one.power', 99), {
    code: 'DP_CONFLICT',
    message: /adapter "two" may not write datapoint one\.power: it is owned by adapter "one"/,
  });
  t.equal(store.latest('one.power')?.v, 5, "the other adapter's reading is not overwritten");

  await t.rejects(two!.bus.publishValue('cfg.limit', 1), { code: 'DP_CONFLICT', message: /defined in the configuration file/ });
  t.equal(store.latest('cfg.limit'), undefined, 'nothing stored for a config datapoint');

  const t0 = Date.now() - 1000;
  await t.rejects(
    two!.bus.publishValues([
      { id: 'two.power', v: 1, t: t0 },
      { id: 'one.power', v: 2, t: t0 },
    ]),
    { code: 'DP_CONFLICT' },
  );
  t.equal(store.latest('two.power'), undefined, 'a batch with a foreign datapoint stores nothing, not even its own points');
  t.same(
    await store.query('one.power'),
    [{ t: store.latest('one.power')!.t, v: 5 }].map((p) => ({ ...p })),
    'one.power still holds only its own reading',
  );

  await t.rejects(two!.bus.publish('outpost/dp/one.power/value', '{"v":7}'), { code: 'TOPIC_PROTECTED' }, 'no raw publication around the check');
  await two!.bus.publishValues([{ id: 'two.power', v: 3, t: t0 }]);
  t.equal(store.latest('two.power')?.v, 3, 'its own batch goes through');
});

t.test('subscriptions through ctx: removed by the host on stop and restart, never delivered twice', async (t) => {
  const got: Array<{ run: number; topic: string }> = [];
  const open = openAdapter('listener', async (ctx, run) => {
    // Subscribes at every start and never unsubscribes (its stop does nothing).
    await ctx.bus.subscribe('site/door/#', (topic) => got.push({ run, topic }));
  });
  const gw = await startTestGateway(t, { adapters: [{ id: 'l', type: 'listener' }] }, { types: [open.type], backoff: { initialMs: 20, maxMs: 20 } });
  const bus = gw.gateway.bus;
  await bus.publish('site/door/1', 'open');
  await eventually(() => got.length === 1);

  open.ctxs.l!.fail(new Error('lost the device'));
  await eventually(() => open.runs.l === 2 && gw.gateway.host!.statuses()[0]!.state === 'running');
  got.length = 0;
  await bus.publish('site/door/2', 'open');
  await eventually(() => got.length >= 1);
  await new Promise((r) => setTimeout(r, 100));
  t.same(got, [{ run: 2, topic: 'site/door/2' }], 'after a restart: delivered once, to the new run only');

  await gw.gateway.host!.stop();
  got.length = 0;
  await bus.publish('site/door/3', 'open');
  await new Promise((r) => setTimeout(r, 100));
  t.same(got, [], 'nothing delivered after stop');
});

declare module '../../runtime/services.js' {
  interface ServiceTypes {
    'test-echo': { echo(s: string): string };
  }
}

t.test('services through ctx: per gateway, withdrawn by the host on stop and restart', async (t) => {
  const seen: Array<string | undefined> = [];
  const provider = openAdapter('provider', (ctx) => {
    // Provided and never withdrawn by the adapter itself.
    ctx.services.register('test-echo', ctx.id, { echo: (s) => `${ctx.id}:${s}` });
  });
  const user = openAdapter('user', (ctx) => {
    ctx.services.watch('test-echo', 'p', (svc) => seen.push(svc?.echo('hi')));
  });
  const gw = await startTestGateway(
    t,
    {
      adapters: [
        { id: 'p', type: 'provider' },
        { id: 'u', type: 'user' },
      ],
    },
    { types: [provider.type, user.type], backoff: { initialMs: 20, maxMs: 20 } },
  );
  const services = gw.gateway.services;
  t.equal(services.get('test-echo', 'p')?.echo('x'), 'p:x');
  provider.ctxs.p!.fail(new Error('crash'));
  await eventually(() => provider.runs.p === 2 && gw.gateway.host!.statuses()[0]!.state === 'running');
  t.equal(services.get('test-echo', 'p')?.echo('y'), 'p:y', 'provided again after a restart (the old one was withdrawn, no "already provided")');
  t.notOk(
    gw.logs.some((l) => l.msg === 'adapter failed' && l.code === 'ADAPTER_START_FAILED'),
    'the restart did not fail',
  );
  t.ok(seen.filter((s) => s === undefined).length >= 1, 'the watcher saw the service go');
  await gw.gateway.host!.stop();
  t.equal(services.get('test-echo', 'p'), undefined, 'withdrawn at stop');
  const before = seen.length;
  services.register('test-echo', 'p', { echo: () => 'late' });
  t.equal(seen.length, before, "a stopped adapter's watcher is gone");
});

t.test('a start error that is not retryable: failed, with its message, logged once, no retries', async (t) => {
  const open = openAdapter('misconfigured', () => {
    throw new OutpostError('CONFIG_INVALID', 'template "meter-x": register 40001 has no type');
  });
  const gw = await startTestGateway(
    t,
    {
      adapters: [
        { id: 'm', type: 'misconfigured' },
        { id: 'site', type: 'simulated', interval: 60_000 },
      ],
    },
    {
      types: [open.type],
      backoff: { initialMs: 20, maxMs: 20 },
    },
  );
  const c = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
  t.teardown(() => c.endAsync());
  const seen: Array<{ state: string; error?: { code: string; message: string } }> = [];
  c.on('message', (_topic, payload) => seen.push(JSON.parse(payload.toString())));
  await c.subscribeAsync('outpost/adapter/m/status');
  await eventually(() => seen.at(-1)?.state === 'failed');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(open.runs.m, 1, 'started once, not retried');
  const status = gw.gateway.host!.statuses().find((s) => s.id === 'm')!;
  t.match(status, { state: 'failed', error: { code: 'CONFIG_INVALID', message: /register 40001 has no type/ } });
  t.notOk(status.info && 'retryInMs' in status.info, 'no retry announced');
  t.match(seen.at(-1), { state: 'failed', error: { message: /register 40001/ } });
  t.equal(gw.logs.filter((l) => l.adapter === 'm' && l.level === 50).length, 1, 'logged once');
  t.equal(gw.gateway.host!.statuses().find((s) => s.id === 'site')!.state, 'running', 'the others go on');
  const api = (await (await fetch(`${gw.httpUrl}/api/adapters`)).json()) as { items: Array<{ id: string; state: string }> };
  t.match(
    api.items.find((a) => a.id === 'm'),
    { state: 'failed', error: { message: /register 40001/ } },
    'the dashboard gets it from the API',
  );
});
