// Tiny DOM helpers: elements are built with textContent, never innerHTML, so values
// from devices cannot inject markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/**
 * A value as text. `meta` is the datapoint's: a register value with `meta.enum` (value → word)
 * shows its word ("MPPT"), one with `meta.bits` (bit → what it flags) the flags that are set
 * ("Ground fault, Over temperature", or "none"), as Modbus templates declare them
 * (adapters/modbus/README.md). Without `meta`, as before.
 */
export function formatValue(v, unit, meta) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number' && meta?.enum && typeof meta.enum === 'object') return meta.enum[String(v)] ?? `${v} (not in the list)`;
  if (typeof v === 'number' && meta?.bits && typeof meta.bits === 'object' && Number.isInteger(v)) return bitWords(v, meta.bits);
  if (typeof v === 'number') {
    const abs = Math.abs(v);
    const digits = abs >= 1000 ? 0 : abs >= 100 ? 1 : 2;
    return `${v.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 })}${unit ? ' ' + unit : ''}`;
  }
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v) + (unit ? ' ' + unit : '');
}

/** The set bits of a register (a negative int32 as its unsigned image), named by `bits`, least significant first. */
function bitWords(v, bits) {
  let n = v < 0 ? v + 2 ** 32 : v;
  const set = [];
  for (let bit = 0; n > 0 && bit < 53; bit++, n = Math.floor(n / 2)) if (n % 2 === 1) set.push(bits[String(bit)] ?? `bit ${bit}`);
  return set.length ? set.join(', ') : 'none';
}

export function formatTime(t) {
  if (!t) return '—';
  const d = new Date(t);
  const sameDay = new Date().toDateString() === d.toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  return d ? `${d} d ${hh} h` : hh ? `${hh} h ${mm} min` : `${mm} min ${s % 60} s`;
}

/** Flashes a changed value without moving anything around (no layout shift). */
export function flash(el) {
  el.classList.remove('flash');
  void el.offsetWidth;
  el.classList.add('flash');
}
