import { formatOcppTime } from './codec.js';

/**
 * OCPP 1.6 charging profiles (§3.13 Smart Charging, §7.8–7.13). Load management sends a
 * TxProfile per running transaction; operator setpoints without a transaction go as a
 * TxDefaultProfile on the connector; a whole-charger cap is a ChargePointMaxProfile on connector 0.
 * Profile ids are fixed per purpose and connector so a new profile replaces the old one
 * (§3.13.2: same id, or same stackLevel and purpose, replaces).
 */

export interface ChargingSchedulePeriod {
  startPeriod: number;
  limit: number;
  numberPhases?: number;
}

export interface ChargingProfile {
  chargingProfileId: number;
  transactionId?: number;
  stackLevel: number;
  chargingProfilePurpose: 'ChargePointMaxProfile' | 'TxDefaultProfile' | 'TxProfile';
  chargingProfileKind: 'Absolute' | 'Recurring' | 'Relative';
  chargingSchedule: {
    chargingRateUnit: 'A' | 'W';
    chargingSchedulePeriod: ChargingSchedulePeriod[];
    startSchedule?: string;
    minChargingRate?: number;
  };
}

/** 0.1 resolution, rounded down: a limit is a ceiling and must not grow by rounding. */
function roundLimit(value: number): number {
  return Math.floor(value * 10 + 1e-9) / 10;
}

const PROFILE_ID_BASE = { ChargePointMaxProfile: 1000, TxDefaultProfile: 2000, TxProfile: 3000 } as const;

function profileId(purpose: ChargingProfile['chargingProfilePurpose'], connectorId: number): number {
  return PROFILE_ID_BASE[purpose] + connectorId;
}

/** Converts a current per phase to the unit the charger takes (W profiles: P = U × I × phases). */
export function limitInUnit(currentA: number, unit: 'A' | 'W', phases: number, voltage: number): number {
  return unit === 'A' ? roundLimit(currentA) : roundLimit(currentA * voltage * phases);
}

export function txProfile(opts: {
  connectorId: number;
  transactionId: number;
  limit: number;
  unit: 'A' | 'W';
  phases: number;
  stackLevel: number;
  now: number;
}): ChargingProfile {
  return {
    chargingProfileId: profileId('TxProfile', opts.connectorId),
    transactionId: opts.transactionId,
    stackLevel: opts.stackLevel,
    chargingProfilePurpose: 'TxProfile',
    chargingProfileKind: 'Absolute',
    chargingSchedule: {
      chargingRateUnit: opts.unit,
      startSchedule: formatOcppTime(opts.now),
      chargingSchedulePeriod: [{ startPeriod: 0, limit: roundLimit(opts.limit), numberPhases: opts.phases }],
    },
  };
}

export function txDefaultProfile(opts: { connectorId: number; limit: number; unit: 'A' | 'W'; phases: number; stackLevel: number }): ChargingProfile {
  return {
    chargingProfileId: profileId('TxDefaultProfile', opts.connectorId),
    stackLevel: opts.stackLevel,
    chargingProfilePurpose: 'TxDefaultProfile',
    // Relative: the schedule starts with each transaction (§7.11 ChargingProfileKindType).
    chargingProfileKind: 'Relative',
    chargingSchedule: {
      chargingRateUnit: opts.unit,
      chargingSchedulePeriod: [{ startPeriod: 0, limit: roundLimit(opts.limit), numberPhases: opts.phases }],
    },
  };
}

export function chargePointMaxProfile(opts: { limit: number; unit: 'A' | 'W'; phases: number }): ChargingProfile {
  return {
    chargingProfileId: profileId('ChargePointMaxProfile', 0),
    stackLevel: 0,
    chargingProfilePurpose: 'ChargePointMaxProfile',
    chargingProfileKind: 'Relative',
    chargingSchedule: {
      chargingRateUnit: opts.unit,
      chargingSchedulePeriod: [{ startPeriod: 0, limit: roundLimit(opts.limit), numberPhases: opts.phases }],
    },
  };
}
