import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { z } from 'zod';
import { parseDeviceData, readDeviceData } from '../../runtime/device-data.js';
import { OutpostError } from '../../core/errors.js';

/**
 * Charger profiles: what differs between charger models (phases, current range, the unit
 * their charging profiles take, meter value quirks, configuration keys to set after boot).
 * They are data (`chargers/*.yaml`), validated at load; `test/adapters/ocpp/chargers.test.ts`
 * loads every one.
 */
export const ChargerProfileSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9-]+$/),
    description: z.string().min(1),
    /** Regular expressions against BootNotification's chargePointVendor / chargePointModel. */
    match: z
      .strictObject({ vendor: z.string().min(1), model: z.string().min(1).optional() })
      .refine((m) => isRegex(m.vendor) && (m.model === undefined || isRegex(m.model)), 'match.vendor/model must be valid regular expressions')
      .optional(),
    phases: z.union([z.literal(1), z.literal(3)]),
    /**
     * NumberOfConnectors (OCPP 1.6 §9.1.21): connector ids 1..n are the charger's outlets, 0 the
     * charger as a whole. Messages naming another connector are refused, so a charger cannot
     * make up datapoints.
     */
    connectors: z.number().int().min(1).max(32).default(1),
    maxCurrentA: z.number().min(6).max(63),
    /** IEC 61851-1: below 6 A a vehicle may not charge, so such sessions are paused instead. */
    minCurrentA: z.number().min(6).max(63).default(6),
    chargingRateUnit: z.enum(['A', 'W']).default('A'),
    stackLevel: z.number().int().min(0).max(100).default(1),
    /** Unit assumed for energy samples that come without one (spec default is Wh, §7.31). */
    defaultEnergyUnit: z.enum(['Wh', 'kWh']).default('Wh'),
    /** ChangeConfiguration keys sent after each BootNotification. */
    configuration: z.record(z.string().max(50), z.string().max(500)).default({}),
  })
  .refine((p) => p.minCurrentA <= p.maxCurrentA, 'minCurrentA must not exceed maxCurrentA');

export type ChargerProfile = z.output<typeof ChargerProfileSchema>;

function isRegex(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}

export const CHARGERS_DIR = fileURLToPath(new URL('./chargers/', import.meta.url));

/** Parses and validates one profile file; errors name the file and the path inside it. */
export function parseChargerProfile(text: string, file: string): ChargerProfile {
  return parseDeviceData(text, file, ChargerProfileSchema, 'CONFIG_INVALID').data;
}

/** Loads every `*.yaml` in a directory; file name (without extension) must equal `name`. */
export function loadChargerProfiles(dir: string = CHARGERS_DIR): Map<string, ChargerProfile> {
  const profiles = new Map<string, ChargerProfile>();
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const profile = readDeviceData(join(dir, file), file, ChargerProfileSchema, 'CONFIG_INVALID').data;
    if (file !== `${profile.name}.yaml`) throw new OutpostError('CONFIG_INVALID', `${file}: name "${profile.name}" must match the file name`);
    profiles.set(profile.name, profile);
  }
  if (!profiles.has('generic')) throw new OutpostError('CONFIG_INVALID', `${dir}: the "generic" profile is missing`);
  return profiles;
}

/** Picks a profile: the configured one, else the first whose `match` fits the boot data, else generic. */
export function matchChargerProfile(
  profiles: ReadonlyMap<string, ChargerProfile>,
  boot: { chargePointVendor?: string; chargePointModel?: string } | undefined,
): ChargerProfile {
  if (boot) {
    for (const p of profiles.values()) {
      if (!p.match) continue;
      if (!new RegExp(p.match.vendor).test(boot.chargePointVendor ?? '')) continue;
      if (p.match.model && !new RegExp(p.match.model).test(boot.chargePointModel ?? '')) continue;
      return p;
    }
  }
  return profiles.get('generic')!;
}
