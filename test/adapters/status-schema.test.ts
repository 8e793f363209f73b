// Every adapter type supplies a status schema (runtime/adapter.ts StatusSchema): valid, and
// covering every key its status publishes, so no adapter card falls back to raw keys. The
// statuses are the real ones: each built-in adapter runs on its real peer (adapter-site.ts).
import t from 'tap';
import { adapterTypes } from '../../adapters/index.js';
import blueprint from '../../adapters/_blueprint/index.js';
import type { AdapterType, StatusSchema } from '../../runtime/adapter.js';
import { HOST_STATUS_FIELDS, servedStatusSchema, statusSchemaProblems, uncoveredStatusKeys } from '../../runtime/status-schema.js';
import { eventually, startTestGateway } from '../helpers/gateway.js';
import { adapterSite } from '../helpers/adapter-site.js';
import { fakeContext } from '../helpers/fake-context.js';

const allTypes: AdapterType[] = [...adapterTypes.values(), blueprint as unknown as AdapterType];

t.test('every adapter type has a valid status schema', async (t) => {
  t.same([...adapterTypes.keys()].sort(), ['bms-files', 'iridium', 'modbus', 'mqtt', 'ocpp', 'simulated'], 'the built-in types');
  for (const type of allTypes) {
    t.ok(type.statusSchema, `${type.type}: has a statusSchema`);
    t.same(statusSchemaProblems(type.statusSchema), [], `${type.type}: schema is valid`);
    t.same(statusSchemaProblems(servedStatusSchema(type)), [], `${type.type}: with the host's fields too`);
  }
  t.same(statusSchemaProblems({ fields: HOST_STATUS_FIELDS }), []);
});

t.test('the validator refuses broken schemas, naming the field', async (t) => {
  t.match(statusSchemaProblems({ fields: { a: { label: '' } } }), [/statusSchema\.fields\.a\.label/]);
  t.match(statusSchemaProblems({ fields: { a: { label: 'A', format: 'rows' } } }), [/statusSchema\.a: format "rows" needs "fields"/]);
  t.match(statusSchemaProblems({ fields: { a: { label: 'A', fields: { b: { label: 'B' } } } } }), [/"fields" only go with format "fields" or "rows"/]);
  t.match(statusSchemaProblems({ fields: { a: { label: 'A', detail: true } } }), [/"detail" only applies to a column of "rows"/]);
  t.match(statusSchemaProblems({ fields: { a: { label: 'A', enum: { 1: 'one' }, tones: { 2: 'bad' } } } }), [/tone for "2"/]);
  t.match(statusSchemaProblems({ fields: { a: { label: 'A', format: 'json' } } }), [/format/]);
  t.match(statusSchemaProblems({ fields: { a: { label: 'A', typo: 1 } } }), [/typo/]);
  t.same(statusSchemaProblems({ fields: { a: { label: 'A', format: 'rows', key: 'Device', fields: { b: { label: 'B', detail: true } } } } }), []);
});

t.test('coverage: keys a schema lacks are found, nested ones by path', async (t) => {
  const schema: StatusSchema = {
    fields: {
      devices: { label: 'Devices', format: 'rows', fields: { state: { label: 'State' } } },
      last: { label: 'Last', format: 'fields', fields: { file: { label: 'File' } } },
      counts: { label: 'Counts', format: 'map' },
    },
  };
  t.same(uncoveredStatusKeys(schema, { devices: { a: { state: 'ok' } }, last: { file: 'x' }, counts: { anything: 1 } }), []);
  t.same(uncoveredStatusKeys(schema, { devices: { a: { state: 'ok', surprise: 1 } }, last: { file: 'x', took: 3 }, extra: 2 }), [
    'devices.*.surprise',
    'extra',
    'last.took',
  ]);
  t.same(uncoveredStatusKeys(schema, { devices: [{ state: 'ok', other: true }] }), ['devices.*.other'], 'rows as an array too');
});

