// An adapter's status `info` as a person reads it, from its type's status schema
// (runtime/adapter.ts StatusSchema, served by GET /api/adapters/types): labelled values with
// units, coded values as words, objects as labelled lines, lists of devices as small tables.
// A field the schema does not know is still shown, by its key, and never as a JSON blob.
import { h, formatTime, formatDuration } from './dom.js';

/** Rows shown of one table: a status with thousands of entries must not build thousands of rows. */
const MAX_ROWS = 50;
/** Nesting shown as lines and tables; deeper objects become one line of `key: value`. */
const MAX_DEPTH = 2;

export function formatBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toLocaleString(undefined, { maximumFractionDigits: i ? 1 : 0 })} ${units[i]}`;
}

/** Milliseconds as a person says them: 850 ms, 4.2 s, 3 min 20 s, 2 h 5 min, 3 d 4 h. */
export function formatMs(ms) {
  if (!Number.isFinite(ms)) return '—';
  if (Math.abs(ms) < 1000) return `${Math.round(ms)} ms`;
  if (Math.abs(ms) < 60_000) return `${(ms / 1000).toLocaleString(undefined, { maximumFractionDigits: 1 })} s`;
  return formatDuration(ms / 1000);
}

/** `lastImport` → "Last import", `dst_skipped_rows` → "Dst skipped rows". */
export function humanKey(key) {
  const words = String(key)
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/[_.-]+/g, ' ')
    .trim()
    .toLowerCase();
  return words ? words[0].toUpperCase() + words.slice(1) : String(key);
}

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const isScalar = (v) => v === null || v === undefined || ['string', 'number', 'boolean'].includes(typeof v);
const isEmpty = (v) => v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0);

function numberText(v, digits = 2) {
  return v.toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** The word for a coded value, if the field has one. */
function word(field, v) {
  const w = field?.enum?.[String(v)];
  return w === undefined ? undefined : w;
}

/** One scalar as text, by the field's format, enumeration and unit. */
function scalarText(field, v) {
  if (v === null || v === undefined || v === '') return '—';
  const named = word(field, v);
  if (named !== undefined) return named;
  const unit = field?.unit ? ` ${field.unit}` : '';
  const format = field?.format;
  if (typeof v === 'number') {
    if (format === 'duration') return formatMs(v);
    if (format === 'time') return formatTime(v);
    if (format === 'bytes') return formatBytes(v);
    if (format === 'percent') return `${numberText(v, 1)} %`;
    if (format === 'count') return `${numberText(v, 0)}${unit}`;
    return `${numberText(v)}${unit}`;
  }
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return `${v}${unit && format !== 'text' ? unit : ''}`;
}

/** A nested value on one line, without braces or quotes: "file: a.csv, rows: 12". */
function oneLine(v, depth = 0) {
  if (isScalar(v)) return v === null || v === undefined ? '—' : String(v);
  if (depth > 2) return '…';
  if (Array.isArray(v)) return v.map((x) => oneLine(x, depth + 1)).join(', ');
  return Object.entries(v)
    .map(([k, x]) => `${humanKey(k)}: ${oneLine(x, depth + 1)}`)
    .join(', ');
}

/** A collection as one line of text (list, map, phases), or undefined when it is not one. */
function collectionText(field, v) {
  const format = field?.format;
  const item = (x) => (isScalar(x) ? scalarText({ enum: field?.enum, unit: field?.unit, format: 'number' }, x) : oneLine(x));
  if (format === 'phases' && Array.isArray(v)) return v.map((x, i) => `L${i + 1} ${item(x)}`).join(' · ');
  if (Array.isArray(v) && (format === 'list' || v.every(isScalar))) return v.length ? v.map(item).join(', ') : 'none';
  if (isObject(v) && (format === 'map' || Object.values(v).every(isScalar))) {
    const entries = Object.entries(v).filter(([, x]) => !isEmpty(x));
    return entries.length ? entries.map(([k, x]) => `${word(field, k) ?? k}: ${item(x)}`).join(' · ') : 'none';
  }
  return undefined;
}

/** The tone of a value: from `tones`, or a warning above `warnAbove`. */
function toneOf(field, v) {
  const t = field?.tones?.[String(v)];
  if (t) return t;
  if (typeof field?.warnAbove === 'number' && typeof v === 'number' && v > field.warnAbove) return 'warn';
  return undefined;
}

/** A value cell's content: text with its tone; long text is cut with the whole of it in the title. */
function valueNode(field, v) {
  const text = isScalar(v) ? scalarText(field, v) : (collectionText(field, v) ?? oneLine(v));
  const tone = isScalar(v) ? toneOf(field, v) : undefined;
  const attrs = { class: `sv-val${tone ? ` tone-${tone}` : ''}` };
  if (field?.format === 'time' && typeof v === 'number') attrs.title = new Date(v).toISOString();
  else if (text.length > 60) attrs.title = text;
  return h('span', attrs, text);
}

/** Is this value shown as a table (rows of objects) by the field or by its shape? */
function asRows(field, v) {
  if (field?.format === 'rows') return Array.isArray(v) || isObject(v);
  if (field?.format) return false;
  const items = Array.isArray(v) ? v : isObject(v) ? Object.values(v) : [];
  return items.length > 0 && items.every(isObject);
}

/** The entries of a `rows` value: [name or undefined, row]. */
function rowEntries(v) {
  return Array.isArray(v) ? v.map((r) => [undefined, r]) : Object.entries(v);
}

/** A small table: one row per entry, columns from the schema, the rest on a detail line under the row. */
function rowsTable(field, v, label) {
  const entries = rowEntries(v).filter(([, r]) => isObject(r));
  if (!entries.length) return h('p', { class: 'muted sv-none' }, 'none');
  const fields = field?.fields ?? genericColumns(entries.map(([, r]) => r));
  const named = !Array.isArray(v);
  const present = (key) => entries.some(([, r]) => !isEmpty(r[key]));
  const columns = Object.entries(fields).filter(([key, f]) => !f.detail && !f.hidden && present(key));
  const unknown = [...new Set(entries.flatMap(([, r]) => Object.keys(r)))].filter((k) => !(k in fields));
  const detailFields = [...Object.entries(fields).filter(([, f]) => f.detail && !f.hidden), ...unknown.map((k) => [k, { label: humanKey(k) }])];
  const span = columns.length + (named ? 1 : 0);
  const body = [];
  for (const [name, r] of entries.slice(0, MAX_ROWS)) {
    const cells = columns.map(([key, f], i) => {
      const node = valueNode(f, r[key]);
      // Short values stay on one line (the table scrolls in its box); long text wraps between words.
      const cls = numeric(f, r[key]) ? 'num' : node.textContent.length > 24 ? 'wrap' : undefined;
      return !named && i === 0 ? h('th', { scope: 'row', class: cls }, node) : h('td', { class: cls }, node);
    });
    body.push(h('tr', { dataset: name === undefined ? {} : { key: name } }, named ? h('th', { scope: 'row' }, name) : '', cells));
    const details = detailFields.filter(([key]) => !isEmpty(r[key]));
    if (details.length)
      body.push(
        h(
          'tr',
          { class: 'sv-detail' },
          h(
            'td',
            { colspan: String(span) },
            details.flatMap(([key, f], i) => [i ? ' · ' : '', h('span', { class: 'sv-dlabel' }, `${f.label}: `), valueNode(f, r[key])]),
          ),
        ),
      );
  }
  const more = entries.length > MAX_ROWS ? h('p', { class: 'muted' }, `… and ${entries.length - MAX_ROWS} more`) : '';
  const head = [...(named ? [field?.key ?? 'Name'] : []), ...columns.map(([, f]) => f)];
  return h(
    'div',
    { class: 'table-wrap sv-table' },
    h(
      'table',
      {},
      h('caption', { class: 'sv-caption' }, label),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          head.map((c) => (typeof c === 'string' ? h('th', { scope: 'col' }, c) : h('th', { scope: 'col', title: c.help }, c.label))),
        ),
      ),
      h('tbody', {}, body),
    ),
    more,
  );
}

/** Columns of rows no schema describes: the first few keys with scalar values; the rest go to the detail line. */
function genericColumns(rows) {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const scalar = keys.filter((k) => rows.every((r) => isScalar(r[k]) || r[k] === undefined));
  return Object.fromEntries(keys.map((k) => [k, { label: humanKey(k), detail: !scalar.slice(0, 6).includes(k) }]));
}

const numeric = (f, v) => typeof v === 'number' && !word(f, v) && f?.format !== 'time';

/**
 * The status `info` of one adapter as nodes: labelled lines (`dl.kv`) for values, a headed
 * block for each object and a table for each list of devices. `schema` may be undefined
 * (an unknown type): then every field is shown by its key.
 */
export function statusInfo(info, schema, depth = 0) {
  const fields = schema?.fields ?? {};
  const keys = [...Object.keys(fields).filter((k) => k in info), ...Object.keys(info).filter((k) => !(k in fields))];
  const lines = [];
  const blocks = [];
  for (const key of keys) {
    const field = fields[key] ?? { label: humanKey(key) };
    const v = info[key];
    if (field.hidden || isEmpty(v)) continue;
    const label = h('dt', { title: field.help }, field.label);
    if (asRows(field, v) && depth < MAX_DEPTH) blocks.push(rowsTable(field, v, field.label));
    else if (isObject(v) && (field.format === 'fields' || (!field.format && !Object.values(v).every(isScalar))) && depth < MAX_DEPTH)
      blocks.push(h('div', { class: 'sv-block' }, h('h3', { title: field.help }, field.label), statusInfo(v, { fields: field.fields ?? {} }, depth + 1)));
    else lines.push(label, h('dd', {}, valueNode(field, v)));
  }
  return h('div', { class: 'sv' }, lines.length ? h('dl', { class: 'kv' }, lines) : '', blocks);
}
