import t from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { validateCentralConfig } from '../../central/config.js';
import { GatewayDirectory } from '../../central/gateways.js';
import { localHandler } from '../../central/ingest/mqtt-handlers.js';
import { IngestService } from '../../central/ingest/service.js';
import { createCentralLogger } from '../../central/log.js';
import { CentralMetrics } from '../../central/metrics.js';
import type { IngestRecord, IngestRecords, InsertResult } from '../../central/store/contract.js';
import { RecordColumns, RecordColumnsBuilder, columnsOf, recordsOf } from '../../central/store/record-columns.js';
import { encodeBatch } from '../../runtime/sync/codec.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const T0 = Date.UTC(2026, 11, 7);

t.test('records as columns give back every record as it was: values of each kind, qualities, no seq', async (t) => {
  const records: IngestRecord[] = [
    { seq: 1, id: 'meter.power_kw', t: T0, v: 12.5 },
    { seq: 2, id: 'meter.power_kw', t: T0 + 1000, v: -0 },
    { seq: 3, id: 'meter.energy_kwh', t: T0, v: 5e-324, q: 'stale' },
    { seq: 4, id: 'door.open', t: T0, v: true },
    { seq: 5, id: 'panel.text', t: T0, v: 'ünïcödé ⚡' },
    { seq: 6, id: 'panel.json', t: T0, v: { deep: [1, 'two', null] } },
    { seq: 7, id: 'meter.power_kw', t: T0 + 2000, v: null, q: 'bad' },
    { id: 'iridium.v1', t: 999_999_999_999_999, v: 1.7976931348623157e308 },
    { seq: 2 ** 53 - 1, id: 'x', t: 0, v: 0 },
  ];
  const columns = RecordColumns.from(records);
  t.equal(columns.length, records.length);
  t.strictSame(columns.toRecords(), records, 'every record round trips');
  t.ok(Number.isNaN(RecordColumns.from([{ seq: 1, id: 'x', t: T0, v: Number.NaN }]).value(0)), 'a NaN value stays NaN');
  t.equal(RecordColumns.from([{ seq: 1, id: 'x', t: T0, v: undefined as never }]).value(0), null, 'a missing value is null');
  t.throws(() => RecordColumns.from([{ seq: 1, id: 'x', t: T0, v: 1, q: 'good' as never }]), RangeError, 'an unknown quality is refused');
  t.ok(Object.is(columns.value(1), -0), '-0 stays -0');
  t.equal(columns.seq(7), undefined, 'no seq');
  t.notOk(columns.allHaveSeqs, 'not every record has a seq');
  t.ok(RecordColumns.from(records.slice(0, 7)).allHaveSeqs);
  t.ok(Number.isNaN(columns.number(3)), 'a boolean is not a number');
  t.equal(columns.number(0), 12.5);
  t.equal(columns.quality(2), 'stale');
  t.equal(columns.quality(0), undefined);
  t.equal(RecordColumns.from(records.slice(0, 2)).quality(0), undefined, 'no qualities at all');
  t.equal(columnsOf(columns), columns, 'columns are taken as they are');
  t.strictSame(recordsOf(columns), records);
  t.equal(recordsOf(records), records, 'objects are taken as they are');
  t.equal(RecordColumns.from([]).length, 0);
});

t.test('a builder takes no more records than it was made for', async (t) => {
  const b = new RecordColumnsBuilder(1);
  b.push(1, 'a', T0, 1);
  t.throws(() => b.push(2, 'a', T0, 2), RangeError);
  t.strictSame(b.build().toRecords(), [{ seq: 1, id: 'a', t: T0, v: 1 }]);
});

t.test("a batch's decoded JSON is not kept alive while its commit runs (only its columns)", async (t) => {
  // The commit is held open, as a transaction is for 200-400 ms under load; meanwhile nothing may
  // reach the JSON the MQTT payload was decoded into, or every scavenge would copy it.
  const parse = JSON.parse;
  const decoded: WeakRef<object>[] = [];
  JSON.parse = (text: string, reviver?: Parameters<typeof JSON.parse>[1]) => {
    const value = parse(text, reviver) as unknown;
    if (value !== null && typeof value === 'object') decoded.push(new WeakRef(value));
    return value;
  };
  t.teardown(() => {
    JSON.parse = parse;
  });
  let release: (() => void) | undefined;
  let received: IngestRecords | undefined;
  const sink = {
    insertReadings: (_gateway: string, records: IngestRecords): Promise<InsertResult> => {
      received = records;
      return new Promise((resolve) => {
        release = () => resolve({ stored: records.length, duplicates: 0 });
      });
    },
    recordStatus: async () => {},
    recordSatellite: async () => {},
  };
  const config = validateCentralConfig({ gateways: [{ id: 'gw-1' }] });
  const service = new IngestService({
    sink,
    gateways: await GatewayDirectory.load(config),
    metrics: new CentralMetrics(),
    log: createCentralLogger({ level: 'silent' }),
  });
  const records = Array.from({ length: 100 }, (_, k) => ({ seq: k + 1, id: `site.meter_${k % 10}.power_kw`, t: T0 + k * 1000, v: k / 10 }));
  const payload = await encodeBatch({ key: 'gw-1:1-100', gatewayId: 'gw-1', first: 1, last: 100, records, lane: 'history' });
  const commit = localHandler(service, 1 << 20).data('gw-1', 'history', payload);
  for (let k = 0; k < 100 && !release; k++) await new Promise((r) => setTimeout(r, 5));
  t.ok(release, 'the commit is running');
  t.equal(decoded.length, 1, 'the payload was decoded once');
  // WeakRefs hold their target until the end of the job that made them: collect in a later one.
  await new Promise((r) => setTimeout(r, 10));
  gc();
  t.equal(decoded[0]!.deref(), undefined, 'its JSON is garbage while the commit runs');
  t.ok(received instanceof RecordColumns, 'the store is handed columns');
  t.strictSame(recordsOf(received!), records, 'holding every record');
  release!();
  await commit;
});
