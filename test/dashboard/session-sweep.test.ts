import t from 'tap';
import { SessionStore } from '../../runtime/auth/sessions.js';

// A dashboard that only listens on its live connection never uses its session again: the
// sweep (runtime/http/server.ts runs it every 30 s) ends it at its limits, which closes that
// connection, and the page goes to the login screen (test/dashboard/audit.test.ts).
t.test('sessions past their idle or maximum age end without being used', async (t) => {
  let now = 1_000_000;
  const store = new SessionStore({ idleMs: 60_000, maxAgeMs: 600_000, maxSessions: 10, now: () => now });
  const ended: string[] = [];
  store.onEnd((id) => ended.push(id));
  const idle = store.create('idle-user', 'viewer');
  const busy = store.create('busy-user', 'operator');
  now += 50_000;
  store.get(busy.id);
  t.equal(store.sweep(), 0, 'nothing has expired yet');
  now += 20_000;
  t.equal(store.sweep(), 1, 'the idle one has');
  t.same(ended, [idle.id], 'and its end is announced (the live connections close on it)');
  for (let i = 0; i < 17; i++) {
    now += 30_000;
    store.get(busy.id); // used all along: never idle
  }
  now += 30_000;
  t.equal(store.sweep(), 1, 'a busy session ends at its maximum age');
  t.same(ended, [idle.id, busy.id]);
  t.equal(store.size, 0);
});
