import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MtVerifier, encodeMt, type MtFormat } from '../../../adapters/iridium/mt.js';
import { tempDir } from '../../helpers/teardown.js';

const format: MtFormat = {
  key: Buffer.from('00112233445566778899aabbccddeeff', 'hex'),
  context: 'buoy-7',
  datapoints: [
    { id: 'site.hvac.setpoint', decimals: 1, type: 'number' },
    { id: 'site.pump.enabled', decimals: 0, type: 'boolean' },
  ],
  commands: ['mailbox_check', 'send_now'],
};

t.test('an authentic message is decoded and its counter stored durably', async (t) => {
  const dir = await tempDir(t, 'outpost-iridium-mt-');
  const v = await MtVerifier.open(dir, format);
  const msg = encodeMt(format, 5, [
    { kind: 'setpoint', id: 'site.hvac.setpoint', v: 21.5 },
    { kind: 'setpoint', id: 'site.pump.enabled', v: false, expiresInS: 3600 },
    { kind: 'command', name: 'send_now' },
  ]);
  t.ok(msg.length <= 24, `compact: ${msg.length} bytes for three commands`);
  const accepted = await v.accept(msg);
  t.equal(accepted.counter, 5);
  t.same(accepted.commands, [
    { kind: 'setpoint', id: 'site.hvac.setpoint', v: 21.5 },
    { kind: 'setpoint', id: 'site.pump.enabled', v: false, expiresInS: 3600 },
    { kind: 'command', name: 'send_now' },
  ]);
  t.same(JSON.parse(await readFile(join(dir, 'mt-counter.json'), 'utf8')), { last: 5 });
  const reopened = await MtVerifier.open(dir, format);
  t.equal(reopened.lastCounter, 5, 'counter survives a restart');
  await t.rejects(reopened.accept(msg), { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'replayed' } }, 'replay after restart refused');
});

t.test('replays and old counters are refused', async (t) => {
  const v = await MtVerifier.open(await tempDir(t, 'outpost-iridium-mt-'), format);
  const m10 = encodeMt(format, 10, [{ kind: 'command', name: 'mailbox_check' }]);
  await v.accept(m10);
  await t.rejects(v.accept(m10), { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'replayed', counter: 10, last: 10 } });
  await t.rejects(v.accept(encodeMt(format, 9, [{ kind: 'command', name: 'mailbox_check' }])), { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'replayed' } });
  t.equal((await v.accept(encodeMt(format, 11, [{ kind: 'command', name: 'mailbox_check' }]))).counter, 11);
});

t.test('forgeries are refused before anything is interpreted', async (t) => {
  const v = await MtVerifier.open(await tempDir(t, 'outpost-iridium-mt-'), format);
  const good = encodeMt(format, 1, [{ kind: 'setpoint', id: 'site.hvac.setpoint', v: 19 }]);
  for (let i = 0; i < good.length; i++) {
    const bad = Buffer.from(good);
    bad[i]! ^= 0x01;
    await t.rejects(v.accept(bad), { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'forged' } }, `bit flip in byte ${i}`);
  }
  const otherKey = encodeMt({ ...format, key: Buffer.alloc(16, 7) }, 2, [{ kind: 'setpoint', id: 'site.hvac.setpoint', v: 30 }]);
  await t.rejects(v.accept(otherKey), { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'forged' } }, 'wrong key');
  const otherSite = encodeMt({ ...format, context: 'buoy-8' }, 3, [{ kind: 'setpoint', id: 'site.hvac.setpoint', v: 30 }]);
  await t.rejects(v.accept(otherSite), { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'forged' } }, 'message for another site');
  await t.rejects(v.accept(Buffer.from('hello world')), { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'forged' } }, 'plain text');
  await t.rejects(v.accept(Buffer.alloc(3)), { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'malformed' } }, 'too short');
  await t.rejects(v.accept(Buffer.alloc(300)), { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'malformed' } }, 'too long');
  t.equal(v.lastCounter, -1, 'nothing was accepted');
  t.equal((await v.accept(good)).counter, 1, 'the genuine message still works');
});

