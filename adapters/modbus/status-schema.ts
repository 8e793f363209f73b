import type { StatusSchema } from '../../runtime/adapter.js';
import type { StatusFieldsOf } from '../../runtime/status-schema.js';
import type { DeviceStatus } from './device-options.js';

/** One bus in the adapter's status (index.ts `publishStatus`). */
export interface ModbusBusStatus {
  /** `tcp:<host>:<port>` or `rtu:<path>`. */
  link: string;
  error: string | null;
  transactions: number;
}

/** The status `info` of a `modbus` adapter: its devices and buses by name. */
export interface ModbusStatusInfo {
  devices: Record<string, DeviceStatus>;
  buses: Record<string, ModbusBusStatus>;
}

/** Typed with the status types, so a field added to DeviceStatus without a label fails to compile. */
const deviceFields: StatusFieldsOf<DeviceStatus> = {
  state: { label: 'State', enum: { starting: 'starting', ok: 'answering', failing: 'failing' }, tones: { ok: 'good', failing: 'bad' } },
  model: { label: 'Model' },
  bus: { label: 'Bus', detail: true },
  unit: { label: 'Unit id', format: 'count', help: 'Modbus unit identifier (slave address) on its bus' },
  since: { label: 'State since', format: 'time' },
  lastOkAt: { label: 'Last answer', format: 'time' },
  points: { label: 'Points', format: 'count', detail: true },
  cycles: { label: 'Poll cycles', format: 'count', detail: true },
  requests: { label: 'Requests', format: 'count' },
  requestsPerCycle: { label: 'Requests per cycle', format: 'count', detail: true, help: 'Reads in the last full cycle: coalesced, fewer than one per point' },
  errors: { label: 'Errors', format: 'count', warnAbove: 0 },
  failures: { label: 'Failures in a row', format: 'count', detail: true, warnAbove: 0 },
  retryInMs: { label: 'Next try in', format: 'duration', detail: true },
  code: { label: 'Error code', detail: true },
  lastError: { label: 'Last error', detail: true },
  badPoints: { label: 'Unreadable points', format: 'list', detail: true, help: 'Points the device refuses (exception 1/2/3), published as bad' },
  identity: { label: 'Identity', format: 'map', detail: true, help: 'What the device says it is (SunSpec common model: manufacturer, model, serial …)' },
  droppedBatches: {
    label: 'Dropped batches',
    format: 'count',
    detail: true,
    warnAbove: 0,
    help: 'Reading batches dropped because storage was slower than polling',
  },
};

const busFields: StatusFieldsOf<ModbusBusStatus> = {
  link: { label: 'Link' },
  error: { label: 'Error' },
  transactions: { label: 'Transactions', format: 'count' },
};

const infoFields: StatusFieldsOf<ModbusStatusInfo> = {
  devices: { label: 'Devices', format: 'rows', key: 'Device', fields: deviceFields },
  buses: { label: 'Buses', format: 'rows', key: 'Bus', fields: busFields },
};

export const modbusStatusSchema: StatusSchema = { fields: infoFields };
