import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestGateway, eventually, type TestGateway } from '../helpers/gateway.js';
import { chromiumSkip, launchChromium } from '../helpers/browser.js';
import { HttpReceiver } from './helpers/http-receiver.js';
import { GATEWAY_ID, sensors, startSync, writeReadings } from './helpers/sync.js';
import type { SyncSnapshot } from '../../runtime/sync/service.js';

const T0 = Date.UTC(2025, 0, 1);
const IDS = ['plant.m1.power', 'plant.m2.power', 'yard.temp'];
const POISON = 'plant.poison';
const ADMIN_PASSWORD = 'admin-secret-pw-1';
const fast = { pollMs: 20, backoff: { initialMs: 50, maxMs: 400 }, datapointsIntervalMs: 0, live: { enabled: false } };

/** Readings round-robin over IDS with one poison reading after the first `at`. */
async function withPoison(gw: TestGateway, n: number, at: number): Promise<void> {
  await writeReadings(gw, IDS, at, T0);
  await gw.gateway.ingest.acceptMany('test', [{ id: POISON, v: 'not a number the receiver knows', t: T0 + at }]);
  const rest = [];
  for (let i = at; i < n; i++) rest.push({ id: IDS[i % IDS.length]!, v: i, t: T0 + 1 + i });
  await gw.gateway.ingest.acceptMany('test', rest);
}

const refusesPoison =
  (delayMs = 0) =>
  (batch: { records: Array<[number, string, ...unknown[]]> }) =>
    batch.records.some((r) => r[1] === POISON) ? { status: 400, body: `{"error":"unknown datapoint ${POISON}"}`, delayMs } : { status: 200, delayMs };

t.test('one record the HTTP receiver refuses for good goes to the dead-letter store; the rest flows on', async (t) => {
  const receiver = await HttpReceiver.start(t, refusesPoison(15));
  const gw = await startTestGateway(t, {
    gateway: { id: GATEWAY_ID },
    // The API answers this test on loopback; the browser logs in like an operator.
    auth: { loopback: 'admin', admin: { username: 'admin', password: ADMIN_PASSWORD } },
    datapoints: [...sensors(IDS), { id: POISON, kind: 'sensor', type: 'string' }],
    storage: { sync: false },
    sync: { enabled: true, ...fast, links: [{ name: 'ingest', type: 'http', url: receiver.url, batchRecords: 200 }] },
  });
  const sync = gw.gateway.sync!;
  // Every state /api/sync shows for the link while it works through the backlog.
  const states = new Set<string>();
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const s = (await (await fetch(`${gw.httpUrl}/api/sync`)).json()) as SyncSnapshot;
      states.add(s.links[0]!.state);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  t.teardown(() => (watching = false));

  await withPoison(gw, 900, 450);
  // More readings keep coming while the poison record is isolated (the field case: a live site).
  for (let i = 0; i < 10; i++) {
    await gw.gateway.ingest.acceptMany('test', [{ id: 'yard.temp', v: i, t: T0 + 10_000 + i }]);
    await new Promise((r) => setTimeout(r, 50));
  }
  const total = 900 + 1 + 10;
  await eventually(async () => (await sync.snapshot()).backlogRecords === 0, 20_000);
  watching = false;
  await watcher;

  const snap = (await (await fetch(`${gw.httpUrl}/api/sync`)).json()) as SyncSnapshot;
  t.equal(snap.acked, total, 'the cursor moved past the refused record');
  t.equal(receiver.records.length, total - 1, 'every other record reached the receiver');
  t.notOk(receiver.records.some((r) => r.id === POISON));
  t.same(
    receiver.records.map((r) => r.seq).sort((a, b) => a - b),
    Array.from({ length: total }, (_, i) => i + 1).filter((s) => s !== 451),
    'once each (after dedupe), none missing',
  );
  t.equal(snap.deadLetters.count, 1, '/api/sync counts the dead letter');
  t.match(
    snap.deadLetters.newest[0],
    {
      link: 'ingest',
      reason: 'HTTP 400',
      status: 400,
      record: { seq: 451, id: POISON, v: 'not a number the receiver knows' },
      answer: `{"error":"unknown datapoint ${POISON}"}`,
    },
    'with the record, the reason and the receiver answer',
  );
  t.ok(states.has('blocked'), `the link showed "blocked" while the refusal was isolated (seen: ${[...states].join(', ')})`);
  t.equal(snap.links[0]!.state, 'up', 'and is up again once it moved on');
  const refusals = receiver.requests.filter((r) => r.status === 400).length;
  t.ok(refusals <= 2 * Math.ceil(Math.log2(200)) + 2, `bisection took ${refusals} refused requests (bounded)`);

  const lines = (await readFile(join(gw.dataDir, 'sync', 'dead-letter.jsonl'), 'utf8')).trim().split('\n');
  t.equal(lines.length, 1, 'kept on disk, one JSON line');
  t.match(JSON.parse(lines[0]!), { record: { seq: 451 }, reason: 'HTTP 400' });

  await t.test('the Links page shows the dead letter', { skip: chromiumSkip }, async (t) => {
    const context = await launchChromium(t);
    const page = await context.newPage();
    await page.goto(`${gw.httpUrl}/#/links`);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Links', level: 1 }).waitFor();
    await page.locator('#sync-dead-letters', { hasText: /^1 record$/ }).waitFor({ timeout: 10_000 });
    const row = page.locator('#sync-dead-letters-table tr[data-seq="451"]');
    await row.waitFor({ timeout: 10_000 });
    const text = await row.textContent();
    t.match(text, new RegExp(`${POISON}.*HTTP 400.*unknown datapoint`), 'datapoint, reason and the receiver answer');
  });
});

