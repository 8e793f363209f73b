/**
 * The `session` of a gateway's MQTT status (runtime/sync/mqtt-link.ts) as central reads it
 * (ingest/service.ts parseStatus): kept as a number, bad values refused with a clear error.
 */
import t, { type Test } from 'tap';
import { isOutpostError } from '../../core/errors.js';
import { parseStatus } from '../../central/ingest/service.js';

const GW = 'site-1';

function refused(t: Test, fn: () => unknown, says: RegExp, what: string): void {
  try {
    fn();
    t.fail(`${what}: accepted`);
  } catch (err) {
    t.ok(isOutpostError(err, 'CENTRAL_BATCH_INVALID'), `${what}: CENTRAL_BATCH_INVALID`);
    t.match((err as Error).message, says, what);
  }
}
const AT = Date.UTC(2025, 5, 1);

t.test('the will, the online status and a clean stop carry their session', async (t) => {
  t.same(parseStatus(GW, { state: 'offline', gatewayId: GW, session: 1_750_000_000_000 }, 'mqtt', AT), {
    at: AT,
    via: 'mqtt',
    state: 'offline',
    session: 1_750_000_000_000,
  });
  t.same(parseStatus(GW, { state: 'online', since: 1_750_000_000_000, session: 1_750_000_000_000, storage: { state: 'read-only', since: 5 } }, 'mqtt', AT), {
    at: AT,
    via: 'mqtt',
    state: 'online',
    since: 1_750_000_000_000,
    session: 1_750_000_000_000,
    storage: { state: 'read-only', since: 5 },
  });
  t.same(parseStatus(GW, { state: 'offline', session: 7, t: 1_750_000_000_123 }, 'mqtt', AT), {
    at: AT,
    via: 'mqtt',
    state: 'offline',
    session: 7,
    since: 1_750_000_000_123,
  });
  t.same(parseStatus(GW, { state: 'online', since: 3 }, 'mqtt', AT), { at: AT, via: 'mqtt', state: 'online', since: 3 }, 'an older gateway: no session');
});

t.test('a bad session is refused', async (t) => {
  for (const [session, what] of [
    ['1', 'a string'],
    [1.5, 'a fraction'],
    [-1, 'negative'],
    [2 ** 60, 'past 2^53'],
    [null, 'null'],
  ] as const) {
    refused(t, () => parseStatus(GW, { state: 'offline', session }, 'mqtt', AT), /"session" is a whole number/, what);
  }
  refused(
    t,
    () => parseStatus(GW, { format: 'outpost-status/1', gw: GW, session: 5, storage: { state: 'ok' } }, 'http', AT),
    /with a "session" carries "state"/,
    'a session without a state',
  );
});
