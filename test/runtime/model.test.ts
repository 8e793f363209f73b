import t from 'tap';
import { parseValuePayload, validatePoint, validateValue, validateSetpoint, DatapointSchema, MAX_FUTURE_MS } from '../../core/datapoint.js';
import { topicMatches, Topics } from '../../runtime/topics.js';
import { isLoopbackAddress } from '../../runtime/net.js';
import { hashPassword, verifyPassword, hashToken, verifyToken, isPasswordHash } from '../../runtime/auth/passwords.js';

const NOW = Date.UTC(2026, 10, 23, 12);
const num = DatapointSchema.parse({ id: 'a.b', adapter: 'x' });

t.test('value payloads: the design format, bare values, and junk', async (t) => {
  t.same(parseValuePayload('{"v":230.1,"t":1763800000000}'), { v: 230.1, t: 1763800000000, q: undefined });
  t.strictSame(parseValuePayload('42'), { v: 42 }, 'a bare number has no time: the ingest stamps it on arrival');
  t.strictSame(parseValuePayload('{"v":1}'), { v: 1, t: undefined, q: undefined }, 'nor has a message without "t"');
  t.throws(() => parseValuePayload(''), { code: 'VALUE_MALFORMED' });
  t.throws(() => parseValuePayload('{"v":1'), { code: 'VALUE_MALFORMED', message: /not JSON/ });
  t.throws(() => parseValuePayload(Buffer.from([0xff, 0x00, 0x13])), { code: 'VALUE_MALFORMED' });
  t.throws(() => parseValuePayload('{"t":1}'), { code: 'VALUE_MALFORMED', message: /no "v"/ });
  t.throws(() => parseValuePayload('{"v":1,"unit":"W"}'), { code: 'VALUE_MALFORMED', message: /unknown field.*unit/ });
});

t.test('values are checked against their datapoint type and time', async (t) => {
  t.same(validateValue(num, { v: 1.5, t: NOW }, NOW), { v: 1.5, t: NOW });
  t.throws(() => validateValue(num, { v: 'x', t: NOW }, NOW), { code: 'VALUE_TYPE' });
  t.throws(() => validateValue(num, { v: Infinity, t: NOW }, NOW), { code: 'VALUE_TYPE' });
  t.throws(() => validateValue(num, { v: 1, t: 1763800000 }, NOW), { code: 'VALUE_TIME', message: /seconds instead of milliseconds/ });
  t.throws(() => validateValue(num, { v: 1, t: NOW + MAX_FUTURE_MS + 1 }, NOW), { code: 'VALUE_TIME' });
  t.throws(() => validateValue(num, { v: 1, t: 1.5 }, NOW), { code: 'VALUE_TIME' });
  t.throws(() => validateValue(num, { v: null, t: NOW }, NOW), { code: 'VALUE_TYPE', message: /null/ });
  t.same(validateValue(num, { v: null, t: NOW, q: 'stale' }, NOW), { v: null, t: NOW, q: 'stale' });
  t.throws(() => validateValue(num, { v: 1, t: NOW, q: 'meh' }, NOW), { code: 'VALUE_MALFORMED' });
  const bool = DatapointSchema.parse({ id: 'b', adapter: 'x', type: 'boolean' });
  t.equal(validateValue(bool, { v: 1, t: NOW }, NOW).v, true);
  t.throws(() => validateValue(bool, { v: 'on', t: NOW }, NOW), { code: 'VALUE_TYPE' });
  const json = DatapointSchema.parse({ id: 'j', adapter: 'x', type: 'json' });
  t.throws(() => validateValue(json, { v: 'x'.repeat(70_000), t: NOW }, NOW), { code: 'VALUE_TYPE' });
});