t.test('dead letters survive a restart', async (t) => {
  const receiver = await HttpReceiver.start(t, refusesPoison());
  const gw = await startTestGateway(t, {
    gateway: { id: GATEWAY_ID },
    datapoints: [...sensors(IDS), { id: POISON, kind: 'sensor', type: 'string' }],
    storage: { sync: false },
  });
  await withPoison(gw, 300, 100);
  const config = { ...fast, links: [{ name: 'ingest', type: 'http', url: receiver.url, batchRecords: 100 }] };
  const first = await startSync(t, gw, config);
  await eventually(async () => (await first.sync.snapshot()).backlogRecords === 0, 20_000);
  await first.sync.stop();
  const second = await startSync(t, gw, config);
  const snap = await second.sync.snapshot();
  t.equal(snap.deadLetters.count, 1, 'read back at start');
  t.equal(snap.deadLetters.newest[0]!.record.seq, 101);
});

t.test('a lone refused record right after a start is kept until the receiver shows it takes other records', async (t) => {
  const receiver = await HttpReceiver.start(t, refusesPoison());
  const gw = await startTestGateway(t, { datapoints: [...sensors(IDS), { id: POISON, kind: 'sensor', type: 'string' }], storage: { sync: false } });
  await gw.gateway.ingest.acceptMany('test', [{ id: POISON, v: 'x', t: T0 }]);
  const { sync } = await startSync(t, gw, { ...fast, links: [{ name: 'ingest', type: 'http', url: receiver.url, batchRecords: 100 }] });
  await eventually(() => receiver.requests.length >= 3, 10_000);
  let snap = await sync.snapshot();
  t.equal(snap.links[0]!.state, 'blocked', 'nothing tells a poison record from a receiver refusing everything yet');
  t.equal(snap.deadLetters.count, 0);
  await gw.gateway.ingest.acceptMany('test', [{ id: 'yard.temp', v: 1, t: T0 + 1 }]);
  await eventually(async () => (await sync.snapshot()).backlogRecords === 0, 10_000);
  snap = await sync.snapshot();
  t.equal(snap.deadLetters.count, 1, 'the next reading joined the batch, was taken, and the refused one was set aside');
  t.match(receiver.records, [{ seq: 2, id: 'yard.temp' }]);
  t.equal(snap.links[0]!.state, 'up');
});

