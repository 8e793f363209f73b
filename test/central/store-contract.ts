/**
 * The contract of Outpost Central's store (central/store/contract.ts), as a suite any engine
 * runs with its own factory (the shape of aedes-persistence's abstract.js): the embedded store
 * in test/central/level-store.test.ts now, PostgreSQL next. Expectations come from the records
 * the suite itself wrote, never from a store's own code.
 */
import type { Test } from 'tap';
import { isOutpostError } from '../../core/errors.js';
import type { CentralStore, IngestRecord, Receipt } from '../../central/store/contract.js';

export interface CentralStoreHarness {
  /** A fresh, opened, empty store. */
  open(t: Test): Promise<CentralStore>;
  /** Closes the store and opens the same storage again (a restart). */
  reopen(t: Test, store: CentralStore): Promise<CentralStore>;
}

/**
 * The harness of a store on a database server: each store a fresh database (`createDatabase`),
 * opened by `open`; a restart opens the same database again.
 */
export function databaseHarness(createDatabase: () => Promise<string>, open: (t: Test, url: string) => Promise<CentralStore>): CentralStoreHarness {
  const urls = new WeakMap<CentralStore, string>();
  const opened = async (t: Test, url: string) => {
    const store = await open(t, url);
    urls.set(store, url);
    return store;
  };
  return {
    open: async (t) => opened(t, await createDatabase()),
    async reopen(t, store) {
      await store.close();
      return opened(t, urls.get(store)!);
    },
  };
}

const T0 = Date.UTC(2025, 2, 3, 10); // a Monday, 10:00 UTC
const GW = 'site-042';
const OTHER = 'site-043';

const rx = (at: number, over: Partial<Receipt> = {}): Receipt => ({ via: 'mqtt', lane: 'history', at, ...over });

/** seq s: datapoint `dp.<s % 3>`, one reading a second, a value that says which seq it was. */
function records(first: number, last: number): IngestRecord[] {
  const out: IngestRecord[] = [];
  for (let s = first; s <= last; s++) out.push({ seq: s, id: `dp.${s % 3}`, t: T0 + s * 1000, v: s * 1.5 });
  return out;
}

async function refuses(t: Test, fn: () => Promise<unknown>, code: string, what: string): Promise<void> {
  try {
    await fn();
    t.fail(`${what}: expected ${code}`);
  } catch (err) {
    t.ok(isOutpostError(err, code as never), `${what}: ${code}`, { found: err });
  }
}

