/** Devices the demo's simulators expose, so the demo config can point adapters at them. */
export interface DemoDevices {
  /** Loopback port of the Modbus TCP simulator (SDM630 unit 1, SunSpec inverter unit 3). */
  modbusPort?: number;
  /** scrypt hash of the password the simulated chargers log in with. */
  chargerPasswordHash?: string;
  /** File with the key that encrypts Node-RED flow credentials; Node-RED runs when given. */
  flowsSecretFile?: string;
  /**
   * Serial port name (serialport mock binding, in-process) of the simulated Iridium modem;
   * the iridium adapter attaches adapters/iridium/simulator.ts to it when it opens the port.
   */
  iridiumPort?: string;
}

/** The demo's charge points; car i (0-based) plugs in at DEMO_CHARGERS[i] with demoIdTag(i). */
export const DEMO_CHARGERS = ['CP1', 'CP2'] as const;

/** The id tag of the demo's car i: one per car, since a tag holds one transaction at a time. */
export function demoIdTag(i: number): string {
  return `DEMO-TAG-${i + 1}`;
}

/** The built-in demo site: `outpost demo` (and `npm start` with no config). */
export function demoConfig(dataDir = './data', devices: DemoDevices = {}): Record<string, unknown> {
  const adapters: Array<Record<string, unknown>> = [
    // The grid meter measures the chargers too (as load management assumes): their power is part of the load.
    {
      id: 'site',
      type: 'simulated',
      interval: 1000,
      prefix: 'site',
      addPower: devices.chargerPasswordHash !== undefined ? DEMO_CHARGERS.map((id) => `ev.${id.toLowerCase()}.1.power`) : [],
    },
    {
      // Siemens Insight trend reports: the simulator drops one into data/bms/insight every minute.
      id: 'insight',
      type: 'bms-files',
      format: 'siemens-insight',
      dropDir: 'bms/insight',
      simulator: { everyMs: 60_000, points: 24 },
      points: [
        { exact: 'OATEMP', id: 'bms.outdoor.temperature', unit: '°F', description: 'Outdoor air temperature' },
        { glob: 'EV.*.V', id: 'bms.{1}.valve', unit: '%', description: 'Reheat valve position' },
        { regex: '^EV\\.(\\w+)\\.RT$', id: 'bms.{1}.temperature', unit: '°F', description: 'Room temperature' },
      ],
    },
    { id: 'plugs', type: 'mqtt', mappings: [{ topic: 'tele/+/SENSOR', datapoint: 'plug.{1}.power', path: 'ENERGY.Power', unit: 'W' }] },
  ];
  if (devices.modbusPort !== undefined) {
    adapters.push({
      id: 'modbus',
      type: 'modbus',
      buses: [
        {
          name: 'sim',
          tcp: { host: '127.0.0.1', port: devices.modbusPort },
          devices: [
            { name: 'main', unit: 1, template: 'eastron-sdm630', prefix: 'meter.main', interval: 2000, intervals: { energy_import: 10_000 } },
            { name: 'pv', unit: 3, template: 'sunspec', prefix: 'pv.inverter', interval: 5000 },
          ],
        },
      ],
    });
  }
  if (devices.chargerPasswordHash !== undefined) {
    adapters.push({
      id: 'chargers',
      type: 'ocpp',
      chargers: DEMO_CHARGERS.map((id) => ({ id, password: devices.chargerPasswordHash })),
      idTags: { allow: DEMO_CHARGERS.map((_, i) => demoIdTag(i)) },
      loadManagement: { limitA: 32, meter: { datapoint: 'site.grid.power', unit: 'W', staleAfterMs: 30_000 } },
    });
  }
  if (devices.iridiumPort !== undefined) {
    adapters.push({
      // Stand-alone satellite uplink on a simulated RockBLOCK: a small daily budget, so the
      // demo shows alarms, latest values and history competing for credits within minutes.
      id: 'iridium',
      type: 'iridium',
      port: devices.iridiumPort,
      simulator: { signal: 4, sessionDelayMs: 3000 },
      // Codec table: order is the wire contract with the central side (append only).
      datapoints: [
        { id: 'site.grid.power', decimals: 0 },
        { id: 'site.pv.power', decimals: 0 },
        { id: 'site.outdoor.temperature', decimals: 1 },
        // A charger dropping in is reported at once (alarm priority).
        { id: 'ev.cp1.online', type: 'boolean', alarm: true },
      ],
      sendIntervalMs: 60_000,
      maxBufferedReadings: 1000,
      signalPollMs: 60_000,
      budget: { dailyCredits: 20, alarmReserve: 4 },
    });
  }
  return {
    ...(devices.flowsSecretFile ? { flows: { enabled: true, defaultFlows: true, credentialSecretFile: devices.flowsSecretFile } } : {}),
    gateway: { id: 'demo', name: 'Outpost demo site', timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC' },
    // The Energy page adds up the simulated site's counters (the Modbus meter and inverter are a
    // second, separate site) and prices them with a time-of-use import tariff and a feed-in price.
    site: {
      // The Overview draws the simulated site (its grid meter also measures the demo chargers,
      // found by id); the Modbus inverter is not a second PV source of the same site.
      power: { grid: 'site.grid.power', pv: ['site.pv.power'] },
      energy: { import: ['site.grid.energy_import'], export: ['site.grid.energy_export'], production: ['site.pv.energy'] },
      tariff: {
        currency: 'EUR',
        import: { default: 0.28, periods: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '07:00', to: '22:00', price: 0.34, name: 'peak' }] },
        export: 0.08,
      },
    },
    // Example rules, so the Alarms page and banner have something real to show.
    alarms: {
      rules: [
        { id: 'grid-peak', type: 'threshold', datapoint: 'site.grid.power', above: 12_000, hysteresis: 1000, forS: 30, severity: 'warning' },
        { id: 'site-meter-quiet', type: 'stale', datapoint: 'site.grid.power', afterS: 120, severity: 'alarm' },
        { id: 'adapters-down', type: 'adapter', adapter: '*', forS: 60 },
      ],
    },
    dataDir,
    adapters,
  };
}
