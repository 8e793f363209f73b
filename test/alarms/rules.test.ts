// The alarm rules with a fake clock: what each rule decides about one subject (rules.ts), and
// the engine turning that into alarms stored on `alarm.<id>` (a real MemoryStore and
// DatapointRegistry), with raise, acknowledge and clear written to a real event log.
import t from 'tap';
import { RuleConditions, thresholdZone } from '../../runtime/alarms/rules.js';
import { alarmRuleSchema, alarmsSchema } from '../../runtime/alarms/config.js';
import { AlarmEngine } from '../../runtime/alarms/engine.js';
import { EventLog } from '../../runtime/alarms/event-log.js';
import { DatapointRegistry } from '../../runtime/datapoints/registry.js';
import { MemoryStore } from '../../storage/memory-store.js';
import { createLogger } from '../../runtime/log.js';
import { isOutpostError } from '../../core/errors.js';
import { FakeClock } from '../helpers/fake-context.js';
import { tempDir } from '../helpers/teardown.js';

const S = 1000;
const rule = (raw: Record<string, unknown>) => new RuleConditions(alarmRuleSchema.parse(raw));

t.test('threshold: above with hysteresis and a delay', async (t) => {
  const rc = rule({ id: 'hot', type: 'threshold', datapoint: 'boiler.temp', above: 100, hysteresis: 10, forS: 30 });
  const t0 = 1_000_000;
  t.equal(rc.onReading('boiler.temp', { v: 105, t: t0 }, t0), undefined, 'beyond the limit: waiting out forS');
  t.equal(rc.conditions.get('boiler.temp')?.state, 'pending');
  t.equal(rc.onReading('boiler.temp', { v: 110, t: t0 }, t0 + 10 * S), undefined);
  t.same(rc.tick(t0 + 29 * S), [], 'not raised before 30 s');
  t.same(rc.tick(t0 + 30 * S), [{ key: 'boiler.temp', to: 'active' }], 'raised once the reading stayed beyond for 30 s');
  t.equal(rc.conditions.get('boiler.temp')?.value, 110, 'the reading that raised it');
  t.equal(rc.onReading('boiler.temp', { v: 95, t: t0 }, t0 + 40 * S), undefined, '95 is inside the limit but in the deadband: stays raised');
  t.equal(rc.onReading('boiler.temp', { v: 91, t: t0 }, t0 + 41 * S), undefined, '91: still in the deadband');
  t.same(rc.onReading('boiler.temp', { v: 90, t: t0 }, t0 + 42 * S), { key: 'boiler.temp', to: 'normal' }, 'cleared at limit − hysteresis');
  t.same(rc.activeKeys(), []);

  // The delay needs the reading beyond all along: one reading back inside starts it again.
  const t1 = t0 + 100 * S;
  rc.onReading('boiler.temp', { v: 101, t: t1 }, t1);
  rc.onReading('boiler.temp', { v: 100, t: t1 }, t1 + 20 * S);
  t.same(rc.tick(t1 + 31 * S), [], 'interrupted: not raised');
  rc.onReading('boiler.temp', { v: 120, t: t1 }, t1 + 40 * S);
  t.same(rc.onReading('boiler.temp', { v: 120, t: t1 }, t1 + 70 * S), { key: 'boiler.temp', to: 'active' }, 'a reading after the delay raises it too');
  t.equal(rc.onReading('boiler.temp', { v: null, t: t1, q: 'stale' }, t1 + 80 * S), undefined, 'a stale reading changes nothing');
  t.equal(rc.onReading('boiler.temp', { v: 'hot', t: t1 }, t1 + 81 * S), undefined, 'text is not compared');
  t.equal(rc.conditions.get('boiler.temp')?.state, 'active');
});

