import { readSample, type SampledValueIn } from './mapping.js';
import type { MeterValueRecord } from './sessions.js';

export interface SessionSeries {
  /** Active power import (W) per meter value record: the total, else the sum of the phases. */
  power: Array<{ t: number; v: number }>;
  /** Energy charged since the session started (kWh), from the energy register. */
  energyKwh: Array<{ t: number; v: number }>;
}

/**
 * A session's power and energy over time from its raw meter values (OCPP 1.6 §7.31 sampled
 * values, read with the same unit rules as the datapoints), for the dashboard's session chart.
 */
export function sessionSeries(records: readonly MeterValueRecord[], meterStartWh: number, energyUnit: 'Wh' | 'kWh'): SessionSeries {
  const power: SessionSeries['power'] = [];
  const energyKwh: SessionSeries['energyKwh'] = [];
  for (const record of [...records].sort((a, b) => a.t - b.t)) {
    let total: number | undefined;
    let phases: number | undefined;
    let energy: number | undefined;
    for (const sample of record.sampledValue) {
      const reading = readSample(sample as SampledValueIn, energyUnit);
      if ('skip' in reading) continue;
      if (reading.suffix === 'power') total = reading.value;
      else if (/^power_l[123]$/.test(reading.suffix)) phases = (phases ?? 0) + reading.value;
      else if (reading.suffix === 'energy') energy = reading.value;
    }
    const w = total ?? phases;
    if (w !== undefined) power.push({ t: record.t, v: Math.round(w * 10) / 10 });
    if (energy !== undefined) energyKwh.push({ t: record.t, v: Math.max(0, Math.round(energy * 1000 - meterStartWh)) / 1000 });
  }
  return { power, energyKwh };
}
