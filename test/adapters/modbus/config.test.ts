import t from 'tap';
import modbus, { modbusSchema, resolveDevices } from '../../../adapters/modbus/index.js';
import { loadSunSpec } from '../../../adapters/modbus/sunspec.js';
import { loadTemplates } from '../../../adapters/modbus/templates.js';
import { startTestGateway } from '../../helpers/gateway.js';

const templates = loadTemplates();
const sunspec = loadSunSpec();
const resolve = (raw: unknown) => resolveDevices('mb', modbusSchema.parse(raw), templates, sunspec);

t.test('the README example resolves: templates, SunSpec, inline registers with defaults', async (t) => {
  const devices = resolve({
    buses: [
      {
        name: 'rs485',
        rtu: { path: '/dev/ttyUSB0' },
        devices: [
          { name: 'main', unit: 1, template: 'eastron-sdm630', prefix: 'plant.main', intervals: { energy_import: 60000 } },
          { name: 'em24', unit: 2, template: 'carlo-gavazzi-em24', only: ['power'] },
        ],
      },
      {
        name: 'pv',
        tcp: { host: '192.168.1.50' },
        devices: [
          { name: 'inverter', unit: 1, template: 'sunspec', prefix: 'pv' },
          {
            name: 'boiler',
            unit: 3,
            maxRegisters: 20,
            maxGap: 2,
            defaults: { function: 'holding', type: 'int16' },
            registers: [
              { name: 'temperature', address: 100, scale: 0.1, unit: '°C' },
              { name: 'setpoint', address: 200, scale: 0.5, unit: '°C', kind: 'actuator', min: 20, max: 80 },
              { name: 'pump', address: 0, function: 'coil', kind: 'actuator' },
            ],
          },
        ],
      },
    ],
  });
  t.same(
    devices.map((d) => [d.name, d.prefix, d.model, d.maxRegisters]),
    [
      ['main', 'plant.main', 'eastron-sdm630', 80],
      ['em24', 'mb.em24', 'carlo-gavazzi-em24', 80],
      ['inverter', 'pv', 'sunspec', 125],
      ['boiler', 'mb.boiler', 'inline', 20],
    ],
  );
  t.ok(devices[2]!.sunspec && !devices[2]!.points);
  t.match(
    devices[3]!.points!.find((p) => p.name === 'pump'),
    { function: 'coil', type: 'bool', kind: 'actuator' },
  );
});

t.test('configuration mistakes are refused with their path', async (t) => {
  const bus = (devices: unknown[], link: object = { rtu: { path: '/dev/x' } }) => ({ buses: [{ name: 'b', ...link, devices }] });
  t.throws(() => resolve(bus([{ name: 'a', template: 'nope' }])), { code: 'CONFIG_INVALID', message: /buses\[0\]\.devices\[0\]: unknown template "nope"/ });
  t.throws(
    () =>
      resolve(
        bus([
          { name: 'a', unit: 1, template: 'eastron-sdm120' },
          { name: 'b', unit: 1, template: 'eastron-sdm120' },
        ]),
      ),
    { message: /unit 1 is used twice/ },
  );
  t.throws(() => resolve(bus([{ name: 'a', unit: 0, template: 'eastron-sdm120' }])), { message: /RTU unit ids are 1..247/ });
  t.throws(() => resolve(bus([{ name: 'a', template: 'sunspec', registers: [{ name: 'x', address: 0, function: 'input' }] }])), { message: /SunSpec/ });
  t.throws(() => resolve(bus([{ name: 'a', registers: [{ name: 'x', address: 0 }] }])), {
    code: 'MODBUS_TEMPLATE_INVALID',
    message: /devices\[0\]\.registers/,
  });
  t.throws(() => modbusSchema.parse(bus([{ name: 'a' }])), /template/);
  t.throws(() => modbusSchema.parse(bus([{ name: 'a', template: 'eastron-sdm120' }], { rtu: { path: '/dev/x', baudRate: 1234 } })));
  t.throws(() => modbusSchema.parse(bus([{ name: 'a', template: 'eastron-sdm120' }], {})), /exactly one/);
  t.throws(() => modbusSchema.parse(bus([{ name: 'a', template: 'eastron-sdm120', tyop: 1 }])));
});

t.test('a bad option stops the gateway from starting, named by its path (what `outpost check` says)', async (t) => {
  await t.rejects(
    startTestGateway(
      t,
      {
        adapters: [
          {
            id: 'mb',
            type: 'modbus',
            buses: [{ name: 'b', tcp: { host: '127.0.0.1', port: 1 }, devices: [{ name: 'a', template: 'eastron-sdm630', only: ['no_such_point'] }] }],
          },
        ],
      },
      { types: [modbus] },
    ),
    { code: 'CONFIG_INVALID', message: /adapters\.0\.buses\.0\.devices\.0\.only: names unknown point\(s\) no_such_point/ },
  );
});