t.test('threshold: below, at once, booleans, both limits', async (t) => {
  const low = rule({ id: 'low', type: 'threshold', datapoint: 'tank.level', below: 10, hysteresis: 2 });
  t.same(low.onReading('tank.level', { v: 9.9, t: 0 }, 0), { key: 'tank.level', to: 'active' }, 'forS 0: raised by the first reading');
  t.equal(low.onReading('tank.level', { v: 11, t: 0 }, 1), undefined, '11 is in the deadband (10 … 12)');
  t.same(low.onReading('tank.level', { v: 12, t: 0 }, 2), { key: 'tank.level', to: 'normal' });
  const door = rule({ id: 'door', type: 'threshold', datapoint: 'door.open', above: 0.5 });
  t.same(door.onReading('door.open', { v: true, t: 0 }, 0), { key: 'door.open', to: 'active' }, 'true counts as 1');
  t.same(door.onReading('door.open', { v: false, t: 0 }, 1), { key: 'door.open', to: 'normal' });
  const band = { above: 30, below: 10, hysteresis: 1 };
  t.same(
    [5, 9.5, 10.5, 11, 20, 29, 29.5, 31].map((v) => thresholdZone(band, v)),
    ['beyond', 'beyond', 'deadband', 'inside', 'inside', 'inside', 'deadband', 'beyond'],
  );
  const r = alarmRuleSchema.safeParse({ id: 'x', type: 'threshold', datapoint: 'a', above: 10, below: 9, hysteresis: 1 });
  t.notOk(r.success, 'limits whose deadbands overlap are refused (nothing could clear the alarm)');
});

t.test('stale: no good reading for afterS', async (t) => {
  const rc = rule({ id: 'quiet', type: 'stale', datapoint: 'meter.*.power', afterS: 60 });
  t.ok(rc.matches('meter.main.power') && !rc.matches('meter.main.energy'), 'the glob is compiled once');
  const t0 = 5_000_000;
  rc.watch('meter.main.power', t0, t0);
  t.same(rc.tick(t0 + 60 * S), [], 'at exactly afterS: not yet');
  t.same(rc.tick(t0 + 61 * S), [{ key: 'meter.main.power', to: 'active' }], 'stale after 60 s without a reading');
  t.equal(
    rc.onReading('meter.main.power', { v: null, t: t0 + 62 * S, q: 'stale' }, t0 + 62 * S),
    undefined,
    'a reading the adapter marks stale is no sign of life',
  );
  t.same(rc.onReading('meter.main.power', { v: 5, t: t0 + 63 * S }, t0 + 63 * S), { key: 'meter.main.power', to: 'normal' }, 'fresh again');
  t.equal(rc.onReading('meter.main.power', { v: 5, t: t0 }, t0 + 64 * S), undefined, 'an old reading (an import) does not move the clock back');
  t.same(rc.tick(t0 + 123 * S), [], 'measured from the newest reading time');
  t.same(rc.tick(t0 + 124 * S), [{ key: 'meter.main.power', to: 'active' }]);
});

t.test('adapter: error or failed for forS, across retries', async (t) => {
  const rc = rule({ id: 'down', type: 'adapter', adapter: '*', forS: 30 });
  const t0 = 9_000_000;
  t.equal(rc.onAdapterState('meter', 'error', t0), undefined, 'down: waiting out forS');
  t.equal(rc.onAdapterState('meter', 'starting', t0 + 5 * S), undefined, 'a retry starting keeps it down');
  t.equal(rc.onAdapterState('meter', 'error', t0 + 10 * S), undefined, 'failing again: the delay still runs from the first failure');
  t.same(rc.tick(t0 + 29 * S), []);
  t.same(rc.tick(t0 + 30 * S), [{ key: 'meter', to: 'active' }]);
  t.same(rc.onAdapterState('meter', 'running', t0 + 40 * S), { key: 'meter', to: 'normal' }, 'running again clears it');
  t.equal(rc.onAdapterState('modem', 'error', t0), undefined);
  t.equal(rc.onAdapterState('modem', 'running', t0 + 10 * S), undefined, 'up again within forS: never raised');
  t.same(rc.tick(t0 + 60 * S), []);
  const now = rule({ id: 'failed', type: 'adapter', adapter: 'modem', forS: 0 });
  t.notOk(now.matches('meter'));
  t.same(now.onAdapterState('modem', 'failed', t0), { key: 'modem', to: 'active' }, 'forS 0: raised at once');
  t.same(now.onAdapterState('modem', 'stopped', t0 + S), { key: 'modem', to: 'normal' }, 'a stop is no fault');
});