t.test('authentic but malformed bodies are refused as malformed', async (t) => {
  const v = await MtVerifier.open(await tempDir(t, 'outpost-iridium-mt-'), format);
  // Build by hand with a valid tag: unknown op / unknown datapoint index / empty.
  const { createHmac } = await import('node:crypto');
  const sign = (body: Buffer) =>
    Buffer.concat([
      body,
      createHmac('sha256', format.key)
        .update('outpost-iridium-mt/1')
        .update(Buffer.from([0]))
        .update(format.context)
        .update(Buffer.from([0]))
        .update(body)
        .digest()
        .subarray(0, 8),
    ]);
  await t.rejects(v.accept(sign(Buffer.from([1, 1, 0x09]))), { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'malformed' } }, 'unknown op');
  await t.rejects(v.accept(sign(Buffer.from([1, 2, 0x01, 7, 2]))), { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'malformed' } }, 'unknown datapoint index');
  await t.rejects(v.accept(sign(Buffer.from([1, 3]))), { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'malformed' } }, 'no commands');
  await t.rejects(v.accept(sign(Buffer.from([2, 4, 0x03, 0]))), { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'malformed' } }, 'unknown version');
  t.equal(v.lastCounter, -1);
});

t.test('short keys are a configuration error', async (t) => {
  await t.rejects(MtVerifier.open(await tempDir(t, 'outpost-iridium-mt-'), { ...format, key: Buffer.alloc(8) }), { code: 'CONFIG_INVALID' });
});

t.test('schedules (op 0x04) and request refs (op 0x05): exact round trip, bounded, refused clearly', async (t) => {
  const v = await MtVerifier.open(await tempDir(t, 'outpost-iridium-mt-'), format);
  const base = Date.UTC(2026, 11, 6, 18, 0, 0);
  const entries = [
    { at: base, v: 21.5 },
    { at: base + 3_600_000, v: 18 },
    { at: base + 7_200_500, v: -2.5 }, // sub-second parts are dropped: whole seconds on the wire
  ];
  const msg = encodeMt(format, 10, [
    { kind: 'schedule', id: 'site.hvac.setpoint', entries, ref: '0123456789abcdef' },
    { kind: 'schedule', id: 'site.pump.enabled', entries: [] },
  ]);
  t.ok(msg.length <= 40, `compact: ${msg.length} bytes for a 3-entry schedule, a ref and a clear`);
  const accepted = await v.accept(msg);
  t.same(accepted.commands, [
    {
      kind: 'schedule',
      id: 'site.hvac.setpoint',
      entries: [
        { at: base, v: 21.5 },
        { at: base + 3_600_000, v: 18 },
        { at: base + 7_200_000, v: -2.5 },
      ],
      ref: '0123456789abcdef',
    },
    { kind: 'schedule', id: 'site.pump.enabled', entries: [] },
  ]);
  const many = Array.from({ length: 65 }, (_, i) => ({ at: base + i * 1000, v: 1 }));
  t.throws(() => encodeMt(format, 11, [{ kind: 'schedule', id: 'site.hvac.setpoint', entries: many }]), { code: 'IRIDIUM_CODEC' }, 'at most 64 entries');
  const wide = Array.from({ length: 60 }, (_, i) => ({ at: base + i * 86_400_000, v: 999.9 }));
  t.throws(() => encodeMt(format, 11, [{ kind: 'schedule', id: 'site.hvac.setpoint', entries: wide }]), { code: 'IRIDIUM_MO_SIZE' }, 'at most 270 bytes');
  t.throws(() => encodeMt(format, 11, [{ kind: 'command', name: 'send_now', ref: 'xyz' }]), { code: 'IRIDIUM_CODEC' }, 'a ref is 16 hex digits');
});

t.test('a schedule or ref that lies is refused as malformed', async (t) => {
  const v = await MtVerifier.open(await tempDir(t, 'outpost-iridium-mt-'), format);
  const { createHmac } = await import('node:crypto');
  const sign = (body: Buffer) =>
    Buffer.concat([
      body,
      createHmac('sha256', format.key)
        .update('outpost-iridium-mt/1')
        .update(Buffer.from([0]))
        .update(format.context)
        .update(Buffer.from([0]))
        .update(body)
        .digest()
        .subarray(0, 8),
    ]);
  const malformed = { code: 'IRIDIUM_MT_REFUSED', details: { reason: 'malformed' } };
  // 0x04, index 0, base 0, count 100 (with 2 bytes left)
  await t.rejects(v.accept(sign(Buffer.from([1, 1, 0x04, 0, 0, 100, 0, 0]))), malformed, 'a count beyond the bytes left');
  await t.rejects(v.accept(sign(Buffer.from([1, 2, 0x05, 1, 2, 3, 4, 5, 6, 7, 8]))), malformed, 'a ref naming no op');
  await t.rejects(v.accept(sign(Buffer.from([1, 3, 0x05, 1, 2, 3]))), malformed, 'a truncated ref');
  t.equal(v.lastCounter, -1, 'nothing accepted');
});
