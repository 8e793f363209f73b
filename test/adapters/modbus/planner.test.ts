import t from 'tap';
import { planReads } from '../../../adapters/modbus/planner.js';
import { resolvePoints } from '../../../adapters/modbus/templates.js';

const pts = (specs: Array<[string, number, string, string?]>) =>
  resolvePoints(
    specs.map(([name, address, fn, type]) => ({ name, address, function: fn, ...(fn === 'coil' || fn === 'discrete' ? {} : { type: type ?? 'uint16' }) })),
    {},
    'inline',
  );

t.test('adjacent registers of one function merge; functions never mix', async (t) => {
  const blocks = planReads(
    pts([
      ['a', 0, 'input'],
      ['b', 1, 'input'],
      ['c', 2, 'input', 'float32'],
      ['h', 1, 'holding'],
    ]),
    { maxRegisters: 125, maxGap: 0 },
  );
  t.same(
    blocks.map((b) => [b.function, b.address, b.count, b.points.length]),
    [
      ['holding', 1, 1, 1],
      ['input', 0, 4, 3],
    ],
  );
});

t.test('gaps up to maxGap are read through, larger gaps split', async (t) => {
  const points = pts([
    ['a', 0, 'input'],
    ['b', 5, 'input'],
    ['c', 20, 'input'],
  ]);
  t.same(
    planReads(points, { maxRegisters: 125, maxGap: 4 }).map((b) => [b.address, b.count]),
    [
      [0, 6],
      [20, 1],
    ],
  );
  t.same(
    planReads(points, { maxRegisters: 125, maxGap: 3 }).map((b) => [b.address, b.count]),
    [
      [0, 1],
      [5, 1],
      [20, 1],
    ],
  );
  t.same(
    planReads(points, { maxRegisters: 125, maxGap: 20 }).map((b) => [b.address, b.count]),
    [[0, 21]],
  );
});

t.test('reads never exceed min(125, device limit) and never split a value', async (t) => {
  const many = pts(Array.from({ length: 100 }, (_, i) => [`p${i}`, i * 2, 'holding', 'float32'] as [string, number, string, string]));
  const b125 = planReads(many, { maxRegisters: 500, maxGap: 0 });
  t.ok(b125.every((b) => b.count <= 125));
  t.equal(b125.length, 2);
  const b10 = planReads(many, { maxRegisters: 10, maxGap: 0 });
  t.ok(
    b10.every((b) => b.count <= 10 && b.count % 2 === 0),
    'float32 values stay whole',
  );
  t.equal(b10.length, 20);
});

t.test('coils merge by bits up to 2000', async (t) => {
  const coils = pts([
    ['a', 0, 'coil'],
    ['b', 7, 'coil'],
    ['c', 1999, 'coil'],
    ['d', 2100, 'coil'],
  ]);
  const blocks = planReads(coils, { maxRegisters: 125, maxGap: 200 });
  t.same(
    blocks.map((b) => [b.address, b.count]),
    [
      [0, 2000],
      [2100, 1],
    ],
  );
});