t.test('the engine: alarms on alarm.<id>, acknowledged, cleared, each in the event log', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 5, 1));
  const log = createLogger({ level: 'silent', pretty: false });
  const store = new MemoryStore();
  await store.open();
  const registry = new DatapointRegistry(store, log);
  for (const id of ['site.a.temp', 'site.b.temp', 'site.meter.power']) await registry.register({ id, adapter: 'sim', type: 'number' });
  await store.write([{ id: 'site.meter.power', v: 1, t: clock.now() - 3_600_000 }]);
  const events = new EventLog({ dir: await tempDir(t, 'outpost-alarm-events-'), log, clock });
  await events.open();
  t.teardown(() => events.close());
  const config = alarmsSchema.parse({
    rules: [
      { id: 'hot', type: 'threshold', datapoint: 'site.*.temp', above: 50, hysteresis: 5, forS: 10, severity: 'warning' },
      { id: 'meter-quiet', type: 'stale', datapoint: 'site.meter.power', afterS: 60, message: 'Main meter silent' },
      { id: 'anything-quiet', type: 'stale', datapoint: '*', afterS: 600 },
    ],
  });
  const publish = async (id: string, v: unknown): Promise<void> => store.write([{ id, v: v as object, t: clock.now() }]);
  const engine = new AlarmEngine({ config, clock, log, events, datapoints: registry, latest: (id) => store.latest(id), publish });
  await engine.start();
  t.teardown(() => engine.stop());
  await engine.flush();
  t.same(registry.get('alarm.hot')?.type, 'json', 'each rule has its datapoint');
  t.match(store.latest('alarm.hot')?.v, { active: false, severity: 'warning', acknowledged: false }, 'published cleared at first start');

  engine.observe('site.a.temp', { v: 61, t: clock.now() });
  await clock.advance(9 * S);
  t.equal(engine.get('hot')?.active, false, 'not before forS');
  await clock.advance(2 * S);
  await engine.flush();
  const raised = store.latest('alarm.hot')?.v as Record<string, unknown>;
  t.match(
    raised,
    { active: true, severity: 'warning', acknowledged: false, subjects: ['site.a.temp'], value: 61, message: 'site.a.temp is 61: above 50' },
    'raised by the timer',
  );
  t.equal(raised.since, clock.now() - S, 'since: when it was raised (the tick after forS)');
  engine.observe('site.b.temp', { v: 70, t: clock.now() });
  await clock.advance(11 * S);
  await engine.flush();
  t.same(
    (store.latest('alarm.hot')?.v as { subjects?: string[] } | undefined)?.subjects,
    ['site.a.temp', 'site.b.temp'],
    'a second datapoint joins the raised alarm',
  );

  const acked = await engine.acknowledge('hot', 'user olga');
  t.match(acked.alarm, { active: true, acknowledged: true, ackedBy: 'user olga', ackedAt: clock.now() });
  t.ok(acked.stored, 'stored before the answer');
  t.match(store.latest('alarm.hot')?.v, { acknowledged: true, ackedBy: 'user olga' });
  await t.rejects(engine.acknowledge('hot', 'user olga'), { code: 'ALARM_ACKNOWLEDGED' }, 'twice: refused with who did it');
  await t.rejects(engine.acknowledge('nope', 'user olga'), { code: 'ALARM_UNKNOWN' });
  await t.rejects(engine.acknowledge('meter-quiet', 'user olga'), { code: 'ALARM_NOT_RAISED' });

  engine.observe('site.a.temp', { v: 40, t: clock.now() });
  t.equal(engine.get('hot')?.active, true, 'one datapoint still beyond the limit');
  engine.observe('site.b.temp', { v: 46, t: clock.now() });
  t.equal(engine.get('hot')?.active, true, '46 is in the deadband');
  engine.observe('site.b.temp', { v: 45, t: clock.now() });
  await engine.flush();
  t.match(store.latest('alarm.hot')?.v, { active: false, clearedAt: clock.now(), acknowledged: true });

  // The meter's newest reading is an hour old, yet a start gives it afterS to report.
  t.equal(engine.get('meter-quiet')?.active, false);
  await clock.advance(40 * S);
  await engine.flush();
  t.match(
    engine.get('meter-quiet'),
    { active: true, message: 'Main meter silent', severity: 'alarm', subjects: ['site.meter.power'] },
    'stale 60 s after start',
  );
  engine.observe('site.meter.power', { v: 2, t: clock.now() });
  t.equal(engine.get('meter-quiet')?.active, false, 'cleared by a fresh reading');

  // A rule on every datapoint does not watch the alarm datapoints (no alarm of alarms).
  await clock.advance(601 * S);
  t.same(engine.get('anything-quiet')?.subjects?.sort(), ['site.a.temp', 'site.b.temp', 'site.meter.power']);

  const kinds = events.query({ limit: 50, source: 'alarms' }).items.map((e) => `${e.kind} ${e.data?.alarm}`);
  t.same(
    kinds.filter((k) => !k.includes('anything')).reverse(),
    ['alarm.raised hot', 'alarm.acknowledged hot', 'alarm.cleared hot', 'alarm.raised meter-quiet', 'alarm.cleared meter-quiet', 'alarm.raised meter-quiet'],
    'raise, acknowledge and clear are in the event log (the meter went quiet again meanwhile)',
  );
  t.equal(
    events.query({ limit: 50, severity: 'warning' }).items.filter((e) => e.data?.alarm === 'hot').length,
    1,
    'the raise has the rule severity; ack and clear are info',
  );
  t.match(events.query({ limit: 50 }).items.find((e) => e.kind === 'alarm.acknowledged')?.data, { by: 'user olga' });

  // Node-RED's alarms: its own ids, not a rule's.
  const pump = await engine.raise({ id: 'pump-fault', severity: 'alarm', message: 'Pump P1 fault', by: 'flow:n1' });
  t.match(pump, { active: true, source: 'flows', message: 'Pump P1 fault' });
  t.equal(registry.get('alarm.pump-fault')?.adapter, 'alarms');
  await t.rejects(engine.raise({ id: 'hot', severity: 'alarm', by: 'flow:n1' }), { code: 'ALARM_OWNED' });
  await t.rejects(engine.raise({ id: 'Bad Id', severity: 'alarm', by: 'flow:n1' }), { code: 'ALARM_INVALID' });
  t.match(await engine.clear('pump-fault', 'flow:n1'), { active: false });
  t.equal(await engine.clear('never-raised', 'flow:n1'), undefined, 'clearing an alarm never raised changes nothing');
  t.equal(events.query({ limit: 10, source: 'flows' }).items.length, 2);
  t.ok(isOutpostError(await engine.acknowledge('hot', 'x').catch((e: unknown) => e)), 'errors are OutpostErrors');
});

