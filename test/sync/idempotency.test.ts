import t from 'tap';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { HttpReceiver } from './helpers/http-receiver.js';
import { GATEWAY_ID, sensors, startSync, writeReadings } from './helpers/sync.js';
import { batchKey } from '../../runtime/sync/link.js';

const T0 = Date.UTC(2025, 0, 1);
const IDS = ['a.x', 'a.y'];
const fast = { pollMs: 20, backoff: { initialMs: 50, maxMs: 150 }, datapointsIntervalMs: 0, live: { enabled: false } };

/** Idempotency keys seen per first sequence number of a request. */
function keysByFirst(receiver: HttpReceiver): Map<number, Set<string>> {
  const keys = new Map<number, Set<string>>();
  for (const r of receiver.requests) {
    if (!keys.has(r.first)) keys.set(r.first, new Set());
    keys.get(r.first)!.add(r.key!);
  }
  return keys;
}

t.test('Idempotency-Key: a retried batch keeps its key although new records arrive between the retries', async (t) => {
  const FAILURES = 8;
  const receiver = await HttpReceiver.start(t, (_batch, _req, n) => ({ status: n < FAILURES ? 500 : 200 }));
  const gw = await startTestGateway(t, { datapoints: sensors(IDS), storage: { sync: false } });
  await writeReadings(gw, IDS, 30, T0);
  // A live site: readings keep arriving while the receiver fails.
  let v = 0;
  const feeder = setInterval(() => void gw.gateway.ingest.acceptMany('test', [{ id: 'a.x', v: ++v, t: T0 + 1000 + v }]), 15);
  t.teardown(() => clearInterval(feeder));
  await startSync(t, gw, { ...fast, links: [{ name: 'ingest', type: 'http', url: receiver.url, batchRecords: 100 }] });
  await eventually(() => receiver.requests.length > FAILURES + 2, 20_000);
  clearInterval(feeder);
  await eventually(() => receiver.records.length === gw.gateway.store.stats().lastSeq, 20_000);

  const retried = receiver.requests.slice(0, FAILURES + 1);
  const firstTry = retried[0]!;
  t.ok(
    retried.every((r) => r.first === 1),
    'every retry starts at the cursor',
  );
  t.ok(
    gw.gateway.store.stats().lastSeq > firstTry.last + FAILURES,
    `records came in while it was retried (${firstTry.last} at the first try, ${gw.gateway.store.stats().lastSeq} in the end)`,
  );
  t.same([...new Set(retried.map((r) => r.key))], [`${GATEWAY_ID}:1-${firstTry.last}`], `one key over ${FAILURES} failures and the success`);
  t.ok(
    retried.every((r) => r.last === firstTry.last && r.count === firstTry.count),
    'the same range each time',
  );
  for (const [first, keys] of keysByFirst(receiver)) t.equal(keys.size, 1, `requests starting at seq ${first}: one key`);
  for (const r of receiver.requests) t.equal(r.key, batchKey(GATEWAY_ID, r.first, r.last), 'the key names the range carried');
  t.equal(receiver.duplicates, 0, 'each range stored once');
});

t.test('Idempotency-Key: after a restart, the same batch is cut again with the same key', async (t) => {
  const receiver = await HttpReceiver.start(t, () => ({ status: 503 }));
  const gw = await startTestGateway(t, { datapoints: sensors(IDS), storage: { sync: false } });
  await writeReadings(gw, IDS, 250, T0);
  const config = { ...fast, links: [{ name: 'ingest', type: 'http', url: receiver.url, batchRecords: 100 }] };
  const first = await startSync(t, gw, config);
  await eventually(() => receiver.requests.length >= 2);
  await first.sync.stop();
  const before = receiver.requests.length;
  await startSync(t, gw, config);
  await eventually(() => receiver.requests.length >= before + 2);
  t.same([...new Set(receiver.requests.map((r) => r.key))], [`${GATEWAY_ID}:1-100`], 'before and after the restart');
});
