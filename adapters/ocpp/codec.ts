import { createRequire } from 'node:module';
import { createValidator } from 'ocpp-rpc';

/**
 * OCPP 1.6-J payload codec: the JSON schemas (bundled with ocpp-rpc), made lenient where
 * real chargers deviate, plus parsing of the spec's string-typed values.
 */

const require = createRequire(import.meta.url);
const OCPP16_SCHEMAS = require('ocpp-rpc/lib/schemas/ocpp1_6.json') as Array<Record<string, unknown> & { $id: string }>;

/** Actions a charge point initiates (OCPP 1.6 §4): their `.req` comes in, our `.conf` goes out. */
const CHARGE_POINT_ACTIONS = [
  'Authorize',
  'BootNotification',
  'DataTransfer',
  'DiagnosticsStatusNotification',
  'FirmwareStatusNotification',
  'Heartbeat',
  'MeterValues',
  'StartTransaction',
  'StatusNotification',
  'StopTransaction',
] as const;

/**
 * ISO 8601 date-time with an optional offset. Many chargers send `2024-05-01T10:00:00`
 * (no `Z`, no offset) although OCPP-J 1.6 §3.2 asks for UTC with `Z`; such times are read as UTC.
 */
const LENIENT_DATE_TIME = '^\\d{4}-\\d{2}-\\d{2}[Tt ]\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?([Zz]|[+-]\\d{2}(:?\\d{2})?)?$';

function relaxDateTimes(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(relaxDateTimes);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) out[k] = relaxDateTimes(v);
  if (out.format === 'date-time') {
    delete out.format;
    out.pattern = LENIENT_DATE_TIME;
  }
  return out;
}

/**
 * Schemas for strict mode: inbound requests from charge points accept offset-less times;
 * everything we send (our `.conf` answers and our own calls) keeps the strict schema.
 */
function lenientOcpp16Schemas(): Array<Record<string, unknown>> {
  const inbound = new Set<string>(CHARGE_POINT_ACTIONS.map((a) => `urn:${a}.req`));
  return OCPP16_SCHEMAS.map((schema) => (inbound.has(schema.$id) ? (relaxDateTimes(schema) as Record<string, unknown>) : schema));
}

export function createOcpp16Validator(): ReturnType<typeof createValidator> {
  return createValidator('ocpp1.6', lenientOcpp16Schemas());
}

/** Parses an OCPP timestamp; without an offset it is UTC. Returns undefined when unparseable. */
export function parseOcppTime(text: string | undefined): number | undefined {
  if (!text) return undefined;
  const m = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)([Zz]|[+-]\d{2}(?::?\d{2})?)?$/.exec(text.trim());
  if (!m) return undefined;
  let offset = m[3] ?? 'Z';
  if (/^[+-]\d{2}$/.test(offset)) offset += ':00';
  else if (/^[+-]\d{4}$/.test(offset)) offset = `${offset.slice(0, 3)}:${offset.slice(3)}`;
  // JavaScript's Date accepts at most millisecond precision.
  const time = m[2]!.replace(/(\.\d{3})\d+$/, '$1');
  const t = Date.parse(`${m[1]}T${time}${offset.toUpperCase()}`);
  return Number.isFinite(t) ? t : undefined;
}

/** UTC with `Z`, as OCPP-J 1.6 §3.2 wants on output. */
export function formatOcppTime(t: number): string {
  return new Date(t).toISOString();
}

/**
 * SampledValue.value is a string (OCPP 1.6 §7.46). Accepts "12.5", " 12.5 ", and a decimal
 * comma ("12,5", seen on some firmware); anything else is undefined.
 */
export function parseSampledNumber(text: string): number | undefined {
  const s = text.trim().replace(/^(-?\d+),(\d+)$/, '$1.$2');
  if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return undefined;
  const v = Number(s);
  return Number.isFinite(v) ? v : undefined;
}

export type OcppUnit =
  | 'Wh'
  | 'kWh'
  | 'varh'
  | 'kvarh'
  | 'W'
  | 'kW'
  | 'VA'
  | 'kVA'
  | 'var'
  | 'kvar'
  | 'A'
  | 'V'
  | 'K'
  | 'Celcius'
  | 'Celsius'
  | 'Fahrenheit'
  | 'Percent';

/**
 * Normalises to the units Outpost stores: energy in kWh/kvarh, power in W/VA/var,
 * temperature in °C. `Celcius` is the misspelling in the OCPP 1.6 schema itself.
 */
export function normaliseUnit(value: number, unit: OcppUnit): { value: number; unit: string } {
  switch (unit) {
    case 'Wh':
      return { value: value / 1000, unit: 'kWh' };
    case 'varh':
      return { value: value / 1000, unit: 'kvarh' };
    case 'kW':
      return { value: value * 1000, unit: 'W' };
    case 'kVA':
      return { value: value * 1000, unit: 'VA' };
    case 'kvar':
      return { value: value * 1000, unit: 'var' };
    case 'K':
      return { value: value - 273.15, unit: '°C' };
    case 'Celcius':
    case 'Celsius':
      return { value, unit: '°C' };
    case 'Fahrenheit':
      return { value: ((value - 32) * 5) / 9, unit: '°C' };
    case 'Percent':
      return { value, unit: '%' };
    default:
      return { value, unit };
  }
}