t.test('retryable failures (503, 408, 429, timeouts) back off and are retried, never dead-lettered', async (t) => {
  let failures = 0;
  // 0: no answer within ackTimeoutMs (the receiver stored it, the gateway cannot know).
  const answers = [503, 408, 429, 500, 0, 408];
  const receiver = await HttpReceiver.start(t, (batch) => {
    if (batch.first <= 151 && batch.last >= 151 && failures < answers.length) {
      const status = answers[failures++]!;
      return status === 0 ? { status: 200, delayMs: 800 } : { status, headers: { 'retry-after': '0' } };
    }
    return { status: 200 };
  });
  const gw = await startTestGateway(t, { datapoints: sensors(IDS), storage: { sync: false } });
  await writeReadings(gw, IDS, 300, T0);
  const { sync, logs } = await startSync(t, gw, {
    ...fast,
    links: [{ name: 'ingest', type: 'http', url: receiver.url, batchRecords: 100, ackTimeoutMs: 500 }],
  });
  await eventually(() => receiver.records.length === 300, 20_000);
  const snap = await sync.snapshot();
  t.equal(snap.deadLetters.count, 0, 'nothing set aside');
  t.equal(snap.acked, 300);
  t.notOk(
    logs.some((l) => l.msg === 'sync link blocked'),
    'never shown as blocked',
  );
  t.ok(receiver.requests.filter((r) => r.first === 101).length >= 7, 'the same batch was retried after each failure');
});

t.test('a receiver that refuses everything: blocked, nothing set aside, nothing lost; flows once it accepts again', async (t) => {
  const receiver = await HttpReceiver.start(t, () => ({ status: 400, body: 'schema version 2 required' }));
  const gw = await startTestGateway(t, { datapoints: sensors(IDS), storage: { sync: false } });
  await writeReadings(gw, IDS, 300, T0);
  const { sync } = await startSync(t, gw, { ...fast, links: [{ name: 'ingest', type: 'http', url: receiver.url, batchRecords: 100 }] });
  await eventually(() => receiver.requests.length >= 30, 20_000);
  let snap = await sync.snapshot();
  t.equal(snap.links[0]!.state, 'blocked');
  t.match(snap.links[0]!.lastError, /HTTP 400/);
  t.equal(snap.deadLetters.count, 0, 'a receiver refusing everything does not empty the outbox into the dead-letter store');
  t.equal(snap.acked, 0);
  t.equal((await gw.gateway.store.readOutbox(0, 1000)).length, 300, 'every record is kept');
  receiver.answer(() => ({ status: 200 }));
  await eventually(() => receiver.records.length === 300, 20_000);
  snap = await sync.snapshot();
  t.equal(snap.links[0]!.state, 'up');
  t.equal(snap.deadLetters.count, 0);
});

t.test('401/403/404: the link is refused, not the records: down, nothing set aside', async (t) => {
  const receiver = await HttpReceiver.start(t, () => ({ status: 401, body: 'bad token' }));
  const gw = await startTestGateway(t, { datapoints: sensors(IDS), storage: { sync: false } });
  await writeReadings(gw, IDS, 50, T0);
  const { sync } = await startSync(t, gw, { ...fast, links: [{ name: 'ingest', type: 'http', url: receiver.url }] });
  await eventually(() => receiver.requests.length >= 3, 10_000);
  const snap = await sync.snapshot();
  t.equal(snap.links[0]!.state, 'down');
  t.match(snap.links[0]!.lastError, /HTTP 401/);
  t.equal(snap.deadLetters.count, 0);
  t.ok(
    receiver.requests.every((r) => r.count === 50),
    'never split',
  );
});
