// Enumerated and bitfield registers (templates.ts `enum` / `bits`): validated at load, carried
// to the datapoint's meta, where the dashboard's formatValue turns them into words.
import t from 'tap';
import { resolvePoints } from '../../../adapters/modbus/templates.js';
import { datapointFor } from '../../../adapters/modbus/mapping.js';
import { loadSunSpec } from '../../../adapters/modbus/sunspec.js';

const resolve = (point: Record<string, unknown>) => resolvePoints([{ function: 'holding', address: 0, name: 'p', ...point }], {}, 'test');

t.test('enum and bits reach the datapoint meta; the number stays the value', async (t) => {
  const [state] = resolve({ type: 'uint16', enum: { 1: 'Off', 4: 'MPPT' } });
  t.match(datapointFor('inv', state!, {}), { id: 'inv.p', type: 'number', meta: { enum: { 1: 'Off', 4: 'MPPT' } } });
  const [events] = resolve({ type: 'uint32', bits: { 0: 'Ground fault', 31: 'Vendor' } });
  t.match(datapointFor('inv', events!, {}), { meta: { bits: { 0: 'Ground fault', 31: 'Vendor' } } });
  t.notOk('enum' in (datapointFor('inv', resolve({ type: 'uint16' })[0]!, {}).meta ?? {}), 'no enum, no meta.enum');
});

t.test('coded registers that cannot be read as words are refused, naming the point', async (t) => {
  t.throws(() => resolve({ type: 'float32', enum: { 1: 'x' } }), {
    code: 'MODBUS_TEMPLATE_INVALID',
    message: /test\.points\[0\] \(p\): "enum" needs an int16, uint16, int32 or uint32 point, not float32/,
  });
  t.throws(() => resolve({ type: 'uint16', bits: { 16: 'x' } }), { message: /bit 16 does not exist in a uint16 register \(bits 0-15\)/ });
  t.throws(() => resolve({ type: 'uint16', scale: 0.1, enum: { 1: 'x' } }), { message: /needs the raw register value/ });
  t.throws(() => resolve({ type: 'uint16', enum: { 1: 'x' }, bits: { 0: 'y' } }), { message: /not both/ });
  t.throws(() => resolve({ type: 'uint16', enum: { one: 'x' } }), { message: /enumeration keys are integer register values/ });
  t.throws(() => resolve({ type: 'uint16', enum: { 1: '' } }), { code: 'MODBUS_TEMPLATE_INVALID' });
});

t.test('SunSpec inverter St and Evt1 carry the symbols of models 101/102/103', async (t) => {
  const defs = loadSunSpec();
  for (const id of [101, 102, 103]) {
    const points = defs.models.get(id)!.points;
    const st = points.find((p) => p.name === 'state')!;
    t.same(
      st.enum,
      { 1: 'Off', 2: 'Sleeping', 3: 'Starting', 4: 'MPPT', 5: 'Throttled', 6: 'Shutting down', 7: 'Fault', 8: 'Standby' },
      `${id} St: enum16 OFF … STANDBY`,
    );
    const evt = points.find((p) => p.name === 'events')!;
    t.equal(Object.keys(evt.bits!).length, 16, `${id} Evt1: bits 0-15 named`);
    t.match(evt.bits, { 0: 'Ground fault', 1: 'DC over voltage', 7: 'Over temperature', 12: 'Blown string fuse', 15: 'Hardware test failure' });
    t.same(evt.nan, [0xffffffff], 'bitfield32 "not implemented" is 0xFFFFFFFF');
  }
});