export function centralStoreContract(t: Test, harness: CentralStoreHarness): void {
  t.test('a batch is stored once: again, in part, and within itself', async (t) => {
    const store = await harness.open(t);
    t.same(await store.insertReadings(GW, records(1, 30), rx(T0)), { stored: 30, duplicates: 0 });
    t.same(await store.insertReadings(GW, records(1, 30), rx(T0 + 1)), { stored: 0, duplicates: 30 }, 'the same batch again: all duplicates');
    t.same(await store.insertReadings(GW, records(21, 40), rx(T0 + 2)), { stored: 10, duplicates: 10 }, 'overlapping: the new half stored');
    const twice = [...records(41, 42), { seq: 41, id: 'dp.2', t: T0 + 99_000, v: -1 }];
    t.same(await store.insertReadings(GW, twice, rx(T0 + 3)), { stored: 2, duplicates: 1 }, 'a seq twice in one batch: the first copy');
    t.equal(await store.countSeqs(GW), 42);
    t.equal(await store.countReadings(GW), 42);
    t.equal(await store.countReadings(GW, 'dp.0'), 14, 'seqs 3, 6, … 42');
    const values = await store.query(GW, 'dp.2', { from: T0, to: T0 + 100_000 });
    t.same(
      values.map((v) => v.v),
      records(1, 42)
        .filter((r) => r.id === 'dp.2')
        .map((r) => r.v),
      'dp.2 holds exactly the first copies, in time order',
    );
    t.same(await store.latest(GW, 'dp.0'), { t: T0 + 42_000, v: 63 });
  });

  t.test('gateways are separate: the same seq of two gateways is stored for each', async (t) => {
    const store = await harness.open(t);
    t.same(await store.insertReadings(GW, records(1, 5), rx(T0)), { stored: 5, duplicates: 0 });
    t.same(await store.insertReadings(OTHER, records(1, 5), rx(T0)), { stored: 5, duplicates: 0 });
    const dps = await store.datapoints();
    t.same(
      dps.map((d) => `${d.gateway}/${d.id}:${d.type}`),
      ['site-042/dp.0:number', 'site-042/dp.1:number', 'site-042/dp.2:number', 'site-043/dp.0:number', 'site-043/dp.1:number', 'site-043/dp.2:number'],
    );
    t.same(
      (await store.datapoints(OTHER)).map((d) => d.id),
      ['dp.0', 'dp.1', 'dp.2'],
    );
    t.same(await store.datapoints('nobody'), []);
  });

  t.test('concurrent copies of the same seqs are stored once', async (t) => {
    const store = await harness.open(t);
    // Receivers on one shared subscription, an HTTP retry racing the first try, the live lane
    // and history: ten writers, overlapping ranges, all at once.
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.insertReadings(GW, records(1 + i * 10, 100 + i * 10), rx(T0 + i))));
    t.equal(
      results.reduce((n, r) => n + r.stored, 0),
      190,
      'seqs 1..190 stored once among them',
    );
    t.equal(
      results.reduce((n, r) => n + r.duplicates, 0),
      1000 - 190,
      'every other copy counted as a duplicate',
    );
    t.equal(await store.countSeqs(GW), 190);
    t.equal(await store.countReadings(GW), 190);
  });

  t.test('one reading per (gateway, datapoint, t): a fresh seq at the same t replaces the value', async (t) => {
    const store = await harness.open(t);
    await store.insertReadings(GW, [{ seq: 1, id: 'meter.energy', t: T0, v: 10 }], rx(T0));
    t.same(await store.insertReadings(GW, [{ seq: 7, id: 'meter.energy', t: T0, v: 11 }], rx(T0 + 1)), { stored: 1, duplicates: 0 });
    t.same(await store.query(GW, 'meter.energy', { from: T0, to: T0 }), [{ t: T0, v: 11 }], 'the site re-imported the reading: its newer value');
    t.equal(await store.countReadings(GW, 'meter.energy'), 1);
    t.equal(await store.countSeqs(GW), 2);
  });

  t.test('readings without a seq (satellite codec version 1) are idempotent by (datapoint, t)', async (t) => {
    const store = await harness.open(t);
    const v1 = [
      { id: 'tank.level', t: T0, v: 1.25 },
      { id: 'tank.level', t: T0 + 60_000, v: 1.5 },
    ];
    const sat = { via: 'rockblock' as const, lane: 'satellite' as const };
    await store.insertReadings(GW, v1, rx(T0 + 1, sat));
    await store.insertReadings(GW, v1, rx(T0 + 2, sat));
    t.equal(await store.countReadings(GW, 'tank.level'), 2, 'the webhook delivered twice: two readings');
    t.equal(await store.countSeqs(GW), 0);
  });

  t.test('the satellite copy of a seq is kept; the backfill of that seq is a duplicate', async (t) => {
    const store = await harness.open(t);
    const message = {
      imei: '300234010753370',
      momsn: 17,
      transmitTime: T0 + 5_000,
      bytes: 27,
      credits: 1,
      kind: 'readings' as const,
      lat: 52.39,
      lon: 0.29,
      cepKm: 8,
    };
    // The codec rounds: 2 decimals and whole seconds.
    const satellite = [{ seq: 5, id: 'tank.level', t: T0 + 3_000, v: 1.23 }];
    t.same(await store.insertReadings(GW, satellite, rx(T0 + 6_000, { via: 'rockblock', lane: 'satellite', satellite: message })), {
      stored: 1,
      duplicates: 0,
    });
    const backfill = [
      { seq: 4, id: 'tank.level', t: T0 + 2_100, v: 1.2219 },
      { seq: 5, id: 'tank.level', t: T0 + 3_004, v: 1.2345 },
      { seq: 6, id: 'tank.level', t: T0 + 4_100, v: 1.2466 },
    ];
    t.same(await store.insertReadings(GW, backfill, rx(T0 + 60_000, { via: 'http' })), { stored: 2, duplicates: 1 });
    t.same(
      await store.query(GW, 'tank.level', { from: T0, to: T0 + 10_000 }),
      [
        { t: T0 + 2_100, v: 1.2219 },
        { t: T0 + 3_000, v: 1.23 },
        { t: T0 + 4_100, v: 1.2466 },
      ],
      'three readings, seq 5 once (as the satellite brought it)',
    );
    t.same(await store.satelliteUsage(GW, T0, T0 + 86_400_000), { messages: 1, bytes: 27, credits: 1 });
    await store.recordSatellite(GW, message);
    t.same(await store.satelliteUsage(GW, T0, T0 + 86_400_000), { messages: 1, bytes: 27, credits: 1 }, 'the same MO message again is not billed twice');
    await store.recordSatellite(GW, { ...message, momsn: 18, transmitTime: T0 + 7_000, bytes: 5, kind: 'ack', acks: [{ counter: 1, results: ['ok'] }] });
    t.same(await store.satelliteUsage(GW, T0, T0 + 86_400_000), { messages: 2, bytes: 32, credits: 2 });
    t.same(await store.satelliteUsage(GW, T0 + 6_000, T0 + 86_400_000), { messages: 1, bytes: 5, credits: 1 }, 'by transmit time');
    const state = await store.gatewayState(GW);
    t.equal(state?.satellite?.momsn, 18, 'the newest satellite message');
    t.equal(state?.satellite?.lat, 52.39);
  });

  t.test('what the store knows of a gateway: last seen, how, status', async (t) => {
    const store = await harness.open(t);
    t.equal(await store.gatewayState(GW), undefined);
    await store.insertReadings(GW, records(1, 3), rx(T0 + 10, { via: 'http', key: `${GW}:1-3` }));
    let s = await store.gatewayState(GW);
    t.same(s?.lastReceipt, { at: T0 + 10, via: 'http', lane: 'history', key: `${GW}:1-3`, stored: 3, duplicates: 0 });
    t.equal(s?.lastSeen, T0 + 10);
    t.equal(s?.lastVia, 'http');
    await store.recordStatus(GW, { at: T0 + 20, via: 'mqtt', state: 'online', since: T0 });
    s = await store.gatewayState(GW);
    t.same(s?.status, { at: T0 + 20, via: 'mqtt', state: 'online', since: T0 });
    t.equal(s?.lastSeen, T0 + 20);
    t.equal(s?.lastVia, 'mqtt');
    await store.recordStatus(GW, { at: T0 + 30, via: 'http', storage: { state: 'read-only', error: 'ENOSPC', since: T0 + 25 } });
    t.same((await store.gatewayState(GW))?.status?.storage, { state: 'read-only', error: 'ENOSPC', since: T0 + 25 });
    t.same(
      (await store.gatewayStates()).map((g) => g.id),
      [GW],
    );
  });

  t.test('status order: the newest session, offline winning within one; storage merged', async (t) => {
    // A will and the next online reach two members of a shared subscription and commit in
    // either order (contract.ts GatewayStatus).
    const store = await harness.open(t);
    const S2 = T0 - 60_000;
    const S3 = T0;
    const state = async () => (await store.gatewayState(GW))?.status;
    await store.recordStatus(GW, { at: T0 + 10, via: 'mqtt', state: 'online', since: S3, session: S3 });
    await store.recordStatus(GW, { at: T0 + 11, via: 'mqtt', state: 'offline', session: S2 });
    t.same(await state(), { at: T0 + 10, via: 'mqtt', state: 'online', since: S3, session: S3 }, 'will of session 2 after online of session 3: online');
    await store.recordStatus(GW, { at: T0 + 20, via: 'http', storage: { state: 'read-only', error: 'ENOSPC', since: T0 + 15 } });
    t.same(
      await state(),
      { at: T0 + 20, via: 'http', state: 'online', since: S3, session: S3, storage: { state: 'read-only', error: 'ENOSPC', since: T0 + 15 } },
      'a storage document keeps the online state',
    );
    await store.recordStatus(GW, { at: T0 + 30, via: 'mqtt', state: 'offline', session: S3 });
    let s = await state();
    t.equal(s?.state, 'offline', 'the will of session 3');
    t.same(s?.storage, { state: 'read-only', error: 'ENOSPC', since: T0 + 15 }, 'a will keeps the storage state');
    await store.recordStatus(GW, { at: T0 + 31, via: 'mqtt', state: 'online', since: S3, session: S3 });
    t.equal((await state())?.state, 'offline', 'online of session 3 after offline of session 3: offline');
    await store.recordStatus(GW, { at: T0 + 40, via: 'rockblock', storage: { state: 'ok', since: T0 + 35 } });
    s = await state();
    t.same([s?.state, s?.session, s?.storage], ['offline', S3, { state: 'ok', since: T0 + 35 }], 'a RockBLOCK storage state keeps the offline state');
    t.equal(s?.at, T0 + 40);
    const S4 = T0 + 45;
    await store.recordStatus(GW, { at: T0 + 50, via: 'mqtt', state: 'online', since: S4, session: S4 });
    s = await state();
    t.same([s?.state, s?.session, s?.since, s?.storage], ['online', S4, S4, undefined], 'online of session 4: its storage (none: ok) replaces');
    await store.recordStatus(GW, { at: T0 + 51, via: 'mqtt', state: 'offline', session: S3 });
    await store.recordStatus(GW, { at: T0 + 52, via: 'mqtt', state: 'online', since: S3, session: S3 });
    t.same([(await state())?.state, (await state())?.session], ['online', S4], 'late statuses of session 3 change nothing');
    await store.recordStatus(GW, { at: T0 + 53, via: 'mqtt', state: 'online', since: S4, session: S4, storage: { state: 'read-only', since: T0 + 52 } });
    t.same((await state())?.storage, { state: 'read-only', since: T0 + 52 }, 'the same session republished with its storage: the later commit');
    await store.recordStatus(GW, { at: T0 + 60, via: 'mqtt', state: 'offline', session: S4, since: T0 + 59 });
    s = await state();
    t.same([s?.state, s?.since, s?.storage], ['offline', T0 + 59, { state: 'read-only', since: T0 + 52 }], 'a clean stop of session 4');

    // Gateways without sessions: the newest arrival, as before.
    await store.recordStatus(OTHER, { at: T0 + 10, via: 'mqtt', state: 'offline' });
    await store.recordStatus(OTHER, { at: T0 + 20, via: 'mqtt', state: 'online', since: T0 + 15 });
    t.equal((await store.gatewayState(OTHER))?.status?.state, 'online', 'no sessions: the later arrival');
    await store.recordStatus(OTHER, { at: T0 + 30, via: 'mqtt', state: 'offline' });
    t.equal((await store.gatewayState(OTHER))?.status?.state, 'offline');

    // The order is kept across a restart.
    const again = await harness.reopen(t, store);
    await again.recordStatus(GW, { at: T0 + 61, via: 'mqtt', state: 'online', since: S4, session: S4 });
    t.equal((await again.gatewayState(GW))?.status?.state, 'offline', 'after a restart: still offline within session 4');
  });

  t.test('status order: concurrent commits of a will and the next online', async (t) => {
    const store = await harness.open(t);
    // Many sessions committed at once in a shuffled order: the newest session's offline stays.
    const sessions = Array.from({ length: 12 }, (_, i) => T0 + i * 1000);
    const writes = sessions.flatMap((session, i) => [
      { at: T0 + 100 + i, via: 'mqtt' as const, state: 'online' as const, since: session, session },
      { at: T0 + 200 + i, via: 'mqtt' as const, state: 'offline' as const, session },
    ]);
    for (let i = writes.length - 1; i > 0; i--) {
      const j = (i * 7 + 3) % (i + 1);
      [writes[i], writes[j]] = [writes[j]!, writes[i]!];
    }
    await Promise.all(writes.map((w) => store.recordStatus(GW, w)));
    const s = (await store.gatewayState(GW))?.status;
    t.same([s?.state, s?.session], ['offline', sessions.at(-1)], 'the newest session, offline');
  });

  t.test('aggregates of a gateway datapoint, as on the site', async (t) => {
    const store = await harness.open(t);
    // Two minutes of one reading a second: 0..119 on dp `p`.
    const rs: IngestRecord[] = Array.from({ length: 120 }, (_, i) => ({ seq: i + 1, id: 'p', t: T0 + i * 1000, v: i }));
    await store.insertReadings(GW, rs, rx(T0));
    const avg = await store.queryAggregate(GW, 'p', { from: T0, to: T0 + 119_000, interval: 60_000, agg: 'avg' });
    t.same(
      avg.map((a) => [a.t, a.v, a.count]),
      [
        [T0, 29.5, 60],
        [T0 + 60_000, 89.5, 60],
      ],
    );
    const max = await store.queryAggregate(GW, 'p', { from: T0, to: T0 + 119_000, interval: 120_000, agg: 'max' });
    t.same(
      max.map((a) => a.v),
      [119],
    );
    t.same(
      (await store.query(GW, 'p', { from: T0, to: T0 + 119_000, limit: 3, order: 'desc' })).map((v) => v.v),
      [119, 118, 117],
    );
  });

  t.test('values of every type, and quality', async (t) => {
    const store = await harness.open(t);
    await store.insertReadings(
      GW,
      [
        { seq: 1, id: 'a.num', t: T0, v: 1.5 },
        { seq: 2, id: 'a.bool', t: T0, v: true },
        { seq: 3, id: 'a.str', t: T0, v: 'hatch open' },
        { seq: 4, id: 'a.json', t: T0, v: { phases: [1, 2, 3] } },
        { seq: 5, id: 'a.num', t: T0 + 1000, v: null, q: 'bad' },
      ],
      rx(T0),
    );
    const types = Object.fromEntries((await store.datapoints(GW)).map((d) => [d.id, d.type]));
    t.same(types, { 'a.bool': 'boolean', 'a.json': 'json', 'a.num': 'unknown', 'a.str': 'string' }, 'the type of the newest reading (a bad one has none)');
    t.same(await store.query(GW, 'a.num', { from: T0, to: T0 + 1000 }), [
      { t: T0, v: 1.5 },
      { t: T0 + 1000, v: null, q: 'bad' },
    ]);
    t.same(await store.latest(GW, 'a.json'), { t: T0, v: { phases: [1, 2, 3] } });
  });

  t.test('values come back exactly: escapes, control characters, extreme numbers, the first millisecond', async (t) => {
    const store = await harness.open(t);
    const strings = [
      'back\\slash',
      'tab\there',
      'line\nbreak',
      'carriage\rreturn',
      '\\N',
      '\\',
      'quote " and \' and ,',
      'ünïcödé ⚡ 🔋',
      '{"looks":"like json"}',
      '',
    ];
    const numbers = [5e-324, -1.7976931348623157e308, 0.1 + 0.2, Number.MAX_SAFE_INTEGER, -0.000001, 1e21, 123456789.123456];
    const sent: IngestRecord[] = [
      ...strings.map((v, k) => ({ seq: k + 1, id: 'text', t: T0 + k, v })),
      ...numbers.map((v, k) => ({ seq: 100 + k, id: 'number', t: T0 + k, v })),
      { seq: 200, id: 'object', t: T0, v: { 'key\twith\ttabs': ['a\\b', 'c\nd'], nested: { n: 1.25 } } },
      { seq: 201, id: 'epoch', t: 0, v: 1 },
      { seq: 202, id: 'epoch', t: 1, v: 2, q: 'stale' },
    ];
    const receipt = await store.insertReadings(GW, sent, rx(T0));
    t.same(receipt, { stored: sent.length, duplicates: 0 }, 'every record stored');
    const back = (id: string, from: number, to: number) => store.query(GW, id, { from, to });
    t.same(
      (await back('text', T0, T0 + strings.length)).map((r) => r.v),
      strings,
      'strings as sent',
    );
    t.same(
      (await back('number', T0, T0 + numbers.length)).map((r) => r.v),
      numbers,
      'numbers as sent, to the last bit',
    );
    t.same(
      await store.latest(GW, 'object'),
      { t: T0, v: { 'key\twith\ttabs': ['a\\b', 'c\nd'], nested: { n: 1.25 } } },
      'an object with escapes in keys and values',
    );
    t.same(await back('epoch', 0, 10), [
      { t: 0, v: 1 },
      { t: 1, v: 2, q: 'stale' },
    ]);
    // Past year 9999 ISO 8601 needs a sign and six digits (`+012000-…`).
    const far = Date.UTC(12000, 0, 1, 0, 0, 0, 1);
    t.same(await store.insertReadings(GW, [{ seq: 300, id: 'far', t: far, v: 12 }], rx(T0)), { stored: 1, duplicates: 0 }, 'a reading in year 12000');
    t.same(await store.latest(GW, 'far'), { t: far, v: 12 }, 'comes back to the millisecond');
  });

  t.test('bad input is refused and nothing of the batch is stored', async (t) => {
    const store = await harness.open(t);
    await refuses(
      t,
      () => store.insertReadings(GW, [...records(1, 2), { seq: 3, id: 'Bad Id', t: T0, v: 1 }], rx(T0)),
      'CENTRAL_RECORD_INVALID',
      'a datapoint id',
    );
    await refuses(t, () => store.insertReadings(GW, [{ seq: 1, id: 'x', t: -5, v: 1 }], rx(T0)), 'CENTRAL_RECORD_INVALID', 'a negative time');
    await refuses(t, () => store.insertReadings(GW, [{ seq: 1.5, id: 'x', t: T0, v: 1 }], rx(T0)), 'CENTRAL_RECORD_INVALID', 'a fractional seq');
    await refuses(t, () => store.insertReadings('../etc', records(1, 2), rx(T0)), 'CENTRAL_RECORD_INVALID', 'a gateway id');
    // Fields of the wrong type, from a caller that bypassed the types: refused as they are,
    // before anything converts them (a NaN seq is not "no seq", a time of null is not 1970).
    const wrong: Array<[string, unknown]> = [
      ['a seq that is NaN', { seq: Number.NaN, id: 'x', t: T0, v: 1 }],
      ['a seq of null', { seq: null, id: 'x', t: T0, v: 1 }],
      ['a seq that is text', { seq: '5', id: 'x', t: T0, v: 1 }],
      ['a time of null', { seq: 1, id: 'x', t: null, v: 1 }],
      ['a time that is text', { seq: 1, id: 'x', t: String(T0), v: 1 }],
      ['a time that is a boolean', { seq: 1, id: 'x', t: true, v: 1 }],
      ['an id that is a number', { seq: 1, id: 5, t: T0, v: 1 }],
      ['a quality that is neither stale nor bad', { seq: 1, id: 'x', t: T0, v: 1, q: 'good' }],
    ];
    for (const [what, record] of wrong) await refuses(t, () => store.insertReadings(GW, [record as IngestRecord], rx(T0)), 'CENTRAL_RECORD_INVALID', what);
    t.equal(await store.countSeqs(GW), 0);
    t.same(await store.datapoints(), []);
  });

  t.test('the command queue: cursors, acks', async (t) => {
    const store = await harness.open(t);
    t.same(await store.commandsAfter(GW, 0, 10), [], 'empty');
    const a = await store.enqueueCommand(GW, { requestId: 'r-1', type: 'setpoint', id: 'pump.setpoint', v: 42 });
    const b = await store.enqueueCommand(GW, { requestId: 'r-2', type: 'setpoint', id: 'pump.setpoint', v: 43 });
    t.ok(b.cursor > a.cursor, 'cursors increase');
    t.same(
      (await store.commandsAfter(GW, 0, 10)).map((c) => c.command.requestId),
      ['r-1', 'r-2'],
    );
    t.same(
      (await store.commandsAfter(GW, a.cursor, 10)).map((c) => c.command.requestId),
      ['r-2'],
    );
    t.same(
      (await store.commandsAfter(GW, 0, 1)).map((c) => c.command.requestId),
      ['r-1'],
      'limit',
    );
    t.same(await store.commandsAfter(OTHER, 0, 10), [], 'per gateway');
    const acked = await store.recordCommandAck(GW, b.cursor, { ok: false, error: { code: 'SETPOINT_OUT_OF_RANGE' }, at: T0, via: 'http' });
    t.equal(acked?.state, 'refused');
    t.equal((await store.commandsAfter(GW, a.cursor, 10))[0]?.ack?.error?.code, 'SETPOINT_OUT_OF_RANGE');
    t.equal(await store.recordCommandAck(GW, 99, { ok: true, at: T0, via: 'http' }), undefined, 'an ack for no command');
  });

  t.test('a command: queued → sent → applied; applied is final', async (t) => {
    const store = await harness.open(t);
    const before = Date.now();
    const c = await store.enqueueCommand(GW, { requestId: 'c-1', type: 'setpoint', id: 'pump.setpoint', v: 42 }, { group: 'g-1', by: 'ops' });
    t.equal(c.state, 'queued');
    t.ok(c.expiresAt >= before + 24 * 3600_000 - 1000 && c.expiresAt <= Date.now() + 24 * 3600_000, 'expires in 24 h by default');
    t.equal(c.group, 'g-1');
    const sent = await store.markCommandSent(GW, c.cursor, { at: T0, via: 'mqtt' });
    t.equal(sent?.state, 'sent');
    const again = await store.markCommandSent(GW, c.cursor, { at: T0 + 1, via: 'iridium', counter: 7 });
    t.same(
      again?.sends?.map((s) => s.via),
      ['mqtt', 'iridium'],
      'each send kept',
    );
    t.equal((await store.command(GW, { mtCounter: 7 }))?.command.requestId, 'c-1', 'found by the MT counter that carried it');
    t.equal(await store.command(GW, { mtCounter: 8 }), undefined, 'no command sent with counter 8');
    const applied = await store.recordCommandAck(GW, c.cursor, { ok: true, result: { v: 42 }, at: T0 + 2, via: 'mqtt' });
    t.equal(applied?.state, 'applied');
    const late = await store.recordCommandAck(GW, c.cursor, { ok: false, error: { code: 'X' }, at: T0 + 3, via: 'http' });
    t.equal(late?.state, 'applied', 'a later refusal does not undo applied');
    t.same(late?.ack?.result, { v: 42 });
    t.equal((await store.markCommandSent(GW, c.cursor, { at: T0 + 4, via: 'http' }))?.sends?.length, 2, 'a settled command is not sent');
    t.equal((await store.command(GW, { cursor: c.cursor }))?.state, 'applied');
    t.equal((await store.command(GW, { requestId: 'c-1' }))?.cursor, c.cursor);
    t.equal(await store.command(GW, { requestId: 'nope' }), undefined);
    t.equal(await store.markCommandSent(GW, 999, { at: T0, via: 'mqtt' }), undefined, 'no such command');
  });

  t.test("a command refused with the gateway's reason; expired ones are not sendable; an ack after expiry settles it", async (t) => {
    const store = await harness.open(t);
    const now = Date.now();
    const r = await store.enqueueCommand(GW, { requestId: 'c-r', type: 'setpoint', id: 'x', v: 1e9 });
    const refused = await store.recordCommandAck(GW, r.cursor, {
      ok: false,
      error: { code: 'SETPOINT_OUT_OF_RANGE', message: 'above 100' },
      at: now,
      via: 'mqtt',
    });
    t.equal(refused?.state, 'refused');
    t.same(refused?.ack?.error, { code: 'SETPOINT_OUT_OF_RANGE', message: 'above 100' });
    const short = await store.enqueueCommand(GW, { requestId: 'c-e', type: 'ping' }, { expiresAt: now + 60_000 });
    const long = await store.enqueueCommand(GW, { requestId: 'c-l', type: 'ping' }, { expiresAt: now + 3600_000 });
    await store.markCommandSent(GW, short.cursor, { at: now, via: 'mqtt' });
    t.same(await store.expireCommands(now + 30_000), [], 'nothing due yet');
    const expired = await store.expireCommands(now + 60_000);
    t.same(
      expired.map((c) => c.command.requestId),
      ['c-e'],
      'at expiresAt: the sent one expires, the other stays',
    );
    t.equal((await store.command(GW, { cursor: long.cursor }))?.state, 'queued');
    t.same(await store.expireCommands(now + 90_000), [], 'expired once');
    t.equal((await store.markCommandSent(GW, short.cursor, { at: now, via: 'http' }))?.state, 'expired', 'an expired command is not sent');
    const lateAck = await store.recordCommandAck(GW, short.cursor, { ok: true, at: now + 120_000, via: 'mqtt' });
    t.equal(lateAck?.state, 'applied', 'the copy on its way was applied: the state says so');
    t.equal(lateAck?.expiredAt, now + 60_000, 'and when it expired is kept');
    const past = await store.enqueueCommand(GW, { requestId: 'c-p', type: 'ping' }, { expiresAt: now - 1 });
    t.equal(past.state, 'expired', 'enqueued already expired');
    t.same(
      (await store.listCommands({ gateway: GW, state: 'expired' })).map((c) => c.command.requestId),
      ['c-p'],
    );
  });

  t.test('commands: idempotent by requestId, per-gateway cursors, lists, MT counters', async (t) => {
    const store = await harness.open(t);
    const a = await store.enqueueCommand(GW, { requestId: 'same', type: 'ping' }, { group: 'g' });
    const b = await store.enqueueCommand(GW, { requestId: 'same', type: 'ping' }, { group: 'g' });
    t.equal(b.cursor, a.cursor, 'the same requestId twice: one command');
    const concurrent = await Promise.all([1, 2, 3].map(() => store.enqueueCommand(GW, { requestId: 'race', type: 'ping' })));
    t.equal(new Set(concurrent.map((c) => c.cursor)).size, 1, 'concurrent copies: one command');
    const o = await store.enqueueCommand(OTHER, { requestId: 'same', type: 'ping' }, { group: 'g' });
    t.equal(o.cursor, 1, 'the other gateway has its own cursors, and its own requestIds');
    t.equal((await store.commandsAfter(GW, 0, 10)).length, 2);
    t.same((await store.listCommands({ group: 'g' })).map((c) => c.gateway).sort(), [GW, OTHER], 'a group across gateways');
    t.same(
      (await store.listCommands({ gateway: GW })).map((c) => c.command.requestId),
      ['race', 'same'],
      'newest first',
    );
    t.same(
      (await store.listCommands({ gateway: GW, limit: 1 })).map((c) => c.command.requestId),
      ['race'],
    );
    t.same(await store.listCommands({ gateway: 'nobody' }), []);
    await refuses(t, () => store.enqueueCommand(GW, { requestId: '', type: 'ping' }), 'BAD_REQUEST', 'an empty requestId');
    await refuses(t, () => store.enqueueCommand(GW, { requestId: 'x y', type: 'ping' }), 'BAD_REQUEST', 'a requestId with a space');
    t.equal(await store.nextMtCounter(GW, 0), 1);
    t.equal(await store.nextMtCounter(GW, 0), 2);
    t.equal(await store.nextMtCounter(GW, 1000), 1000, 'the floor when it is higher');
    t.equal(await store.nextMtCounter(GW, 5), 1001);
    t.equal(await store.nextMtCounter(OTHER, 0), 1, 'per gateway');
    t.equal((await store.commandsAfter(GW, 0, 10)).length, 2, 'the counter is no command');
  });

  t.test('after a restart: duplicates still found, datapoints, states and the queue kept', async (t) => {
    let store = await harness.open(t);
    await store.insertReadings(GW, records(1, 2000), rx(T0, { via: 'http' }));
    // A gap: seqs 2001..2999 not stored yet (they come later, e.g. live lane went first).
    await store.insertReadings(GW, records(3000, 3100), rx(T0 + 1, { lane: 'priority' }));
    await store.recordStatus(GW, { at: T0 + 2, via: 'mqtt', state: 'online', since: T0 });
    const cmd = await store.enqueueCommand(GW, { requestId: 'r-1', type: 'ping' });
    const mt = await store.nextMtCounter(GW, 0);
    store = await harness.reopen(t, store);
    t.equal(await store.nextMtCounter(GW, 0), mt + 1, 'the MT counter continues after the restart');
    t.same(
      (await store.datapoints(GW)).map((d) => d.id),
      ['dp.0', 'dp.1', 'dp.2'],
    );
    t.equal((await store.gatewayState(GW))?.status?.state, 'online');
    // Everything resent after the restart, and the gap with it: only the gap is new.
    t.same(await store.insertReadings(GW, records(1, 3200), rx(T0 + 3)), { stored: 999 + 100, duplicates: 2000 + 101 });
    t.equal(await store.countSeqs(GW), 3200);
    t.equal(await store.countReadings(GW), 3200);
    t.same(await store.insertReadings(GW, records(2990, 3010), rx(T0 + 4)), { stored: 0, duplicates: 21 }, 'and again: nothing');
    const next = await store.enqueueCommand(GW, { requestId: 'r-2', type: 'ping' });
    t.ok(next.cursor > cmd.cursor, 'the command cursor continues after the restart');
    t.equal((await store.enqueueCommand(GW, { requestId: 'r-1', type: 'ping' })).cursor, cmd.cursor, 'a requestId queued before the restart: the same command');
    t.equal((await store.command(GW, { requestId: 'r-1' }))?.state, 'queued');
    t.equal(store.health().state, 'ok');
  });
}
