import t from 'tap';
import { compileGlobs, globMatch, globToRegExp, isGlob } from '../../core/glob.js';
import { compilePatterns } from '../../runtime/sync/priority.js';
import { globToRegExp as retentionGlob } from '../../storage/retention.js';
import { PointMapper } from '../../adapters/bms-files/mapping.js';
import { mayPublish, maySubscribe } from '../../runtime/auth/mqtt-acl.js';

t.test('the dialect: * any run, ** anything, ? one character, the rest literal', async (t) => {
  const m = (glob: string, text: string, separator?: string) => globToRegExp(glob, { separator }).test(text);
  t.ok(m('plant.*', 'plant.meter1.power'), 'no separator: * crosses dots');
  t.ok(m('plant.*', 'plant.'), '* matches an empty run');
  t.notOk(m('plant.*', 'plantx'), '. is literal');
  t.ok(m('m?.kw', 'm1.kw'));
  t.notOk(m('m?.kw', 'm12.kw'), '? is exactly one character');
  t.notOk(m('m?.kw', 'm.kw'));
  t.ok(m('a+b(c)', 'a+b(c)'), 'regex characters are literal');
  t.notOk(m('a+b', 'aab'));
  t.ok(m('a*', 'a/b'), 'no separator given: * crosses /');
  t.notOk(m('a*', 'a/b', '/'), 'with a separator * stays inside');
  t.ok(m('a**', 'a/b/c', '/'), '** crosses the separator');
  t.notOk(m('a?b', 'a/b', '/'), '? is not the separator');
  t.ok(m('x', 'x'));
  t.notOk(m('x', 'xx'), 'anchored');
  t.same([isGlob('a.b'), isGlob('a*'), isGlob('a?')], [false, true, true]);
  t.ok(globMatch('meter*', 'meter12', { separator: '/' }));
  t.notOk(globMatch('meter*', 'meter1/x', { separator: '/' }));
  t.ok(globMatch('exact', 'exact'));
});

t.test('captures number each wildcard left to right; * is lazy', async (t) => {
  t.same([...'EV.RM102.V'.match(globToRegExp('EV.*.V', { capture: true }))!].slice(1), ['RM102']);
  t.same([...'A1-B-c'.match(globToRegExp('A?-*-*', { capture: true }))!].slice(1), ['1', 'B', 'c']);
  t.same([...'a.b.c'.match(globToRegExp('a*.*', { capture: true }))!].slice(1), ['', 'b.c'], 'lazy, as the BMS mapping always was');
});

t.test('compileGlobs: any of several; none matches nothing', async (t) => {
  const alarm = compileGlobs(['*.alarm', 'alarm.*']);
  t.ok(alarm('plant.boiler.alarm'));
  t.ok(alarm('alarm.x'));
  t.notOk(alarm('plant.alarmed'));
  t.notOk(compileGlobs([])('anything'));
});

t.test('sync.fallback.alarms uses the dialect', async (t) => {
  const isAlarm = compilePatterns(['*.alarm', '*.alarm.*', 'alarm.*', 'b?.fault']);
  t.ok(isAlarm('plant.boiler.alarm'), '* crosses dots, as before');
  t.ok(isAlarm('x.alarm.high'));
  t.notOk(isAlarm('x.alarms'));
  t.ok(isAlarm('b1.fault'), '? is one character (it was literal, and no id holds a ?)');
  t.notOk(isAlarm('b12.fault'));
});

t.test('storage.retention.rules patterns use the dialect', async (t) => {
  t.ok(retentionGlob('plant.*').test('plant.meter1.power'));
  t.ok(retentionGlob('m?.kw').test('m1.kw'));
  t.notOk(retentionGlob('m?.kw').test('m12.kw'));
});

t.test('bms-files points[].glob uses the dialect, with captures for the id template', async (t) => {
  const mapper = new PointMapper(
    [
      { glob: 'EV.*.V', id: 'bms.{1}.valve' },
      { glob: 'T?.*', id: 'bms.t{1}.{2}' },
    ] as never,
    'skip',
    'bms',
  );
  t.match(mapper.map('EV.RM102.V'), { id: 'bms.rm102.valve', via: 'glob' });
  t.match(mapper.map('T4.zone'), { id: 'bms.t4.zone' });
  t.equal(mapper.map('T44.zone'), null, '? is exactly one character');
});

t.test('MQTT ACL levels use the dialect with / as the separator; + and # stay MQTT', async (t) => {
  const acl = { publish: ['outpost/dp/meter1.*/value', 'site/s?/#', 'outpost/dp/%u.*/value'], subscribe: ['outpost/dp/+/value'] };
  t.ok(mayPublish(acl, 'x', 'outpost/dp/meter1.power/value'));
  t.notOk(mayPublish(acl, 'x', 'outpost/dp/meter1.a/b/value'), '* stays in its level');
  t.ok(mayPublish(acl, 'x', 'site/s1/a/b'), '? one character, # the rest');
  t.notOk(mayPublish(acl, 'x', 'site/s12/a'));
  t.ok(mayPublish(acl, 'dev', 'outpost/dp/dev.t/value'));
  t.notOk(mayPublish(acl, 'de?', 'outpost/dp/dev.t/value'), 'a ? in a username is no wildcard');
  t.ok(maySubscribe(acl, 'x', 'outpost/dp/+/value'));
  t.notOk(maySubscribe(acl, 'x', 'outpost/#'));
});
