// Values of one datapoint over a range: raw readings newest first, rollups, the chart's choice between them.
import { get, ApiError } from './api.js';

/** Raw readings a chart asks for at most; more in the range and it draws rollups instead. */
export const CHART_RAW_LIMIT = 10_000;
/** Raw readings a CSV download holds at most (the API's cap): the newest of the range. */
export const CSV_RAW_LIMIT = 100_000;
const INTERVALS = [
  ['1m', 60e3],
  ['15m', 900e3],
  ['1h', 3600e3],
  ['1d', 86400e3],
];

/**
 * The values URL of a datapoint with its query: the gateway's own. Every loader takes another
 * as `url` (Outpost Central serves a gateway's values under /api/gateways/<gateway>/…).
 */
const valuesUrl = (id, query) => `/api/datapoints/${encodeURIComponent(id)}/values?${new URLSearchParams(query)}`;

/** Rollups of a range, or undefined when the gateway does not serve them (a 4xx). */
async function rollups(id, from, to, interval, agg, url = valuesUrl) {
  try {
    const r = await get(url(id, { from, to, interval, agg }));
    if (r.interval !== undefined) return { ...r, interval };
  } catch (err) {
    if (!(err instanceof ApiError) || err.status >= 500) throw err;
  }
  return undefined;
}

/**
 * The newest raw readings of a range (at most `limit`), oldest first: asked newest first,
 * so a range holding more than `limit` readings loses its oldest part, never its newest.
 */
export async function newestRaw(id, from, to, limit, url = valuesUrl) {
  const r = await get(url(id, { from, to, limit, order: 'desc' }));
  return { ...r, values: r.values.reverse() };
}

/**
 * Values of one datapoint for a chart. An aggregation reads the rollups (raw when they are
 * not served). Raw reads the newest readings; when the range holds more than a chart draws,
 * a number datapoint is drawn from 'avg' rollups of the finest interval giving at most
 * ~2,000 points, the still-filling last bucket drawn from its raw readings (`auto` says
 * so), else the newest readings only (`truncated`).
 */
export async function loadValues(id, from, to, agg, { numeric = true, url = valuesUrl } = {}) {
  const span = to - from;
  if (agg && agg !== 'raw') {
    const interval = span <= 2 * 3600e3 ? '1m' : span <= 2 * 86400e3 ? '15m' : span <= 14 * 86400e3 ? '1h' : '1d';
    const r = await rollups(id, from, to, interval, agg, url);
    if (r) return r;
  }
  const raw = await newestRaw(id, from, to, CHART_RAW_LIMIT, url);
  if (!raw.truncated || !numeric) return raw;
  const [interval] = INTERVALS.find(([, ms]) => span / ms <= 2000) ?? INTERVALS[INTERVALS.length - 1];
  const r = await rollups(id, from, to, interval, 'avg', url);
  if (!r) return raw;
  // The last bucket is still filling: its raw readings (already read, the newest) end the
  // line, so the chart reaches the newest reading rather than the last bucket's start
  // (`tail`: how many of the values are those readings).
  const lastStart = r.values.length ? r.values[r.values.length - 1].t : from;
  if (!raw.values.length || raw.values[0].t > lastStart) return { ...r, auto: true, tail: 0 };
  const tail = raw.values.filter((p) => p.t >= lastStart);
  return { ...r, values: [...r.values.slice(0, -1), ...tail], auto: true, tail: tail.length };
}

/**
 * As loadValues, plus the min–max band when the line is drawn from 'avg' rollups (picked,
 * or automatic for a long raw range): `band: { min, max }`, the same buckets. The rollup
 * route answers one aggregate per request, so a band costs two more requests over the same
 * buckets (≤ ~2,000 in automatic mode), made in parallel.
 */
export async function loadSeries(id, from, to, agg, { numeric = true, url = valuesUrl } = {}) {
  const data = await loadValues(id, from, to, agg, { numeric, url });
  if (!numeric || !data.interval || (data.agg ?? 'avg') !== 'avg') return data;
  const [min, max] = await Promise.all([rollups(id, from, to, data.interval, 'min', url), rollups(id, from, to, data.interval, 'max', url)]);
  return min && max ? { ...data, band: { min: min.values, max: max.values } } : data;
}

/**
 * CSV lines of several series on one time column: `columns` are ascending [{t, v}] arrays;
 * one row per distinct timestamp (a k-way merge, so nothing but the lines is held), each
 * series' value in its column, empty where it has no reading at that instant.
 */
export function mergedCsvLines(header, columns) {
  const lines = [header.join(',')];
  const at = columns.map(() => 0);
  for (;;) {
    let t = Infinity;
    for (let c = 0; c < columns.length; c++) if (at[c] < columns[c].length && columns[c][at[c]].t < t) t = columns[c][at[c]].t;
    if (t === Infinity) return lines;
    const cells = [new Date(t).toISOString(), t];
    for (let c = 0; c < columns.length; c++) {
      const p = columns[c][at[c]];
      if (p && p.t === t) {
        cells.push(JSON.stringify(p.v ?? ''));
        at[c]++;
      } else cells.push('');
    }
    lines.push(cells.join(','));
  }
}
