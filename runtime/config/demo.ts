/** The built-in demo site: `outpost demo` (and `npm start` with no config). */
export function demoConfig(dataDir = './data'): Record<string, unknown> {
  return {
    gateway: { id: 'demo', name: 'Outpost demo site', timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC' },
    dataDir,
    adapters: [
      { id: 'site', type: 'simulated', interval: 1000, prefix: 'site' },
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
    ],
  };
}
