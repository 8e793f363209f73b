/** The built-in demo site: `outpost demo` (and `npm start` with no config). */
export function demoConfig(dataDir = './data'): Record<string, unknown> {
  return {
    gateway: { id: 'demo', name: 'Outpost demo site', timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC' },
    dataDir,
    adapters: [
      { id: 'site', type: 'simulated', interval: 1000, prefix: 'site' },
      { id: 'plugs', type: 'mqtt', mappings: [{ topic: 'tele/+/SENSOR', datapoint: 'plug.{1}.power', path: 'ENERGY.Power', unit: 'W' }] },
    ],
  };
}
