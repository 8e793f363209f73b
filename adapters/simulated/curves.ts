/**
 * Plausible site curves for the demo: an office-like load, rooftop PV with passing
 * clouds, outdoor temperature, and an HVAC load that follows its setpoint.
 * Pure functions of local time plus a small random state, so tests can check shapes.
 */
export interface SiteState {
  cloud: number;
  hvacSetpoint: number;
  hvacEnabled: boolean;
}

/** Hour of day (fractional) in a time zone. */
export function localHour(t: number, formatter: Intl.DateTimeFormat): number {
  const parts = formatter.formatToParts(new Date(t));
  const h = Number(parts.find((p) => p.type === 'hour')?.value ?? 0) % 24;
  const m = Number(parts.find((p) => p.type === 'minute')?.value ?? 0);
  return h + m / 60;
}

export function hourFormatter(timeZone: string): Intl.DateTimeFormat {
  return new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
}

/** Smooth 0..1 bump for business hours, 07:00–19:00. */
export function occupancy(hour: number): number {
  if (hour < 6 || hour > 20) return 0;
  return Math.max(0, Math.sin((Math.PI * (hour - 6)) / 14)) ** 0.7;
}

export function outdoorTemperature(hour: number, noise: number): number {
  return 8 + 6 * Math.sin((2 * Math.PI * (hour - 9)) / 24) + noise;
}

export function pvPower(hour: number, cloud: number, peakW = 12_000): number {
  if (hour <= 6 || hour >= 20) return 0;
  return peakW * Math.sin((Math.PI * (hour - 6)) / 14) * cloud;
}

export function hvacPower(state: SiteState, outdoor: number): number {
  if (!state.hvacEnabled) return 0;
  return Math.max(0, 800 + 350 * (state.hvacSetpoint - outdoor));
}

export function loadPower(hour: number, hvac: number, noise: number): number {
  return 3_000 + 7_000 * occupancy(hour) + hvac + noise;
}

/** Cloud cover as a bounded random walk between 0.35 and 1. */
export function nextCloud(cloud: number, random: () => number): number {
  return Math.min(1, Math.max(0.35, cloud + (random() - 0.5) * 0.08));
}
