/**
 * The shapes of the charge point simulator (simulator.ts): its options, its connectors, the
 * charging profiles it holds and its offline queue. Kept apart so the simulator and its
 * call handlers (sim-handlers.ts) share them; simulator.ts re-exports the public ones.
 */
import type { CarFollower, CarResponse } from './sim-car.js';

export interface SimulatorOptions {
  /** e.g. `ws://127.0.0.1:8080/ocpp` (the identity is appended). */
  endpoint: string;
  identity: string;
  password?: string;
  connectors?: number;
  vendor?: string;
  model?: string;
  phases?: 1 | 3;
  maxCurrentA?: number;
  voltage?: number;
  /** Automatic meter values every this many ms; 0 = only when `tick` is called. */
  meterIntervalMs?: number;
  /** Battery size for SoC. */
  batteryKwh?: number;
  /** Send timestamps without offset (a common firmware quirk). */
  timestampsWithoutOffset?: boolean;
  callTimeoutMs?: number;
  /** Messages kept while offline; older ones are dropped first. */
  maxQueued?: number;
  /**
   * A car that follows a new limit after a delay and ramps (sim-car.ts), in real time; the draw
   * is then `drawNow()` at any moment, not only at meter values. Omitted: the car takes the new
   * limit at the next meter value.
   */
  car?: CarResponse;
}

export interface SimConnector {
  id: number;
  status: string;
  transactionId?: number;
  idTag?: string;
  energyWh: number;
  /** Limit from the charging profile in force (A per phase). */
  limitA: number;
  /** What the car can take (A per phase). */
  carMaxA: number;
  socPercent: number;
  drawA: number;
  available: boolean;
  /** The car's response in time (with the `car` option), for the session running. */
  car?: CarFollower;
}

export interface InstalledProfile {
  connectorId: number;
  limitA: number;
  profile: {
    chargingProfileId: number;
    transactionId?: number;
    stackLevel: number;
    chargingProfilePurpose: string;
    chargingSchedule: { chargingRateUnit: string; chargingSchedulePeriod: Array<{ limit: number }> };
  };
}

export interface QueuedCall {
  action: string;
  params: Record<string, unknown>;
  resolve: (v: Record<string, unknown>) => void;
  reject: (err: unknown) => void;
}
