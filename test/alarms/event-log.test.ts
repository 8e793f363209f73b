// The event log on disk (bounded files, read back at the next start, rate-limited per source
// and kind) and the runtime's own events (transitions only).
import t from 'tap';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { EventLog } from '../../runtime/alarms/event-log.js';
import { RuntimeEvents } from '../../runtime/alarms/runtime-events.js';
import { Topics } from '../../runtime/topics.js';
import type { GatewayEventInput } from '../../core/events.js';
import { createLogger } from '../../runtime/log.js';
import { FakeClock } from '../helpers/fake-context.js';
import { tempDir } from '../helpers/teardown.js';

const log = createLogger({ level: 'silent', pretty: false });

t.test('files are rotated by size, read back at the next start, ids go on', async (t) => {
  const dir = await tempDir(t, 'outpost-events-');
  const clock = new FakeClock();
  const events = new EventLog({ dir, log, clock, maxFileBytes: 8 * 1024, keepFiles: 2, tailSize: 100 });
  await events.open();
  for (let i = 0; i < 300; i++) {
    // One key per event: the rate limit is not what this test is about.
    events.add({ source: `meter${i % 7}`, kind: 'meter.stale', severity: i % 3 === 0 ? 'alarm' : 'info', message: `event ${i} ${'x'.repeat(100)}` }, `k${i}`);
    clock.advance(10);
  }
  await events.close();
  const files = (await readdir(dir)).sort();
  t.same(files, ['events.1.jsonl', 'events.jsonl'], 'two files kept');
  for (const f of files) t.ok((await stat(join(dir, f))).size <= 8 * 1024, `${f} stays under maxFileBytes`);

  const again = new EventLog({ dir, log, clock, maxFileBytes: 8 * 1024, keepFiles: 2, tailSize: 100 });
  await again.open();
  t.teardown(() => again.close());
  const page = again.query({ limit: 10 });
  t.equal(page.items[0]?.id, 300, 'newest first, read back from the files');
  t.match(page.items[0]?.message, /^event 299 /);
  t.ok(page.more);
  const older = again.query({ limit: 10, before: page.items[9]!.id });
  t.equal(older.items[0]?.id, 290, '"before" pages back');
  t.ok(
    again.query({ limit: 100, severity: 'alarm' }).items.every((e) => e.severity === 'alarm'),
    'severity filter: that severity or worse',
  );
  t.ok(
    again.query({ limit: 100, source: 'meter3' }).items.every((e) => e.source === 'meter3'),
    'source filter',
  );
  t.ok(again.sources().includes('meter0'));
  const next = again.add({ source: 'gateway', kind: 'gateway.started', severity: 'info', message: 'started' }, 'k');
  t.equal(next?.id, 301, 'ids go on across restarts and rotations');
});

t.test('repeated events of a source and kind are rate-limited and counted', async (t) => {
  const clock = new FakeClock();
  const events = new EventLog({ dir: await tempDir(t, 'outpost-events-'), log, clock, perMinute: 3 });
  await events.open();
  t.teardown(() => events.close());
  const flap = (n: number): void => {
    for (let i = 0; i < n; i++) events.record({ source: 'cp1', kind: 'meter.stale', severity: 'warning', message: `stale ${i}` });
  };
  flap(10);
  events.record({ source: 'cp2', kind: 'meter.stale', severity: 'warning', message: 'another source' });
  t.equal(events.query({ limit: 100, source: 'cp1' }).items.length, 3, 'three a minute per (source, kind)');
  t.equal(events.suppressed, 7);
  t.equal(events.query({ limit: 100, source: 'cp2' }).items.length, 1, 'other sources are not held back');
  await clock.advance(61_000);
  flap(1);
  t.equal(events.query({ limit: 1, source: 'cp1' }).items[0]?.suppressedBefore, 7, 'the next one says how many were left out');

  // Whatever an adapter passes is bounded.
  events.record({ source: 'x'.repeat(500), kind: 'k', severity: 'loud' as never, message: 'm'.repeat(5000), data: { blob: 'b'.repeat(10_000) } });
  const e = events.query({ limit: 1 }).items[0]!;
  t.equal(e.severity, 'info', 'an unknown severity is info');
  t.ok(e.source.length <= 65 && e.message.length <= 501, 'source and message cut');
  t.same(e.data, { truncated: true }, 'large data replaced');
});

t.test('runtime events: transitions only', async (t) => {
  const got: GatewayEventInput[] = [];
  const subscribed: string[] = [];
  const rt = new RuntimeEvents({
    bus: {
      subscribe: async (filter: string) => {
        subscribed.push(filter);
        return async () => undefined;
      },
    },
    topics: new Topics('site'),
    events: { record: (e) => got.push(e) },
  });
  await rt.start();
  t.same(subscribed, ['site/adapter/+/status', 'site/sync/status', 'site/gateway/storage'], 'listens where the runtime publishes its states');
  const err = { error: { code: 'MODBUS_TIMEOUT', message: 'no answer from unit 3' } };
  rt.adapter('meter', 'starting', {});
  rt.adapter('meter', 'error', err);
  rt.adapter('meter', 'starting', {});
  rt.adapter('meter', 'error', err);
  rt.adapter('meter', 'running', {});
  rt.adapter('modem', 'failed', { error: { code: 'CONFIG_INVALID', message: 'no port' } });
  t.same(
    got.map((e) => `${e.source} ${e.kind} ${e.severity}`),
    ['meter adapter.error warning', 'meter adapter.recovered info', 'modem adapter.failed alarm'],
    'a retry loop is one failure and one recovery',
  );
  t.match(got[0]!.message, /no answer from unit 3 \(retrying\)/);
  got.length = 0;
  rt.link({ name: 'central', state: 'connecting' });
  rt.link({ name: 'central', state: 'up' });
  rt.link({ name: 'central', state: 'down', lastError: 'ECONNREFUSED' });
  rt.link({ name: 'central', state: 'connecting' });
  rt.link({ name: 'central', state: 'down', lastError: 'ECONNREFUSED' });
  rt.link({ name: 'central', state: 'up' });
  rt.storageState('ok', undefined);
  rt.storageState('read-only', 'ENOSPC');
  rt.storageState('ok', undefined);
  t.same(
    got.map((e) => `${e.kind} ${e.message}`),
    [
      'link.down sync link central down: ECONNREFUSED',
      'link.up sync link central up again',
      'storage.read-only storage is read-only, readings are refused: ENOSPC',
      'storage.ok storage writable again',
    ],
    'a reconnect attempt that fails again is not a new "down"; storage ok at start is no event',
  );
});
