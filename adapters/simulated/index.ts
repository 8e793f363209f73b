import { z } from 'zod';
import { defineAdapter, type AdapterContext } from '../../runtime/adapter.js';
import { hourFormatter, hvacPower, loadPower, localHour, nextCloud, outdoorTemperature, pvPower, type SiteState } from './curves.js';
import { simulatedStatusSchema } from './status-schema.js';

const schema = z.strictObject({
  /** Milliseconds between readings. */
  interval: z.number().int().min(100).max(3_600_000).default(1000),
  /** Datapoint id prefix, e.g. `site` → `site.grid.power`. */
  prefix: z
    .string()
    .regex(/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/)
    .default('site'),
  /**
   * Datapoints (W) whose latest values are part of the site load, so the grid meter measures
   * them as a real one would: the demo's chargers (`ev.cp1.1.power`), which load management
   * expects to find in the grid power (`includesChargers`).
   */
  addPower: z
    .array(z.string().regex(/^[a-z0-9_.-]{1,128}$/))
    .max(100)
    .default([]),
});

/** Starting values of the simulated counters on a fresh data directory (kWh). */
const INITIAL_KWH = { import: 12_000, export: 3_000, pv: 25_000 };

/**
 * A simulated site: grid meter (power, import and export energy counters), load, PV (power
 * and a production counter), outdoor temperature, and an HVAC unit whose setpoint and enable
 * are actuators. The counters integrate the published powers, so the Energy page's balance
 * (import + production − export = load) holds.
 */
export default defineAdapter({
  type: 'simulated',
  description: 'Simulated site meter, PV, temperature and HVAC, for the demo and tests',
  statusSchema: simulatedStatusSchema,
  schema,
  create(options) {
    let timer: NodeJS.Timeout | undefined;
    let ticking = false;
    const ids = (p: string) => ({
      grid: `${p}.grid.power`,
      energy: `${p}.grid.energy_import`,
      energyExport: `${p}.grid.energy_export`,
      pvEnergy: `${p}.pv.energy`,
      load: `${p}.load.power`,
      pv: `${p}.pv.power`,
      outdoor: `${p}.outdoor.temperature`,
      setpoint: `${p}.hvac.setpoint`,
      enabled: `${p}.hvac.enabled`,
    });
    const id = ids(options.prefix);

    return {
      async start(ctx: AdapterContext) {
        const state: SiteState = { cloud: 0.9, hvacSetpoint: 21, hvacEnabled: true };
        const fmt = hourFormatter(ctx.gateway.timezone);
        const model = { adapter: ctx.id };
        await ctx.datapoints.register([
          { id: id.grid, type: 'number', unit: 'W', description: 'Grid connection power (import positive, export negative)', meta: model },
          { id: id.energy, type: 'number', unit: 'kWh', description: 'Grid import energy counter', meta: { ...model, counter: true, energy: 'import' } },
          { id: id.energyExport, type: 'number', unit: 'kWh', description: 'Grid export energy counter', meta: { ...model, counter: true, energy: 'export' } },
          {
            id: id.pvEnergy,
            type: 'number',
            unit: 'kWh',
            description: 'PV production energy counter',
            meta: { ...model, counter: true, energy: 'production' },
          },
          { id: id.load, type: 'number', unit: 'W', description: 'Site load power' },
          { id: id.pv, type: 'number', unit: 'W', description: 'PV inverter AC power' },
          { id: id.outdoor, type: 'number', unit: '°C', description: 'Outdoor air temperature' },
        ]);
        await ctx.datapoints.register(
          { id: id.setpoint, kind: 'actuator', type: 'number', unit: '°C', min: 16, max: 26, description: 'HVAC room temperature setpoint' },
          {
            onSet: async ({ v }) => {
              state.hvacSetpoint = v as number;
              await ctx.bus.publishValue(id.setpoint, state.hvacSetpoint);
            },
          },
        );
        await ctx.datapoints.register(
          { id: id.enabled, kind: 'actuator', type: 'boolean', description: 'HVAC unit enabled' },
          {
            onSet: async ({ v }) => {
              state.hvacEnabled = v as boolean;
              await ctx.bus.publishValue(id.enabled, state.hvacEnabled);
            },
          },
        );
        // Continue the counter and actuator states from what is stored, so a restart looks like a real meter.
        const stored = (dp: string, initial: number) => {
          const v = ctx.store.latest(dp)?.v;
          return typeof v === 'number' && Number.isFinite(v) ? v : initial;
        };
        let energy = stored(id.energy, INITIAL_KWH.import);
        let exported = stored(id.energyExport, INITIAL_KWH.export);
        let produced = stored(id.pvEnergy, INITIAL_KWH.pv);
        const storedSetpoint = ctx.store.latest(id.setpoint)?.v;
        if (typeof storedSetpoint === 'number') state.hvacSetpoint = storedSetpoint;
        const storedEnabled = ctx.store.latest(id.enabled)?.v;
        if (typeof storedEnabled === 'boolean') state.hvacEnabled = storedEnabled;
        await ctx.bus.publishValues([
          { id: id.setpoint, v: state.hvacSetpoint, t: ctx.clock.now() },
          { id: id.enabled, v: state.hvacEnabled, t: ctx.clock.now() },
        ]);

        let last = ctx.clock.now();
        const tick = async (): Promise<void> => {
          const t = ctx.clock.now();
          const dtMs = Math.max(0, t - last);
          last = t;
          const hour = localHour(t, fmt);
          state.cloud = nextCloud(state.cloud, Math.random);
          const outdoor = outdoorTemperature(hour, (Math.random() - 0.5) * 0.3);
          const r = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;
          // Rounded to whole watts first, so grid = load - pv holds exactly in the published values.
          const pv = r(pvPower(hour, state.cloud), 0);
          let measured = 0;
          for (const extra of options.addPower) {
            const v = ctx.store.latest(extra)?.v;
            if (typeof v === 'number' && Number.isFinite(v)) measured += v;
          }
          const load = r(loadPower(hour, hvacPower(state, outdoor), (Math.random() - 0.5) * 600) + measured, 0);
          const grid = load - pv;
          // W × ms → kWh: the power just published, held since the last tick.
          const kwh = (w: number) => (w * dtMs) / 3_600_000 / 1000;
          energy += kwh(Math.max(0, grid));
          exported += kwh(Math.max(0, -grid));
          produced += kwh(pv);
          await ctx.bus.publishValues([
            { id: id.grid, v: grid, t },
            { id: id.load, v: load, t },
            { id: id.pv, v: pv, t },
            { id: id.energy, v: r(energy, 4), t },
            { id: id.energyExport, v: r(exported, 4), t },
            { id: id.pvEnergy, v: r(produced, 4), t },
            { id: id.outdoor, v: r(outdoor, 2), t },
          ]);
        };
        timer = setInterval(() => {
          if (ticking || ctx.signal.aborted) return; // never pile up ticks behind a slow disk
          ticking = true;
          tick()
            .catch((err: Error) => ctx.log.warn({ err: err.message }, 'simulated reading not stored'))
            .finally(() => (ticking = false));
        }, options.interval);
        await tick();
      },
      async stop() {
        if (timer) clearInterval(timer);
        timer = undefined;
      },
    };
  },
});
