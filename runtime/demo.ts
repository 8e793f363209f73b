import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from './log.js';
import { hashPassword } from './auth/passwords.js';
import { DEMO_CHARGERS, demoConfig, demoIdTag } from './config/demo.js';
import { ModbusSimulator } from '../adapters/modbus/simulator.js';
import { ChargePointSimulator } from '../adapters/ocpp/simulator.js';

/** Port name of the demo's simulated Iridium modem on the serialport mock binding (no device file). */
const DEMO_IRIDIUM_PORT = '/dev/outpost-demo-iridium';

/** The demo's cars follow a new limit the way real ones do: after 1.5 s, ramping up at 4 A/s. */
const DEMO_CAR = { delayMs: 1500, rampUpAPerS: 4, rampDownAPerS: 100 };

/**
 * The demo site's simulated devices: a Modbus TCP server with an SDM630 meter and a
 * SunSpec inverter, two OCPP charge points that plug in a car each, and an Iridium
 * RockBLOCK. They run in the gateway's process and talk to it over loopback (the modem
 * over the serialport mock binding) exactly as real devices would.
 */
export class DemoDevices {
  private modbus: ModbusSimulator | undefined;
  private readonly chargers: ChargePointSimulator[] = [];
  private readonly chargerPassword = randomBytes(12).toString('hex');
  private timers: NodeJS.Timeout[] = [];

  constructor(private readonly log: Logger) {}

  /** Starts the Modbus simulator and returns the demo config pointing at it. */
  async config(dataDir: string): Promise<Record<string, unknown>> {
    this.modbus = new ModbusSimulator({
      devices: [
        { unit: 1, template: 'eastron-sdm630' },
        { unit: 3, template: 'sunspec' },
      ],
    });
    const modbusPort = await this.modbus.listenTcp({ host: '127.0.0.1', port: 0 });
    // Node-RED's credential key: made once per data directory, readable by this user only.
    await mkdir(dataDir, { recursive: true });
    const flowsSecretFile = resolve(dataDir, 'flows.secret');
    await writeFile(flowsSecretFile, randomBytes(32).toString('hex') + '\n', { flag: 'wx', mode: 0o600 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    // The Iridium modem simulator lives on the device end of the mock port; the iridium
    // adapter's `simulator` option attaches it when the adapter opens the port, and it is
    // closed with the port when the adapter stops (so nothing is left to stop here).
    return demoConfig(dataDir, { modbusPort, chargerPasswordHash: await hashPassword(this.chargerPassword), flowsSecretFile, iridiumPort: DEMO_IRIDIUM_PORT });
  }

  /** Connects the simulated chargers once the gateway serves HTTP; a car arrives at each. */
  async connectChargers(httpUrl: string): Promise<void> {
    const endpoint = httpUrl.replace(/^http/, 'ws') + '/ocpp';
    for (const [i, identity] of DEMO_CHARGERS.entries()) {
      const sim = new ChargePointSimulator({
        endpoint,
        identity,
        password: this.chargerPassword,
        meterIntervalMs: 10_000,
        phases: 3,
        maxCurrentA: 32,
        car: DEMO_CAR,
      });
      this.chargers.push(sim);
      try {
        await sim.connect();
      } catch (err) {
        this.log.warn({ charger: identity, err: (err as Error).message }, 'demo charger could not connect');
        continue;
      }
      // Each car has its own tag: a tag holds one transaction at a time (a second one is answered
      // ConcurrentTx, OCPP 1.6 §7.2, and the charger stops it), so a shared tag left CP2 idle.
      const timer = setTimeout(
        () => {
          sim
            .startSession(1, demoIdTag(i))
            .then((s) => {
              if (s.status !== 'Accepted') this.log.warn({ charger: identity, status: s.status }, 'demo session refused');
            })
            .catch((err: Error) => this.log.warn({ charger: identity, err: err.message }, 'demo session did not start'));
        },
        3000 + i * 5000,
      );
      timer.unref();
      this.timers.push(timer);
    }
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    await Promise.all(this.chargers.map((c) => c.close().catch(() => undefined)));
    await this.modbus?.close();
  }
}
