// The time range of a datapoint chart: presets relative to now, or a custom from/to typed in
// the browser's local time; the series overlaid; all of it kept in the page's hash.

/** Presets, relative to now: [name, span ms]. */
export const RANGES = [
  ['1h', 3600e3],
  ['6h', 6 * 3600e3],
  ['24h', 86400e3],
  ['7d', 7 * 86400e3],
  ['30d', 30 * 86400e3],
];
export const DEFAULT_RANGE = '24h';
export const AGGREGATIONS = ['raw', 'avg', 'min', 'max'];
/**
 * A custom range spans at most a year (leap day included): enough to look at a season or a
 * year's ends side by side, and still one request of at most 366 daily rollups per series.
 */
export const MAX_CUSTOM_SPAN_MS = 366 * 86400e3;
/** Readings before 2000 are refused by the gateway (core/datapoint.ts validateValue). */
export const EARLIEST_MS = Date.UTC(2000, 0, 1);
/** Series on one chart at most (the page's datapoint included): one colour each. */
export const MAX_SERIES = 6;
const DATAPOINT_ID = /^[a-z0-9_.-]{1,128}$/;

/** A date-time as a `datetime-local` input wants it: local time, minutes. */
export function toLocalInput(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** The epoch ms of a `datetime-local` value (local time: ECMA-262 reads a date-time without offset as local), or NaN. */
export function fromLocalInput(value) {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?$/.test(value) ? new Date(value).getTime() : Number.NaN;
}

/** An instant for the hash: ISO 8601 in UTC, without zero seconds, so a link means the same instant in any zone. */
export function hashTime(ms) {
  return new Date(ms)
    .toISOString()
    .replace(/\.000Z$/, 'Z')
    .replace(/:00Z$/, 'Z');
}

/** An instant from the hash: ISO 8601 (with Z or an offset) or epoch ms; NaN when neither. */
export function parseTime(raw) {
  if (raw === null || raw === undefined || raw === '') return Number.NaN;
  if (/^\d{10,14}$/.test(raw)) return Number(raw);
  return /^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:?\d{2})$/.test(raw) ? Date.parse(raw) : Number.NaN;
}

/** Why a custom range cannot be shown, or undefined when it can. */
export function rangeProblem(from, to) {
  if (!Number.isFinite(from)) return 'Enter the start ("From") as a date and time.';
  if (!Number.isFinite(to)) return 'Enter the end ("To") as a date and time.';
  if (from < EARLIEST_MS) return 'The start must be in the year 2000 or later (the gateway keeps no older readings).';
  if (to <= from) return '"To" must be after "From".';
  if (to - from > MAX_CUSTOM_SPAN_MS)
    return `A custom range spans at most ${MAX_CUSTOM_SPAN_MS / 86400e3} days; this one spans ${Math.ceil((to - from) / 86400e3)}.`;
  return undefined;
}

/**
 * The chart's state from the hash's query (`#/datapoints/<id>?…`): `range=6h` (a preset) or
 * `from=…&to=…` (custom), `agg=avg|min|max`, `with=a,b` (overlaid datapoints). Anything
 * unreadable falls back to the default with a note, so an old or mangled link still opens.
 */
export function readChartQuery(query) {
  const q = new URLSearchParams(query);
  const notes = [];
  const state = { preset: DEFAULT_RANGE, from: undefined, to: undefined, agg: 'raw', with: [] };
  const preset = q.get('range');
  if (preset !== null) {
    if (RANGES.some(([name]) => name === preset)) state.preset = preset;
    else notes.push(`Unknown range "${preset}": showing ${DEFAULT_RANGE}.`);
  }
  if (q.has('from') || q.has('to')) {
    const from = parseTime(q.get('from'));
    const to = parseTime(q.get('to'));
    const problem = rangeProblem(from, to);
    if (problem) notes.push(`The link's range is not shown: ${problem}`);
    else Object.assign(state, { preset: undefined, from, to });
  }
  const agg = q.get('agg');
  if (agg !== null) {
    if (AGGREGATIONS.includes(agg)) state.agg = agg;
    else notes.push(`Unknown aggregation "${agg}": showing raw.`);
  }
  for (const id of (q.get('with') ?? '').split(',').filter(Boolean)) {
    if (!DATAPOINT_ID.test(id)) notes.push(`"${id}" is not a datapoint id: left out.`);
    else if (!state.with.includes(id)) state.with.push(id);
  }
  return { state, notes };
}

/** The hash query of a chart state (empty for the default: old links stay what they were). */
export function chartQuery(state) {
  const parts = [];
  if (state.preset === undefined) parts.push(`from=${hashTime(state.from)}`, `to=${hashTime(state.to)}`);
  else if (state.preset !== DEFAULT_RANGE) parts.push(`range=${state.preset}`);
  if (state.agg !== 'raw') parts.push(`agg=${state.agg}`);
  if (state.with.length) parts.push(`with=${state.with.join(',')}`);
  return parts.join('&');
}

/** The time window a state shows now: a preset ends now, a custom range is fixed. */
export function windowOf(state, now = Date.now()) {
  if (state.preset === undefined) return { from: state.from, to: state.to, live: state.to >= now };
  const span = RANGES.find(([name]) => name === state.preset)[1];
  return { from: now - span, to: now, live: true };
}
