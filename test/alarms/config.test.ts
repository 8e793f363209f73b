// `alarms:` in the configuration: schema errors name the path and what is expected; the checks
// start and `outpost check` run refuse an adapter rule on no adapter and a rule on an alarm
// datapoint, and warn (not refuse) about a glob matching no datapoint defined in the file.
import t from 'tap';
import { validateConfig } from '../../runtime/config/load.js';
import { checkConfig } from '../../runtime/config/check.js';
import { adapterTypes } from '../../adapters/index.js';
import { isOutpostError } from '../../core/errors.js';

function refusal(raw: Record<string, unknown>): string {
  try {
    validateConfig(raw, adapterTypes);
  } catch (err) {
    if (isOutpostError(err, 'CONFIG_INVALID')) return err.message;
    throw err;
  }
  throw new Error('the configuration was accepted');
}

t.test('schema errors are clear', async (t) => {
  t.match(
    refusal({ alarms: { rules: [{ id: 'a', type: 'treshold', datapoint: 'x' }] } }),
    /alarms\.rules\.0\.type: expected "type": threshold, stale or adapter/,
  );
  t.match(
    refusal({ alarms: { rules: [{ id: 'a', type: 'threshold', datapoint: 'x' }] } }),
    /alarms\.rules\.0\.above: a threshold rule needs "above", "below" or both/,
  );
  t.match(refusal({ alarms: { rules: [{ id: 'Hot Boiler', type: 'stale', datapoint: 'x', afterS: 60 }] } }), /alarms\.rules\.0\.id: expected an alarm id/);
  t.match(refusal({ alarms: { rules: [{ id: 'a', type: 'stale', datapoint: 'x' }] } }), /alarms\.rules\.0\.afterS/);
  t.match(refusal({ alarms: { rules: [{ id: 'a', type: 'adapter', adapter: 'm', forS: 5, severity: 'critical' }] } }), /alarms\.rules\.0\.severity/);
  t.match(refusal({ alarms: { rules: [{ id: 'a', type: 'stale', datapoint: 'x', afterS: 9, hysteresis: 1 }] } }), /alarms\.rules\.0\.hysteresis: unknown key/);
  t.match(
    refusal({
      alarms: {
        rules: [
          { id: 'a', type: 'stale', datapoint: 'x', afterS: 9 },
          { id: 'a', type: 'stale', datapoint: 'y', afterS: 9 },
        ],
      },
    }),
    /alarms\.rules\.1\.id: rule id "a" is also rule 0/,
  );
  const ok = validateConfig({ alarms: { rules: [{ id: 'hot', type: 'threshold', datapoint: 'b.t', above: 1 }] } }, adapterTypes);
  t.match(ok.alarms.rules[0], { severity: 'alarm', hysteresis: 0, forS: 0 }, 'defaults');
  t.same(ok.alarms.events, { maxFileBytes: 1024 * 1024, keepFiles: 3 });
});

t.test('cross-references: errors and warnings', async (t) => {
  const config = validateConfig(
    {
      datapoints: [{ id: 'plant.boiler.temp' }],
      adapters: [
        { id: 'sim', type: 'simulated' },
        { id: 'old', type: 'simulated', enabled: false },
      ],
      alarms: {
        rules: [
          { id: 'hot', type: 'threshold', datapoint: 'plant.*.temp', above: 90 },
          { id: 'cold', type: 'threshold', datapoint: 'yard.*.temp', below: 0 },
          { id: 'meter', type: 'adapter', adapter: 'meterz' },
          { id: 'old', type: 'adapter', adapter: 'old' },
          { id: 'any', type: 'adapter', adapter: '*' },
          { id: 'loop', type: 'stale', datapoint: 'alarm.hot', afterS: 10 },
          { id: 'device', type: 'stale', datapoint: 'sim.grid.power', afterS: 10 },
        ],
      },
    },
    adapterTypes,
  );
  const warnings: Array<{ path: string; message: string }> = [];
  const errors = await checkConfig(config, adapterTypes, { warnings });
  t.same(
    errors.filter((e) => e.path.startsWith('alarms')),
    [
      { path: 'alarms.rules.2.adapter', message: 'no adapter "meterz" (adapters: sim, old; * for any)' },
      { path: 'alarms.rules.5.datapoint', message: "alarm.hot is an alarm datapoint: rules do not watch alarms (an alarm's state is not a reading)" },
    ],
    'refused: an adapter that is not configured, a rule on an alarm',
  );
  t.same(
    warnings.map((w) => w.path),
    ['alarms.rules.1.datapoint', 'alarms.rules.3.adapter'],
    'warned: a glob matching nothing defined here, a disabled adapter; not a literal id (an adapter may define it)',
  );
  t.match(warnings[0]!.message, /yard\.\*\.temp matches none of the datapoints defined here/);
});