t.test('points published in bulk: a valid, normalised point is kept as it is, others are copied normalised or refused', async (t) => {
  const reading = { id: 'a.b', v: 1.5, t: NOW };
  t.equal(validatePoint(num, reading, NOW), reading, 'a number of a number datapoint: the same object, no copy');
  const gap = { id: 'a.b', v: null, t: NOW, q: 'bad' as const };
  t.equal(validatePoint(num, gap, NOW), gap, 'a gap with its quality flag: the same object');
  const good = { id: 'a.b', v: 2, t: NOW, q: 'good' };
  t.same(validatePoint(num, good, NOW), { id: 'a.b', v: 2, t: NOW }, 'q "good" is dropped (a copy)');
  t.equal(good.q, 'good', "the caller's point is not changed");
  const stale = { id: 'a.b', v: 3, t: NOW, q: 'stale' };
  t.same(validatePoint(num, stale, NOW), { id: 'a.b', v: 3, t: NOW, q: 'stale' }, 'a stale number keeps its flag');
  const bool = DatapointSchema.parse({ id: 'b', adapter: 'x', type: 'boolean' });
  t.same(validatePoint(bool, { id: 'b', v: 1, t: NOW }, NOW), { id: 'b', v: true, t: NOW }, '0/1 of a boolean datapoint become false/true');
  t.throws(() => validatePoint(num, { id: 'a.b', v: 'x', t: NOW }, NOW), { code: 'VALUE_TYPE' });
  t.throws(() => validatePoint(num, { id: 'a.b', v: Number.NaN, t: NOW }, NOW), { code: 'VALUE_TYPE' });
  t.throws(() => validatePoint(num, { id: 'a.b', v: 1, t: 1763800000 }, NOW), { code: 'VALUE_TIME' });
  t.throws(() => validatePoint(num, { id: 'a.b', v: 1, t: NOW + MAX_FUTURE_MS + 1 }, NOW), { code: 'VALUE_TIME' });
  t.throws(() => validatePoint(num, { id: 'a.b', v: null, t: NOW }, NOW), { code: 'VALUE_TYPE', message: /null/ });
  t.throws(() => validatePoint(num, { id: 'a.b', v: null, t: NOW, q: 'meh' }, NOW), { code: 'VALUE_MALFORMED' });
});

t.test('setpoints are refused, never clamped', async (t) => {
  const act = DatapointSchema.parse({ id: 'hvac.sp', adapter: 'x', kind: 'actuator', min: 16, max: 26, unit: '°C' });
  t.same(validateSetpoint(act, { v: 21 }, NOW), { v: 21 });
  t.throws(() => validateSetpoint(act, { v: 30 }, NOW), { code: 'SETPOINT_OUT_OF_RANGE', message: /\[16, 26\]/ });
  t.throws(() => validateSetpoint(act, { v: 25, max: 24 }, NOW), { code: 'SETPOINT_OUT_OF_RANGE' }, 'requester range narrows the allowed one');
  t.throws(() => validateSetpoint(act, { v: 'warm' }, NOW), { code: 'VALUE_TYPE' });
  t.throws(() => validateSetpoint(act, 21, NOW), { code: 'VALUE_MALFORMED' });
  t.throws(() => validateSetpoint(act, { v: 21, expires: NOW - 1 }, NOW), { code: 'SETPOINT_EXPIRED' });
  t.throws(() => validateSetpoint(act, { v: 21, extra: 1 }, NOW), { code: 'VALUE_MALFORMED' });
  t.throws(() => validateSetpoint(num, { v: 1 }, NOW), { code: 'DP_NOT_ACTUATOR' });
  const mode = DatapointSchema.parse({ id: 'mode', adapter: 'x', kind: 'actuator', type: 'string', allowed: ['auto', 'off'] });
  t.throws(() => validateSetpoint(mode, { v: 'turbo' }, NOW), { code: 'SETPOINT_OUT_OF_RANGE', message: /not one of/ });
});

t.test('topic helpers', async (t) => {
  const topics = new Topics('outpost');
  t.same(topics.parseDatapointTopic('outpost/dp/a.b/value'), { id: 'a.b', kind: 'value' });
  t.same(topics.parseDatapointTopic('outpost/dp/a.b/set/result'), { id: 'a.b', kind: 'set/result' });
  t.equal(topics.parseDatapointTopic('other/dp/a/value'), undefined);
  t.same(topicMatches('tele/+/SENSOR', 'tele/plug1/SENSOR'), ['plug1']);
  t.same(topicMatches('a/#', 'a/b/c'), ['b/c']);
  t.equal(topicMatches('a/+', 'a/b/c'), undefined);
  t.equal(topicMatches('a/b/c', 'a/b'), undefined);
});

t.test('loopback detection', async (t) => {
  for (const a of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) t.ok(isLoopbackAddress(a), a);
  for (const a of ['10.0.0.1', '192.168.1.2', '::ffff:10.1.1.1', 'fe80::1', '', undefined]) t.notOk(isLoopbackAddress(a), String(a));
});

t.test('password and token hashing', async (t) => {
  const hash = await hashPassword('correct horse');
  t.ok(isPasswordHash(hash));
  t.notMatch(hash, /correct horse/);
  t.ok(await verifyPassword('correct horse', hash));
  t.notOk(await verifyPassword('wrong horse', hash));
  t.notOk(await verifyPassword('x', 'garbage'));
  const th = hashToken('a'.repeat(32));
  t.ok(verifyToken('a'.repeat(32), [th]));
  t.notOk(verifyToken('b'.repeat(32), [th]));
});
