import t from 'tap';
import { recordingLogger } from '../helpers/logs.js';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AuditLog } from '../../runtime/audit/audit-log.js';
import type { AuditInput } from '../../runtime/audit/entry.js';
import { actorFromSource, actorText, sourceOf } from '../../runtime/audit/actor.js';
import { audited, flowChangeEntry } from '../../runtime/audit/record.js';
import { OutpostError } from '../../core/errors.js';
import { tempDir } from '../helpers/teardown.js';

const setpoint = (i: number): AuditInput => ({
  action: 'setpoint',
  actor: { kind: 'user', name: 'alice' },
  target: 'site.hvac.setpoint',
  details: { v: i, note: 'x'.repeat(200) },
  outcome: 'ok',
  address: '192.0.2.7',
});

t.test('actors read the same in the log, the files and the dashboard', async (t) => {
  t.same(sourceOf({ kind: 'session', name: 'alice', role: 'operator' }, '::ffff:10.0.0.5'), { actor: { kind: 'user', name: 'alice' }, address: '10.0.0.5' });
  t.same(sourceOf({ kind: 'token', name: 'deploybot', role: 'admin' }, undefined), { actor: { kind: 'token', name: 'deploybot' } });
  t.equal(actorText({ kind: 'user', name: 'alice' }), 'user alice');
  t.equal(actorText({ kind: 'mqtt', name: 'meter-7', username: 'meter1' }), 'mqtt meter-7 (user meter1)');
  t.same(actorFromSource('schedule'), { kind: 'schedule', name: 'schedule' });
  t.same(actorFromSource('upstream:central'), { kind: 'upstream', name: 'central' });
  t.same(actorFromSource('adapter:iridium'), { kind: 'adapter', name: 'iridium' });
  t.same(actorFromSource('node-red:ab12'), { kind: 'flow', name: 'ab12' });
  t.equal(actorText(actorFromSource('upstream:central')), 'upstream:central');
  t.match(flowChangeEntry({ user: 'admin', ok: true, status: 204, method: 'POST', path: '/flows/flows' }), { action: 'flows.deploy', outcome: 'ok' });
  t.match(flowChangeEntry({ user: 'admin', ok: false, status: 400, method: 'POST', path: '/flows/flows' }), {
    action: 'flows.deploy',
    outcome: 'refused',
    error: { code: 'HTTP_400' },
  });
  t.match(flowChangeEntry({ user: 'admin', ok: true, status: 200, method: 'POST', path: '/flows/inject/n1' }), { action: 'flows.change' });
});

t.test('entries survive a restart, ids go on, the API pages newest first', async (t) => {
  const dir = await tempDir(t, 'outpost-audit-');
  const { log } = recordingLogger();
  const a = new AuditLog({ dir, log });
  await a.open();
  for (let i = 1; i <= 5; i++) a.record(setpoint(i));
  a.record({ action: 'user.add', actor: { kind: 'user', name: 'admin' }, target: 'bob', details: { role: 'viewer' }, outcome: 'ok' });
  await a.close();

  const b = new AuditLog({ dir, log });
  await b.open();
  const all = b.query({ limit: 100 });
  t.same(
    all.items.map((e) => e.id),
    [6, 5, 4, 3, 2, 1],
    'loaded from the file, newest first',
  );
  t.equal(all.items[0]!.by, 'user admin');
  b.record(setpoint(7));
  t.equal(b.query({ limit: 1 }).items[0]!.id, 7, 'ids continue after the restart');
  const page = b.query({ limit: 3 });
  t.same(
    page.items.map((e) => e.id),
    [7, 6, 5],
  );
  t.equal(page.more, true);
  const older = b.query({ limit: 3, before: 5 });
  t.same(
    older.items.map((e) => e.id),
    [4, 3, 2],
  );
  t.same(
    b.query({ limit: 10, action: 'user' }).items.map((e) => e.action),
    ['user.add'],
    'an action family matches its members',
  );
  t.same(b.query({ limit: 10, action: 'use' }).items, [], 'but not a mere prefix of a name');
  await b.close();
});

t.test('one actor cannot fill the trail: fields are bounded, repeated refusals are rate-limited', async (t) => {
  const dir = await tempDir(t, 'outpost-audit-');
  const { log } = recordingLogger();
  let now = 1_000_000;
  const a = new AuditLog({ dir, log, clock: { now: () => now } as never });
  await a.open();
  a.record({ action: 'user.add', actor: { kind: 'user', name: 'admin' }, target: 'bob', outcome: 'ok' });
  const huge = 'x'.repeat(65_000);
  const flooder = { kind: 'mqtt' as const, name: huge, username: huge };
  for (let i = 0; i < 2_100; i++) {
    a.record({ action: 'setpoint', actor: flooder, target: `nope.${i}.${huge}`, outcome: 'refused', error: { code: 'DP_UNKNOWN', message: huge } });
  }
  const page = a.query({ limit: 100 });
  t.equal(page.items.length, 11, 'ten refusals of that actor a minute, and the earlier entry');
  t.same(
    a.query({ limit: 10, action: 'user' }).items.map((e) => e.target),
    ['bob'],
    'the admin action is still there',
  );
  t.ok(
    page.items.every((e) => JSON.stringify(e).length < 2_000),
    'each entry stays small whatever the client id, target or message',
  );
  t.equal(a.suppressed, 2_090, 'the rest are counted');
  now += 61_000;
  a.record({ action: 'setpoint', actor: flooder, target: 'nope', outcome: 'refused', error: { code: 'DP_UNKNOWN', message: 'unknown' } });
  t.equal(a.query({ limit: 1 }).items[0]!.suppressedBefore, 2_090, 'the next one recorded says how many were not');
  await a.close();
});

