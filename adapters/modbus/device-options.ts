// The per-device shapes the adapter's index.ts works with: the options it builds for each
// DevicePoller and the status it reads back for `info.devices`. Apart from device.ts so the
// contract reads without the poll loop around it.
import type { SunSpecDefinitions } from './sunspec.js';
import type { PointDef } from './templates.js';

export interface DeviceOptions {
  /** Adapter-unique device name (status key and lane name). */
  name: string;
  bus: string;
  unit: number;
  /** Datapoint id prefix, e.g. `plant.meter1`. */
  prefix: string;
  model: string;
  interval: number;
  timeoutMs: number;
  maxRegisters: number;
  maxGap: number;
  backoff: { initialMs: number; maxMs: number };
  /** Fixed register map (templates and inline maps); absent for SunSpec discovery. */
  points?: PointDef[];
  sunspec?: SunSpecDefinitions;
  /** Per-point interval overrides by point name. */
  intervals?: Record<string, number>;
  /** Restrict to these point names (after discovery for SunSpec). */
  only?: string[];
}

export type DeviceState = 'starting' | 'ok' | 'failing';

export interface DeviceStatus {
  bus: string;
  unit: number;
  model: string;
  state: DeviceState;
  since: number;
  lastError?: string;
  code?: string;
  failures: number;
  retryInMs?: number;
  lastOkAt?: number;
  cycles: number;
  requests: number;
  errors: number;
  points: number;
  /** Reads in the last full cycle vs one read per point. */
  requestsPerCycle?: number;
  badPoints?: string[];
  identity?: Record<string, string>;
  droppedBatches?: number;
}
