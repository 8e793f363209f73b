import t from 'tap';
import type { Reading } from '../../../adapters/iridium/codec.js';
import { affordableBytes, packMessage } from '../../../adapters/iridium/pack-plan.js';
import type { Priority } from '../../../adapters/iridium/budget.js';
import { threePointCodec } from './harness.js';

const codec = threePointCodec();
const T = Date.UTC(2025, 5, 1);
const series = (id: string, n: number, from = 0): Reading[] =>
  Array.from({ length: n }, (_, i) => ({ id, t: T + (from + i) * 60_000 + (i % 7) * 1000, v: Math.round(Math.sin(i) * 5000) / 100 }));
/** A budget: credits left per class today. */
const left = (limits: Record<Priority, number>) => (credits: number, p: Priority) => credits <= limits[p];

t.test('history rides free in the credit latest values already pay for, and no further when history may spend nothing', async (t) => {
  const latest = [
    { id: 'a.level', t: T, v: 1.5 },
    { id: 'b.temp', t: T, v: 20.1 },
  ];
  const packed = packMessage(codec, 1, { alarm: [], latest, history: series('a.level', 200, 1) }, left({ alarm: 10, latest: 10, history: 0 }))!;
  t.equal(packed.priority, 'latest');
  t.equal(packed.counts.latest, 2);
  t.ok(packed.counts.history > 0, `${packed.counts.history} history readings in the paid credit`);
  t.ok(packed.bytes.length <= 50, `one credit: ${packed.bytes.length} bytes`);
});

t.test('the alarm reserve pays for alarms only; latest values fill the alarm credit and use their own budget beyond it', async (t) => {
  const alarm = [{ id: 'c.alarm', t: T, v: true }];
  // Latest values have nothing left today; only the reserve (2 credits) remains.
  const reserveOnly = packMessage(codec, 1, { alarm, latest: series('a.level', 300), history: [] }, left({ alarm: 2, latest: 0, history: 0 }))!;
  t.equal(reserveOnly.priority, 'alarm');
  t.equal(reserveOnly.counts.alarm, 1);
  t.ok(reserveOnly.bytes.length <= 50, `the alarm's one credit, filled: ${reserveOnly.bytes.length} bytes`);
  t.ok(reserveOnly.counts.latest > 0, 'latest values in the rest of that credit');
  // With room for latest values, they may take up to their own limit (3 credits).
  const more = packMessage(codec, 1, { alarm, latest: series('a.level', 300), history: [] }, left({ alarm: 7, latest: 3, history: 0 }))!;
  t.ok(more.bytes.length > 50 && more.bytes.length <= 150, `${more.bytes.length} bytes: within latest's 3 credits`);
});

t.test('nothing affordable: no message', async (t) => {
  t.equal(packMessage(codec, 1, { alarm: [], latest: series('a.level', 3), history: [] }, left({ alarm: 5, latest: 0, history: 0 })), undefined);
  t.equal(affordableBytes(left({ alarm: 7, latest: 0, history: 0 }), 'alarm'), 340, 'seven credits: the whole 340-byte message');
  t.equal(affordableBytes(left({ alarm: 2, latest: 0, history: 0 }), 'alarm'), 100);
});