t.test('the engine at the next start: active alarms and their acknowledgement come back from alarm.<id>', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 5, 2));
  const log = createLogger({ level: 'silent', pretty: false });
  const store = new MemoryStore();
  await store.open();
  const registry = new DatapointRegistry(store, log);
  await registry.register({ id: 'tank.level', adapter: 'sim', type: 'number' });
  const events = new EventLog({ dir: await tempDir(t, 'outpost-alarm-events-'), log, clock });
  await events.open();
  t.teardown(() => events.close());
  const publish = async (id: string, v: unknown): Promise<void> => store.write([{ id, v: v as object, t: clock.now() }]);
  const deps = { clock, log, events, datapoints: registry, latest: (id: string) => store.latest(id), publish };
  const rules = [
    { id: 'low', type: 'threshold', datapoint: 'tank.level', below: 10, hysteresis: 2 },
    { id: 'gone', type: 'adapter', adapter: 'x', forS: 0 },
  ];
  const first = new AlarmEngine({ ...deps, config: alarmsSchema.parse({ rules }) });
  await first.start();
  first.observe('tank.level', { v: 3, t: clock.now() });
  first.observeAdapter('x', 'failed');
  await first.acknowledge('low', 'user olga');
  await first.stop();

  // The adapter rule is gone from the configuration at the next start.
  const second = new AlarmEngine({ ...deps, config: alarmsSchema.parse({ rules: rules.slice(0, 1) }) });
  await second.start();
  t.teardown(() => second.stop());
  t.match(second.get('low'), { active: true, acknowledged: true, ackedBy: 'user olga', subjects: ['tank.level'] }, 'active and acknowledged, as before');
  t.match(second.get('gone'), { active: false, source: 'rule' }, 'the alarm of a removed rule is cleared');
  second.observe('tank.level', { v: 11, t: clock.now() });
  t.equal(second.get('low')?.active, true, 'the restored alarm keeps its deadband');
  second.observe('tank.level', { v: 12, t: clock.now() });
  t.equal(second.get('low')?.active, false, 'and clears as it would have');
});
