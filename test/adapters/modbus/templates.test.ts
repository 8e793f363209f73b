import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadSunSpec } from '../../../adapters/modbus/sunspec.js';
import { loadTemplates, parseTemplate, resolvePoints } from '../../../adapters/modbus/templates.js';
import { planReads } from '../../../adapters/modbus/planner.js';
import { tempDir } from '../../helpers/teardown.js';

t.test('every shipped template loads and validates', async (t) => {
  const templates = loadTemplates();
  t.same([...templates.keys()].sort(), ['carlo-gavazzi-em24', 'eastron-sdm120', 'eastron-sdm630']);
  for (const tpl of templates.values()) {
    t.ok(tpl.points.length > 5, `${tpl.model} has points`);
    // No two points of one function overlap: overlapping registers mean a typo in an address.
    for (const fn of ['holding', 'input'] as const) {
      const ps = tpl.points.filter((p) => p.function === fn).sort((a, b) => a.address - b.address);
      for (let i = 1; i < ps.length; i++)
        t.ok(ps[i]!.address >= ps[i - 1]!.address + ps[i - 1]!.count, `${tpl.model}: ${ps[i - 1]!.name} and ${ps[i]!.name} do not overlap`);
    }
  }
  const sunspec = loadSunSpec();
  t.same(
    [...sunspec.models.keys()].sort((a, b) => a - b),
    [1, 101, 102, 103, 201, 202, 203, 204],
  );
  t.same(sunspec.bases, [40000, 50000, 0]);
});

t.test('datasheet addresses of key registers', async (t) => {
  const templates = loadTemplates();
  const at = (model: string, name: string) => templates.get(model)!.points.find((p) => p.name === name)!;
  // Eastron SDM630: 30001 phase 1 voltage, 30013 phase 1 power, 30053 total power, 30073 import kWh (float32 ABCD input registers).
  t.match(at('eastron-sdm630', 'voltage_l1'), { address: 0x0000, function: 'input', type: 'float32', wordOrder: 'ABCD' });
  t.match(at('eastron-sdm630', 'power_l1'), { address: 0x000c });
  t.match(at('eastron-sdm630', 'power'), { address: 0x0034 });
  t.match(at('eastron-sdm630', 'energy_import'), { address: 0x0048, unit: 'kWh' });
  t.match(at('eastron-sdm120', 'energy_import'), { address: 0x0048 });
  // Carlo Gavazzi EM24: W sys at 0x0028, kWh(+) TOT at 0x0034, INT32 LSW first.
  t.match(at('carlo-gavazzi-em24', 'power'), { address: 0x0028, type: 'int32', wordOrder: 'CDAB', scale: 0.1 });
  t.match(at('carlo-gavazzi-em24', 'energy_import'), { address: 0x0034 });
  // SunSpec meter: TotWh_SF is offset 52 in models 201-204, W_SF offset 20.
  const meter = loadSunSpec().models.get(203)!.points;
  t.match(
    meter.find((p) => p.name === 'energy_sf'),
    { address: 52 },
  );
  t.match(
    meter.find((p) => p.name === 'power_sf'),
    { address: 20 },
  );
});

t.test('SDM630 coalesces into a handful of reads', async (t) => {
  const tpl = loadTemplates().get('eastron-sdm630')!;
  const blocks = planReads(tpl.points, tpl);
  t.ok(
    blocks.every((b) => b.count <= 80),
    'no read above the meter limit',
  );
  t.ok(blocks.length <= 7, `${blocks.length} reads for ${tpl.points.length} points`);
  for (const p of tpl.points) t.equal(blocks.filter((b) => b.points.includes(p)).length, 1, `${p.name} read exactly once`);
});

t.test('bad templates are refused with the path and reason', async (t) => {
  const good = 'model: x\nmanufacturer: m\ndescription: d\nsource: s\npoints:\n';
  t.throws(() => parseTemplate(good + '  - { name: a, address: 0 }\n', 'x.yaml'), { code: 'MODBUS_TEMPLATE_INVALID', message: /function/ });
  t.throws(() => parseTemplate(good + '  - { name: a, address: 0, function: input, type: float33 }\n', 'x.yaml'), {
    code: 'MODBUS_TEMPLATE_INVALID',
    message: /x\.yaml\.points\.0\.type|points\[0\]/,
  });
  t.throws(() => parseTemplate(good + '  - { name: a, address: 0, function: input, kind: actuator }\n', 'x.yaml'), {
    message: /only holding registers and coils/,
  });
  t.throws(() => parseTemplate(good + '  - { name: a, address: 65535, function: input, type: float32 }\n', 'x.yaml'), { message: /runs past 65535/ });
  t.throws(() => parseTemplate(good + '  - { name: a, address: 0, function: input }\n  - { name: a, address: 1, function: input }\n', 'x.yaml'), {
    message: /duplicate/,
  });
  t.throws(() => parseTemplate(good + '  - { name: a, address: 0, function: holding, scaleFactor: nope }\n', 'x.yaml'), { message: /does not exist/ });
  t.throws(() => parseTemplate(good + '  - { name: a, address: 0, function: coil, type: float32 }\n', 'x.yaml'), { message: /bits/ });
  t.throws(() => parseTemplate(good + '  - { name: a, address: 0, function: input, typo: 1 }\n', 'x.yaml'), { code: 'MODBUS_TEMPLATE_INVALID' });
  t.throws(() => parseTemplate('model: [', 'x.yaml'), { message: /not valid YAML/ });
  t.throws(() => resolvePoints([{ name: 's', address: 0, function: 'holding', type: 'string' }], {}, 'inline'), { message: /length/ });
});

t.test('an extra templates directory is loaded and validated too', async (t) => {
  const dir = await tempDir(t, 'outpost-modbus-tpl-');
  await writeFile(join(dir, 'x.yaml'), 'model: my-meter\nmanufacturer: m\ndescription: d\nsource: s\npoints:\n  - { name: p, address: 0, function: input }\n');
  t.same([...loadTemplates(dir).keys()], ['my-meter']);
  await writeFile(join(dir, 'y.yaml'), 'model: my-meter\nmanufacturer: m\ndescription: d\nsource: s\npoints:\n  - { name: p, address: 0, function: input }\n');
  t.throws(() => loadTemplates(dir), { message: /defined twice/ });
});