t.test('the blueprint status is covered (fake context)', async (t) => {
  const f = await fakeContext({ id: 'bp' });
  t.teardown(() => f.cleanup());
  const a = blueprint.create(blueprint.schema.parse({ device: { watts: 1200 } }) as Parameters<typeof blueprint.create>[0], { id: 'bp' });
  await a.start(f.ctx);
  await f.clock.advance(10_000);
  t.ok(f.status.info, 'it published info');
  t.same(uncoveredStatusKeys(servedStatusSchema(blueprint as unknown as AdapterType), f.status.info!), []);
  f.stop();
  await a.stop();
});

t.test('the status of every built-in adapter, running on its peer, is covered by its schema', async (t) => {
  const site = await adapterSite(t);
  const gw = await startTestGateway(t, { gateway: { id: 'schemas', timezone: 'UTC' }, ...site.config });
  await site.connectCharger(gw.httpUrl);
  type Item = { id: string; type: string; state: string; info?: Record<string, unknown> };
  const statuses = async () =>
    (await (await fetch(`${gw.httpUrl}/api/adapters`)).json()) as { items: Item[]; types: Record<string, { statusSchema: StatusSchema }> };
  const byId = (items: Item[]) => Object.fromEntries(items.map((i) => [i.id, i]));
  // Wait until each status shows the parts worth checking: every kind of field, filled.
  const body = await eventually(
    async () => {
      const b = await statuses();
      const a = byId(b.items);
      const devices = a.modbus?.info?.devices as Record<string, { state: string; identity?: object }> | undefined;
      const ready =
        devices?.main?.state === 'ok' &&
        devices.pv?.identity !== undefined &&
        devices.spare?.state === 'failing' &&
        a.insight?.info?.lastImport &&
        a.insight.info.lastFailure &&
        (a.insight.info.unmappedPoints as unknown[]).length > 0 &&
        a.chargers?.info?.plan &&
        (a.chargers.info.chargers as unknown[]).length === 1 &&
        a.sat?.info?.signal !== undefined &&
        a.site?.state === 'running' &&
        a.plugs?.state === 'running';
      return ready ? b : undefined;
    },
    30_000,
    200,
  ).then((b) => b!);
  t.same(
    Object.keys(body.types).sort(),
    ['bms-files', 'iridium', 'modbus', 'mqtt', 'ocpp', 'simulated'],
    'GET /api/adapters names the schema of each type in use',
  );
  for (const item of body.items) {
    const schema = body.types[item.type]!.statusSchema;
    t.same(statusSchemaProblems(schema), [], `${item.id}: the served schema is valid`);
    t.ok(schema.fields.retryInMs, `${item.id}: the host's retryInMs is in the served schema`);
    t.same(uncoveredStatusKeys(schema, item.info ?? {}), [], `${item.type} (${item.id}): every status key has a label`);
  }
  const all = (await (await fetch(`${gw.httpUrl}/api/adapters/types`)).json()) as {
    types: Record<string, { description: string; statusSchema: StatusSchema }>;
  };
  t.same(Object.keys(all.types).sort(), [...adapterTypes.keys()].sort(), 'GET /api/adapters/types lists every type of the build');
  t.match(all.types.ocpp, { description: /OCPP/, statusSchema: { fields: { chargers: { format: 'rows' } } } });

  // The SunSpec inverter's coded registers carry their words, read from the real device.
  const state = gw.gateway.registry.get('pv.inverter.state');
  t.match(state?.meta, { enum: { 4: 'MPPT', 7: 'Fault' } }, 'St: the SunSpec enum16 symbols');
  t.equal(gw.gateway.store.latest('pv.inverter.state')?.v, 4, 'the number is stored (MPPT)');
  t.match(gw.gateway.registry.get('pv.inverter.events')?.meta, { bits: { 0: 'Ground fault', 7: 'Over temperature' } }, 'Evt1: the bitfield32 symbols');
  await eventually(() => gw.gateway.store.latest('pv.inverter.events')?.v === 0, 5000);
});
