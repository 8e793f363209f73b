import t from 'tap';
import blueprint from '../../adapters/_blueprint/index.js';
import { blueprintErrors } from '../../adapters/_blueprint/errors.js';
import { adapterTypes } from '../../adapters/index.js';
import { OutpostError } from '../../core/errors.js';
import { fakeContext } from '../helpers/fake-context.js';

type Options = Parameters<typeof blueprint.create>[0];

/** The instance with its options as the config loader would parse them. */
function instance(raw: Record<string, unknown> = {}, id = 'bp') {
  return blueprint.create(blueprint.schema.parse(raw) as Options, { id });
}

t.test('the blueprint is a template, not a registered adapter type', async (t) => {
  t.notOk(adapterTypes.has('blueprint'));
  t.notOk(blueprint.schema.safeParse({ intervalMs: 1000, typo: 1 }).success, 'a typo is a config error');
});

t.test('registers its datapoints, reads at start and then every intervalMs on the clock', async (t) => {
  const f = await fakeContext({ id: 'bp' });
  t.teardown(() => f.cleanup());
  const a = instance({ intervalMs: 5000, scale: 0.001, device: { watts: 2000 } });
  await a.start(f.ctx);
  t.same([...f.datapoints.keys()].sort(), ['bp.enabled', 'bp.followed', 'bp.power']);
  t.equal(f.latest('bp.power'), 2, 'first reading before start resolved, scaled');
  t.equal(f.latest('bp.enabled'), true);
  const n = f.values.filter((v) => v.id === 'bp.power').length;
  await f.clock.advance(4999);
  t.equal(f.values.filter((v) => v.id === 'bp.power').length, n, 'nothing before the interval');
  await f.clock.advance(1);
  await f.clock.advance(10_000);
  t.equal(f.values.filter((v) => v.id === 'bp.power').length, n + 3, 'one reading per interval');
  t.match(f.status, { degraded: false, message: 'reading' });
  f.stop();
  await a.stop();
  t.equal(f.clock.pending, 0, 'the loop ended');
});

t.test('setpoints go through onSet; the state reached is published', async (t) => {
  const f = await fakeContext({ id: 'bp' });
  t.teardown(() => f.cleanup());
  const a = instance({ device: { watts: 800 } });
  await a.start(f.ctx);
  t.equal(await f.set('bp.enabled', false), false);
  t.equal(f.latest('bp.enabled'), false);
  await f.clock.advance(10_000);
  t.equal(f.latest('bp.power'), 0, 'the device is off');
  f.stop();
  await a.stop();
});

t.test('a device that goes quiet degrades the status; a broken setting fails the start for good', async (t) => {
  const f = await fakeContext({ id: 'bp' });
  t.teardown(() => f.cleanup());
  const a = instance({ intervalMs: 1000, device: { silentAfter: 1 } });
  await a.start(f.ctx);
  await f.clock.advance(1000);
  t.match(f.status, { degraded: true, message: /BLUEPRINT_DEVICE_TIMEOUT/ });
  f.stop();
  await a.stop();

  const g = await fakeContext({ id: 'bp2' });
  t.teardown(() => g.cleanup());
  const err = await instance({ device: { mode: 'broken' } }, 'bp2')
    .start(g.ctx)
    .catch((e: unknown) => e);
  t.ok(err instanceof OutpostError);
  t.match(
    err,
    { code: 'BLUEPRINT_SETTING_INVALID', retryable: false, status: blueprintErrors.BLUEPRINT_SETTING_INVALID.status },
    'not retryable: the host will not retry it',
  );
  const silent = await fakeContext({ id: 'bp3' });
  t.teardown(() => silent.cleanup());
  await t.rejects(
    instance({ device: { silentAfter: 0 } }, 'bp3').start(silent.ctx),
    { code: 'BLUEPRINT_DEVICE_TIMEOUT', retryable: true },
    'no answer at all: a retryable start failure',
  );
});

t.test('follows another datapoint through ctx.topics under the broker prefix; subscriptions end at stop', async (t) => {
  const f = await fakeContext({ id: 'bp', prefix: 'site7' });
  t.teardown(() => f.cleanup());
  const a = instance({ follow: 'grid.power' });
  await a.start(f.ctx);
  t.same(
    f.subscriptions.map((s) => s.filter),
    ['site7/dp/grid.power/value'],
  );
  t.equal(f.deliver('outpost/dp/grid.power/value', { v: 1, t: 1 }), 0, 'not the default prefix');
  t.equal(f.deliver('site7/dp/grid.power/value', { v: 42, t: 1 }), 1);
  await f.clock.advance(0);
  t.equal(f.latest('bp.followed'), 42);
  f.stop();
  await a.stop();
  t.same(f.subscriptions, [], 'removed at stop although the adapter did not unsubscribe');
});

t.test('the fake context refuses writes to datapoints the adapter does not own, as the host does', async (t) => {
  const f = await fakeContext({ id: 'bp' });
  t.teardown(() => f.cleanup());
  f.foreign('meter.power', 'modbus');
  await t.rejects(f.ctx.bus.publishValue('meter.power', 1), { code: 'DP_CONFLICT' });
  await t.rejects(f.ctx.bus.publishValue('nobody.power', 1), { code: 'DP_UNKNOWN' });
  await t.rejects(f.ctx.bus.publish('outpost/dp/meter.power/value', '{}'), { code: 'TOPIC_PROTECTED' });
  t.same(f.values, []);
});