t.test('rotation keeps the files within the bound; the newest are still served', async (t) => {
  const dir = await tempDir(t, 'outpost-audit-');
  const { log } = recordingLogger();
  const maxFileBytes = 16 * 1024;
  const a = new AuditLog({ dir, log, maxFileBytes, keepFiles: 2, tailSize: 20 });
  await a.open();
  const n = 2_000; // about 330 bytes each: 660 KB written through a 32 KB bound
  for (let i = 1; i <= n; i++) {
    a.record(setpoint(i));
    if (i % 250 === 0) await a.flush();
  }
  await a.close();
  const files = (await readdir(dir)).sort();
  t.same(files, ['audit.1.jsonl', 'audit.jsonl'], 'two files kept');
  for (const f of files) {
    const size = (await stat(join(dir, f))).size;
    t.ok(size <= maxFileBytes, `${f} is ${size} bytes (bound ${maxFileBytes})`);
  }
  const lines = (await Promise.all(files.map((f) => readFile(join(dir, f), 'utf8')))).flatMap((s) => s.split('\n').filter(Boolean));
  t.ok(
    lines.every((l) => JSON.parse(l).action === 'setpoint'),
    'every line is a whole entry',
  );
  t.ok(
    lines.some((l) => JSON.parse(l).id === n),
    'the newest entry is on disk',
  );

  const b = new AuditLog({ dir, log, maxFileBytes, keepFiles: 2, tailSize: 20 });
  await b.open();
  const newest = b.query({ limit: 5 });
  t.same(
    newest.items.map((e) => e.details?.v),
    [n, n - 1, n - 2, n - 3, n - 4],
    'the API returns the newest after a restart',
  );
  t.equal(b.query({ limit: 1000 }).items.length, 20, 'the memory tail is bounded');
  await b.close();
});

t.test('a failing disk never reaches the caller: counted, logged once', async (t) => {
  const dir = await tempDir(t, 'outpost-audit-');
  const { log, records } = recordingLogger();
  const a = new AuditLog({ dir, log });
  await a.open();
  // The file handle closed under the log: every append fails, as on a full or vanished disk.
  await (a as unknown as { journal: { handle: { close(): Promise<void> } } }).journal.handle.close();
  t.doesNotThrow(() => {
    for (let i = 0; i < 10; i++) a.record(setpoint(i));
  });
  await a.flush();
  t.equal(a.dropped, 10, 'the lost entries are counted');
  t.equal(records.filter((r) => /not being written/.test(String(r.msg))).length, 1, 'and logged once');
  t.equal(a.query({ limit: 100 }).items.length, 10, 'the API still shows them');
  t.doesNotThrow(
    () =>
      a.record({
        action: 'x',
        actor: { kind: 'system', name: 'test' },
        details: {
          self: (() => {
            const o: Record<string, unknown> = {};
            o.o = o;
            return o;
          })(),
        },
        outcome: 'ok',
      }),
    'not even an entry that cannot be serialised throws',
  );
});

t.test('secrets are dropped from details, whatever the caller passed', async (t) => {
  const dir = await tempDir(t, 'outpost-audit-');
  const { log } = recordingLogger();
  const a = new AuditLog({ dir, log });
  await a.open();
  a.record({
    action: 'user.change',
    actor: { kind: 'user', name: 'admin' },
    target: 'bob',
    details: { role: 'viewer', password: 'hunter2-hunter2', nested: { token: 'opt_abc_secretvalue', apiKey: 'k-123456' }, current: 'old-password-9' },
    outcome: 'ok',
  });
  a.record({ action: 'setpoint', actor: { kind: 'user', name: 'admin' }, details: { v: 'y'.repeat(20_000) }, outcome: 'ok' });
  await a.close();
  const text = await readFile(join(dir, 'audit.jsonl'), 'utf8');
  for (const secret of ['hunter2-hunter2', 'opt_abc_secretvalue', 'k-123456', 'old-password-9']) t.notOk(text.includes(secret), `${secret} is not in the file`);
  t.match(text, /"role":"viewer"/, 'the rest of the details is kept');
  t.ok(
    text.split('\n').every((l) => l.length < 9000),
    'a huge value is cut',
  );
});

t.test('audited() records ok and refused, and passes the error on', async (t) => {
  const entries: AuditInput[] = [];
  const sink = { record: (e: AuditInput) => void entries.push(e) };
  const base = { action: 'token.create', actor: { kind: 'user' as const, name: 'admin' }, target: 'ci' };
  t.equal(
    await audited(
      sink,
      base,
      async () => ({ id: 'abc', token: 'opt_secret' }),
      (r) => ({ id: r.id }),
    ).then((r) => r.id),
    'abc',
  );
  await t.rejects(
    audited(sink, base, () => {
      throw new OutpostError('AUTH_CONFLICT', 'at most 100 tokens');
    }),
    { code: 'AUTH_CONFLICT' },
  );
  t.match(entries, [
    { outcome: 'ok', details: { id: 'abc' } },
    { outcome: 'refused', error: { code: 'AUTH_CONFLICT' } },
  ]);
  t.notOk(JSON.stringify(entries).includes('opt_secret'), 'only what `more` picks from the result is kept');
});
