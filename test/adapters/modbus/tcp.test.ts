import t from 'tap';
import modbus from '../../../adapters/modbus/index.js';
import { ModbusSimulator } from '../../../adapters/modbus/simulator.js';
import { eventually, startTestGateway } from '../../helpers/gateway.js';
import { adapterStatus, latest, postJson, values } from './helpers.js';

t.test('Modbus TCP: templates, SunSpec discovery, writes and a refusing device against a real TCP server', async (t) => {
  const sim = new ModbusSimulator({
    tickMs: 100,
    devices: [
      { unit: 1, template: 'eastron-sdm630', strict: true },
      { unit: 2, template: 'carlo-gavazzi-em24' },
      { unit: 3, template: 'sunspec', strict: true },
      { unit: 4, template: 'eastron-sdm120', fault: { kind: 'exception', code: 2 } },
      { unit: 5, template: 'eastron-sdm630', fault: { kind: 'ignore-writes' } },
    ],
  });
  t.teardown(() => sim.close());
  const port = await sim.listenTcp({ host: '127.0.0.1', port: 0 });
  const gw = await startTestGateway(
    t,
    {
      adapters: [
        {
          id: 'mb',
          type: 'modbus',
          buses: [
            {
              name: 'lan',
              tcp: { host: '127.0.0.1', port },
              devices: [
                { name: 'main', unit: 1, template: 'eastron-sdm630', prefix: 'site.main', interval: 200, intervals: { energy_import: 1000 } },
                { name: 'em24', unit: 2, template: 'carlo-gavazzi-em24', interval: 200 },
                { name: 'pv', unit: 3, template: 'sunspec', prefix: 'pv', interval: 200 },
                { name: 'sub', unit: 4, template: 'eastron-sdm120', interval: 200, backoff: { initialMs: 100, maxMs: 400 } },
                { name: 'locked', unit: 5, template: 'eastron-sdm630', interval: 1000, only: ['power', 'demand_period'] },
              ],
            },
          ],
        },
      ],
    },
    { types: [modbus] },
  );

  await t.test('template values are decoded with the right scale and word order', async (t) => {
    const v = (await eventually(() => latest(gw.httpUrl, 'site.main.voltage_l1')))!;
    t.ok(typeof v.v === 'number' && v.v > 220 && v.v < 240, `SDM630 float32 ABCD voltage ${v.v}`);
    const ll = (await eventually(() => latest(gw.httpUrl, 'site.main.voltage_l1_l2')))!;
    t.ok((ll.v as number) > 390 && (ll.v as number) < 410, `line-line voltage ${ll.v}`);
    const em = (await eventually(() => latest(gw.httpUrl, 'mb.em24.voltage_l1')))!;
    t.ok((em.v as number) > 220 && (em.v as number) < 240, `EM24 int32 CDAB ×0.1 voltage ${em.v}`);
    const hz = (await eventually(() => latest(gw.httpUrl, 'mb.em24.frequency')))!;
    t.ok(Math.abs((hz.v as number) - 50) < 0.1, `EM24 frequency ${hz.v}`);
    // Values move: a meter is not a constant.
    const first = (await latest(gw.httpUrl, 'site.main.power'))!;
    await eventually(async () => (await latest(gw.httpUrl, 'site.main.power'))!.v !== first.v, 5000);
  });

  await t.test('SunSpec device is discovered and scaled by its scale-factor registers', async (t) => {
    const w = (await eventually(() => latest(gw.httpUrl, 'pv.inverter.power'), 8000))!;
    t.ok((w.v as number) > 1000, `inverter power ${w.v} W`);
    const a = (await eventually(() => latest(gw.httpUrl, 'pv.inverter.current')))!;
    t.ok((a.v as number) > 3 && (a.v as number) < 15, `inverter current ${a.v} A (raw ×10^-2)`);
    const mv = (await eventually(() => latest(gw.httpUrl, 'pv.meter.voltage_l1')))!;
    t.ok((mv.v as number) > 220 && (mv.v as number) < 240, `meter voltage ${mv.v} V (raw ×10^-1)`);
    const notImplemented = await eventually(() => latest(gw.httpUrl, 'pv.inverter.temperature_heatsink'));
    t.same({ v: notImplemented!.v, q: notImplemented!.q }, { v: null, q: 'bad' }, 'an unimplemented SunSpec point (0x8000) is bad, not -3276.8');
    const status = await adapterStatus(gw.httpUrl, 'mb');
    t.match(status.info.devices.pv.identity, { manufacturer: 'Outpost', serial: 'SIM30001' });
  });

  await t.test('per-point interval: the energy counter is read less often than power', async (t) => {
    // Over the whole run so far, power (200 ms) is read about 5× as often as energy (1000 ms).
    await new Promise((r) => setTimeout(r, 3000));
    const power = (await values(gw.httpUrl, 'site.main.power')).length;
    const energy = (await values(gw.httpUrl, 'site.main.energy_import')).length;
    t.ok(energy >= 2, `energy read ${energy} times`);
    t.ok(power >= 2.5 * energy, `power read ${power} times, energy ${energy} times`);
  });

  await t.test('a device answering exception 2 is failing, marked bad, and named in the status', async (t) => {
    const s = (await eventually(async () => {
      const st = await adapterStatus(gw.httpUrl, 'mb');
      return st?.info?.devices?.sub?.badPoints?.length ? st : undefined;
    }, 8000))!;
    t.equal(s.degraded, true);
    t.match(s.message, /sub/);
    const v = await latest(gw.httpUrl, 'mb.sub.voltage');
    t.same({ v: v!.v, q: v!.q }, { v: null, q: 'bad' });
    // Still reading the healthy meters meanwhile.
    const before = (await latest(gw.httpUrl, 'site.main.power'))!.t;
    await eventually(async () => (await latest(gw.httpUrl, 'site.main.power'))!.t > before);
  });

  await t.test('writes: verified by read-back, range checked, and failures reported to the requester', async (t) => {
    const ok = await postJson<{ v: number }>(`${gw.httpUrl}/api/datapoints/site.main.demand_period/setpoint`, { v: 15 });
    t.equal(ok.status, 200, JSON.stringify(ok.body));
    t.equal(ok.body.v, 15);
    const words = sim.device(1).words('holding', 2, 2);
    const b = Buffer.alloc(4);
    b.writeUInt16BE(words[0]!, 0);
    b.writeUInt16BE(words[1]!, 2);
    t.equal(b.readFloatBE(0), 15, 'the meter holds 15.0 in holding registers 0x0002-0x0003 (FC16, float32 ABCD)');
    t.equal((await latest(gw.httpUrl, 'site.main.demand_period'))!.v, 15);

    const notAllowed = await postJson<{ code?: string; error?: { code: string } }>(`${gw.httpUrl}/api/datapoints/site.main.demand_period/setpoint`, { v: 7 });
    t.equal(notAllowed.status, 400);
    t.equal(notAllowed.body.error?.code ?? notAllowed.body.code, 'SETPOINT_OUT_OF_RANGE');

    const sensor = await postJson(`${gw.httpUrl}/api/datapoints/site.main.power/setpoint`, { v: 7 });
    t.equal(sensor.status, 400);

    const locked = await postJson(`${gw.httpUrl}/api/datapoints/mb.locked.demand_period/setpoint`, { v: 30 });
    t.equal(locked.status, 502, 'a device that ignores the write fails the setpoint');
    t.match(JSON.stringify(locked.body), /SETPOINT_FAILED/);
    t.match(JSON.stringify(locked.body), /reads back 0/);

    const refused = await postJson(`${gw.httpUrl}/api/datapoints/mb.sub.voltage/setpoint`, { v: 1 });
    t.equal(refused.status, 400, 'sensors are not writable');
  });
});
