import t from 'tap';

import { writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { UserStore } from '../../runtime/auth/users.js';
import { SessionStore, readCookie } from '../../runtime/auth/sessions.js';
import { LoginThrottle, throttleAddress, type LoginAttempt } from '../../runtime/auth/rate-limit.js';
import { HashGate } from '../../runtime/auth/hash-gate.js';
import { MqttFraming } from '../../runtime/broker/framing.js';
import { tempDir } from '../helpers/teardown.js';

t.test('user store: first admin, reload on external change, damaged file', async (t) => {
  const dir = await tempDir(t, 'outpost-auth-');
  const store = new UserStore(join(dir, 'auth', 'users.json'));
  store.load();
  const first = await store.ensureInitialAdmin({ username: 'admin' });
  t.equal(first.created, true);
  t.match(first.generatedPassword, /^[A-Za-z0-9_-]{16}$/, 'a generated password when none is configured');
  t.ok(await store.verifyLogin('admin', first.generatedPassword!));
  t.same(await store.ensureInitialAdmin({ username: 'admin', password: 'other-password' }), { created: false }, 'only when there are no users');
  t.equal(await store.verifyLogin('admin', 'wrong-password'), undefined);
  t.equal(await store.verifyLogin('nobody', 'wrong-password'), undefined);

  // Another process (`outpost user add`) writes the file: the running store sees it.
  const other = new UserStore(store.path);
  await other.addUser({ username: 'ops', role: 'operator', password: 'ops-password-1' });
  t.match(store.getUser('ops'), { username: 'ops', role: 'operator' });
  t.notOk(JSON.stringify(store.listUsers()).includes('scrypt'));
  await t.rejects(store.addUser({ username: 'Bad Name', role: 'viewer', password: 'long-enough-1' }), { code: 'BAD_REQUEST' });

  await writeFile(store.path, '{"version":1,"users":[{"username":"x"}]');
  const damaged = new UserStore(store.path);
  t.throws(
    () => damaged.load(),
    { code: 'CONFIG_INVALID', message: /damaged/ },
    'a damaged file is an error, never "no users" (which would re-create an admin)',
  );
});

t.test('user store: concurrent changes are serialised, none lost', async (t) => {
  const dir = await tempDir(t, 'outpost-auth-');
  const store = new UserStore(join(dir, 'users.json'));
  await Promise.all(Array.from({ length: 5 }, (_, i) => store.addUser({ username: `u${i}`, role: 'viewer', password: `password-${i}-xx` })));
  const onDisk = JSON.parse(await readFile(store.path, 'utf8')) as { users: unknown[] };
  t.equal(onDisk.users.length, 5);
});

t.test('sessions expire when idle and at their maximum age; memory is bounded', async (t) => {
  let now = 0;
  const s = new SessionStore({ idleMs: 1000, maxAgeMs: 5000, maxSessions: 3, now: () => now });
  const a = s.create('a', 'viewer');
  now = 900;
  t.ok(s.get(a.id), 'used within the idle time');
  now = 1800;
  t.ok(s.get(a.id), 'idle time counts from the last use');
  now = 2900;
  t.equal(s.get(a.id), undefined, 'idle too long');
  const b = s.create('b', 'viewer');
  let alive = 0;
  for (let i = 1; i <= 9; i++) {
    now = 2900 + i * 500;
    if (s.get(b.id)) alive++;
  }
  t.equal(alive, 9, 'used every 500 ms: never idle');
  now = 7950;
  t.equal(s.get(b.id), undefined, 'over the maximum age however busy');
  for (let i = 0; i < 5; i++) s.create(`u${i}`, 'viewer');
  t.equal(s.size, 3, 'at most maxSessions');
  t.equal(readCookie('a=1; outpost_session=xyz; b=2', 'outpost_session'), 'xyz');
});

t.test('login throttle: sliding window per name and address', async (t) => {
  let now = 0;
  const th = new LoginThrottle({ maxFailures: 2, maxFailuresPerAddress: 3, windowMs: 10_000, maxKeys: 50, now: () => now });
  th.fail('1.1.1.1', 'a');
  t.equal(th.retryAfterSeconds('1.1.1.1', 'a'), 0);
  now = 1000;
  th.fail('1.1.1.1', 'a');
  t.equal(th.retryAfterSeconds('1.1.1.1', 'a'), 9, 'wait until the oldest failure leaves the window');
  t.equal(th.retryAfterSeconds('2.2.2.2', 'a'), 0, 'another address is not affected');
  now = 9_500;
  t.equal(th.retryAfterSeconds('1.1.1.1', 'a'), 1, 'rounded up');
  now = 10_001;
  t.equal(th.retryAfterSeconds('1.1.1.1', 'a'), 0);
  for (let i = 0; i < 200; i++) th.fail(`10.0.${i >> 8}.${i & 255}`, 'x');
  t.ok(th.trackedKeys <= 50, 'bounded memory under a spray of addresses');
});

t.test('login throttle: per username across addresses, IPv6 counted per /64', async (t) => {
  let now = 0;
  const th = new LoginThrottle({ maxFailures: 3, maxFailuresPerAddress: 5, maxFailuresPerUser: 10, windowMs: 60_000, now: () => now });
  for (let i = 0; i < 10; i++) th.fail(`10.1.0.${i}`, 'admin');
  t.ok(th.retryAfterSeconds('10.9.9.9', 'admin') > 0, 'guesses spread over ten addresses lock the name for the window');
  t.equal(th.retryAfterSeconds('10.9.9.9', 'bob'), 0, 'other names are not affected');
  for (let i = 0; i < 5; i++) th.fail(`2001:db8:1:2:${i.toString(16)}::${i + 1}`, `u${i}`);
  t.ok(th.retryAfterSeconds('2001:db8:1:2:ffff:ffff:ffff:ffff', 'zed') > 0, 'a fresh address in the same /64 is the same client');
  t.equal(th.retryAfterSeconds('2001:db8:1:3::1', 'zed'), 0, 'the next /64 is another');
  t.equal(throttleAddress('2001:DB8::1'), '2001:db8:0:0::/64');
  t.equal(throttleAddress('::ffff:192.0.2.1'), '192.0.2.1');
  t.equal(throttleAddress('::1'), '0:0:0:0::/64');
  now = 60_001;
  t.equal(th.retryAfterSeconds('10.9.9.9', 'admin'), 0, 'the window passes');
});

t.test('login throttle: checks under way count against the limits until they settle', async (t) => {
  const th = new LoginThrottle({ maxFailures: 3, maxFailuresPerAddress: 5, windowMs: 10_000 });
  const attempts = [th.begin('1.1.1.1', 'a'), th.begin('1.1.1.1', 'a'), th.begin('1.1.1.1', 'a')];
  t.ok(
    attempts.every((a) => typeof a === 'object'),
    'three checks start',
  );
  t.equal(th.begin('1.1.1.1', 'a'), 1, 'a fourth waits while three are under way (1 s)');
  const other = th.begin('1.1.1.1', 'b');
  t.type(other, 'object', 'another name has its own budget');
  t.type(th.begin('1.1.1.1', 'c'), 'object');
  t.equal(th.begin('1.1.1.1', 'd'), 1, 'the address limit counts checks under way too');
  (attempts[0] as LoginAttempt).abandoned();
  t.type(th.begin('1.1.1.1', 'a'), 'object', 'an abandoned check gives its place back, uncounted');
  for (const a of attempts.slice(1)) (a as LoginAttempt).failed();
  (attempts[1] as LoginAttempt).failed();
  t.equal(th.retryAfterSeconds('1.1.1.1', 'a'), 1, 'two failures and one check under way: wait for its outcome (settling twice counted once)');
  (other as LoginAttempt).succeeded();
  t.equal(th.retryAfterSeconds('1.1.1.1', 'b'), 0, 'a success clears its name');
});

t.test('hash gate: at most maxRunning checks at once, a bounded queue, refusal beyond', async (t) => {
  const gate = new HashGate(2, 3);
  let running = 0;
  let most = 0;
  const release: Array<() => void> = [];
  const check = () =>
    gate.run(async () => {
      running++;
      most = Math.max(most, running);
      await new Promise<void>((resolve) => release.push(resolve));
      running--;
      return true;
    });
  const started = Array.from({ length: 5 }, check);
  await new Promise((r) => setImmediate(r));
  t.same(gate.load, { running: 2, waiting: 3 });
  await t.rejects(check(), { code: 'LOGIN_THROTTLED' }, 'a sixth is refused at once');
  while (release.length > 0 || running > 0) {
    release.shift()?.();
    await new Promise((r) => setImmediate(r));
  }
  t.same(await Promise.all(started), [true, true, true, true, true], 'the queued ones ran');
  t.equal(most, 2, 'never more than two at once');
  t.same(gate.load, { running: 0, waiting: 0 });
});

t.test('packet size guard: headers split across chunks, oversized and malformed lengths', async (t) => {
  const run = (chunks: number[][], max: number) =>
    new Promise<{ passed: number; oversize?: number }>((resolve) => {
      const inner = new PassThrough();
      let passed = 0;
      let oversize: number | undefined;
      const g = new MqttFraming(inner, { maxPacketBytes: max, maxPacketsPerRead: 64, onRefused: (r) => (oversize = r.announcedBytes) });
      g.on('data', (c: Buffer) => (passed += c.length));
      g.on('close', () => resolve({ passed, oversize }));
      g.on('error', () => undefined);
      for (const c of chunks) inner.write(Buffer.from(c));
      setTimeout(() => {
        g.destroy();
      }, 50);
    });
  // PINGREQ (2 bytes), then a PUBLISH with remaining length 200 (0xC8 0x01) split mid-header.
  const ok = await run([[0xc0, 0x00, 0x30], [0xc8], [0x01, ...new Array(200).fill(0)]], 300);
  t.same(ok, { passed: 205, oversize: undefined }, 'packets within the limit pass, header split or not');
  const big = await run([[0x30, 0xc8], [0x01]], 100);
  t.equal(big.oversize, 203, 'the announced size is caught before the body arrives');
  const malformed = await run([[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]], 1e9);
  t.equal(malformed.oversize, Number.POSITIVE_INFINITY, 'a fifth length byte is malformed (MQTT 3.1.1 §2.2.3)');
});

t.test("outpost user add/passwd/list edit the data dir's user file", async (t) => {
  const { userCommand } = await import('../../runtime/auth/user-cli.js');
  const dir = await tempDir(t, 'outpost-auth-');
  t.match(await userCommand(dir, { action: 'list' }), /no users yet/);
  t.equal(await userCommand(dir, { action: 'add', username: 'ops', role: 'operator', password: 'ops-password-1' }), 'user "ops" added with role operator');
  await t.rejects(userCommand(dir, { action: 'add', username: 'x', role: 'root', password: 'long-enough-1' }), { code: 'BAD_REQUEST', message: /--role/ });
  await t.rejects(userCommand(dir, { action: 'add', username: 'ops', password: 'ops-password-1' }), { code: 'AUTH_CONFLICT' });
  await userCommand(dir, { action: 'passwd', username: 'ops', password: 'ops-password-2' });
  const { UserStore: Store } = await import('../../runtime/auth/users.js');
  const s = new Store(join(dir, 'auth', 'users.json'));
  t.ok(await s.verifyLogin('ops', 'ops-password-2'));
  t.equal(await userCommand(dir, { action: 'list' }), 'ops\toperator');
});
