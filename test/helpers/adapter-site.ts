import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModbusSimulator } from '../../adapters/modbus/simulator.js';
import { ChargePointSimulator } from '../../adapters/ocpp/simulator.js';
import { defaultInsightPoints, insightReportLines } from '../../adapters/bms-files/simulator.js';
import { tempDir, type Teardown } from './teardown.js';

/** What a test asks of the site's adapters before it looks at their statuses. */
export interface AdapterSite {
  /** Raw config (as YAML would give it): `adapters` of every built-in type. */
  config: Record<string, unknown>;
  modbus: ModbusSimulator;
  /** Connects the charger CP1 to the gateway at `httpUrl` and starts a session on connector 1. */
  connectCharger(httpUrl: string): Promise<ChargePointSimulator>;
  /** The SunSpec inverter's unit on the Modbus simulator. */
  inverterUnit: number;
}

/**
 * A site with one adapter of each built-in type, each on its real peer in this process:
 * simulated meter; a plain-MQTT mapping; Modbus TCP with an SDM630, a SunSpec inverter and a
 * unit that does not answer (a failing device with its error); a Siemens Insight drop folder
 * with one good and one broken file (an import and a refusal, unmapped points); an Iridium
 * modem on the serialport mock binding; an OCPP charger under load management. Their
 * statuses carry every kind of field the adapter cards show.
 */
export async function adapterSite(t: Teardown): Promise<AdapterSite> {
  const dir = await tempDir(t, 'outpost-adapter-site-');
  const inverterUnit = 3;
  const modbus = new ModbusSimulator({
    devices: [
      { unit: 1, template: 'eastron-sdm630' },
      { unit: inverterUnit, template: 'sunspec' },
    ],
  });
  t.teardown(() => modbus.close());
  const modbusPort = await modbus.listenTcp({ host: '127.0.0.1', port: 0 });

  const dropDir = join(dir, 'insight');
  await mkdir(dropDir, { recursive: true });
  const start = Date.now() - 3 * 3600e3;
  const report = [...insightReportLines({ points: defaultInsightPoints(4), start, rows: 8, intervalMinutes: 15, timeZone: 'UTC' })].join('\r\n') + '\r\n';
  await writeFile(join(dropDir, 'ahu-trend.csv'), report);
  await writeFile(join(dropDir, 'zz-broken.csv'), 'this is not a trend report\r\nat all\r\n');

  const charger = 'CP1';
  const sims: ChargePointSimulator[] = [];
  t.teardown(async () => {
    for (const s of sims) await s.close();
  });
  const config = {
    adapters: [
      { id: 'site', type: 'simulated', interval: 1000, prefix: 'site' },
      { id: 'plugs', type: 'mqtt', mappings: [{ topic: 'tele/+/SENSOR', datapoint: 'plug.{1}.power', path: 'ENERGY.Power', unit: 'W' }] },
      {
        id: 'modbus',
        type: 'modbus',
        buses: [
          {
            name: 'sim',
            tcp: { host: '127.0.0.1', port: modbusPort, connectTimeoutMs: 500 },
            devices: [
              { name: 'main', unit: 1, template: 'eastron-sdm630', prefix: 'meter.main', interval: 1000 },
              { name: 'pv', unit: inverterUnit, template: 'sunspec', prefix: 'pv', interval: 1000 },
              // No device answers unit 9: it fails, with its error, code and next try on the card.
              { name: 'spare', unit: 9, template: 'eastron-sdm120', prefix: 'meter.spare', interval: 1000, timeoutMs: 200 },
            ],
          },
        ],
      },
      {
        id: 'insight',
        type: 'bms-files',
        format: 'siemens-insight',
        timezone: 'UTC',
        dropDir,
        pollMs: 100,
        stableMs: 0,
        completeWithinMs: 0,
        unknownPoints: 'skip',
        points: [{ exact: 'OATEMP', id: 'bms.outdoor.temperature', unit: '°F' }],
      },
      {
        id: 'sat',
        type: 'iridium',
        port: `/dev/outpost-cards-iridium-${process.pid}`,
        simulator: { signal: 3, sessionDelayMs: 0 },
        datapoints: [{ id: 'site.grid.power', decimals: 0 }],
      },
      {
        id: 'chargers',
        type: 'ocpp',
        chargers: [{ id: charger, securityProfile: 0 }],
        idTags: { allow: ['CARD-1'] },
        loadManagement: { limitA: 32, meter: { datapoint: 'site.grid.power', unit: 'W', staleAfterMs: 30_000 } },
      },
    ],
  };
  return {
    config,
    modbus,
    inverterUnit,
    async connectCharger(httpUrl) {
      const sim = new ChargePointSimulator({
        endpoint: `${httpUrl.replace(/^http/, 'ws')}/ocpp`,
        identity: charger,
        phases: 3,
        maxCurrentA: 32,
        meterIntervalMs: 2000,
      });
      sims.push(sim);
      await sim.connect();
      await sim.startSession(1, 'CARD-1');
      return sim;
    },
  };
}
