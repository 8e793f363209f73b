/** Local wall-clock fields parsed from an export (month 1–12). */
export interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  ms: number;
  /** Set when the text carried its own UTC offset (ISO 8601 `Z` / `+01:00`): no zone lookup needed. */
  offsetMs?: number;
}

const TOKEN_PATTERNS: Record<string, string> = {
  YYYY: '(\\d{4})',
  YY: '(\\d{2})',
  MM: '(\\d{2})',
  M: '(\\d{1,2})',
  DD: '(\\d{2})',
  D: '(\\d{1,2})',
  HH: '(\\d{2})',
  H: '(\\d{1,2})',
  hh: '(\\d{2})',
  h: '(\\d{1,2})',
  mm: '(\\d{2})',
  ss: '(\\d{2})',
  SSS: '(\\d{1,3})',
  A: '([AaPp][Mm])',
};
const TOKENS = /YYYY|YY|MM|M|DD|D|HH|H|hh|h|mm|ss|SSS|A/g;

export type TimestampParser = (text: string) => WallTime | undefined;

/**
 * Order of the first two fields of a slash date: month first (US, `5/11/2024` = May 11) or
 * day first (most other locales, `5/11/2024` = 5 November). See date-order.ts for how a
 * file's order is decided.
 */
export type SlashDateOrder = 'MDY' | 'DMY';

/**
 * Compiles a timestamp format such as `M/D/YYYY h:mm:ss A` or `YYYY-MM-DD HH:mm`
 * (tokens: YYYY YY M MM D DD H HH h hh mm ss SSS A; anything else is literal, and a run
 * of spaces matches one or more spaces). Special formats: `auto`, `iso`, `epoch-ms`, `epoch-s`.
 * `auto` reads ISO 8601 and slash dates in `dateOrder` (default month first, `M/D/YYYY`);
 * explicit formats say their order themselves and ignore it.
 */
export function compileTimestampFormat(format: string, dateOrder: SlashDateOrder = 'MDY'): TimestampParser {
  if (format === 'auto') {
    const iso = parseIso;
    const date = dateOrder === 'DMY' ? 'D/M/YYYY' : 'M/D/YYYY';
    const slash = compileTimestampFormat(`${date} H:mm:ss A`);
    const slashNoSec = compileTimestampFormat(`${date} H:mm A`);
    return (text) => iso(text) ?? slash(text) ?? slashNoSec(text);
  }
  if (format === 'iso') return parseIso;
  if (format === 'epoch-ms' || format === 'epoch-s') {
    const scale = format === 'epoch-ms' ? 1 : 1000;
    return (text) => {
      const s = text.trim();
      if (!/^\d{9,13}(\.\d+)?$/.test(s)) return undefined;
      const t = Math.round(Number(s) * scale);
      const d = new Date(t);
      return {
        year: d.getUTCFullYear(),
        month: d.getUTCMonth() + 1,
        day: d.getUTCDate(),
        hour: d.getUTCHours(),
        minute: d.getUTCMinutes(),
        second: d.getUTCSeconds(),
        ms: d.getUTCMilliseconds(),
        offsetMs: 0,
      };
    };
  }
  const order: string[] = [];
  let source = '';
  let last = 0;
  for (const m of format.matchAll(TOKENS)) {
    source += escapeLiteral(format.slice(last, m.index));
    source += TOKEN_PATTERNS[m[0]]!;
    order.push(m[0]);
    last = m.index + m[0].length;
  }
  source += escapeLiteral(format.slice(last));
  // The AM/PM marker is optional so that one format reads both 12 h and 24 h exports.
  source = source.replace(/ \+\(\[AaPp\]\[Mm\]\)$/, '(?: +([AaPp][Mm]))?');
  const re = new RegExp('^\\s*' + source + '\\s*$');
  return (text) => {
    const m = re.exec(text);
    if (!m) return undefined;
    const w: WallTime = { year: 0, month: 1, day: 1, hour: 0, minute: 0, second: 0, ms: 0 };
    let pm: boolean | undefined;
    let twelve = false;
    order.forEach((tok, i) => {
      const s = m[i + 1];
      if (s === undefined) return;
      switch (tok) {
        case 'YYYY':
          w.year = Number(s);
          break;
        case 'YY':
          w.year = 2000 + Number(s);
          break;
        case 'M':
        case 'MM':
          w.month = Number(s);
          break;
        case 'D':
        case 'DD':
          w.day = Number(s);
          break;
        case 'H':
        case 'HH':
          w.hour = Number(s);
          break;
        case 'h':
        case 'hh':
          w.hour = Number(s);
          twelve = true;
          break;
        case 'mm':
          w.minute = Number(s);
          break;
        case 'ss':
          w.second = Number(s);
          break;
        case 'SSS':
          w.ms = Number(s.padEnd(3, '0'));
          break;
        case 'A':
          pm = s.toUpperCase() === 'PM';
          break;
      }
    });
    if (pm !== undefined) {
      if (w.hour < 1 || w.hour > 12) return undefined;
      w.hour = (w.hour % 12) + (pm ? 12 : 0);
    } else if (twelve && (w.hour < 1 || w.hour > 12)) return undefined;
    return isValidWall(w) ? w : undefined;
  };
}

function escapeLiteral(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/ +/g, ' +');
}

const ISO = /^\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$/;

function parseIso(text: string): WallTime | undefined {
  const m = ISO.exec(text);
  if (!m) return undefined;
  const w: WallTime = {
    year: Number(m[1]),
    month: Number(m[2]),
    day: Number(m[3]),
    hour: Number(m[4]),
    minute: Number(m[5]),
    second: m[6] ? Number(m[6]) : 0,
    ms: m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0,
  };
  if (m[8]) {
    if (m[8] === 'Z') w.offsetMs = 0;
    else {
      const sign = m[8][0] === '-' ? -1 : 1;
      const digits = m[8].slice(1).replace(':', '');
      w.offsetMs = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
    }
  }
  return isValidWall(w) ? w : undefined;
}

/** Rejects 2/30/2018, 24:00:00 and friends rather than letting Date.UTC roll them over. */
function isValidWall(w: WallTime): boolean {
  if (w.month < 1 || w.month > 12 || w.day < 1 || w.hour > 23 || w.minute > 59 || w.second > 59) return false;
  const daysInMonth = new Date(Date.UTC(w.year, w.month, 0)).getUTCDate();
  return w.day <= daysInMonth;
}

/** Insight's `M/D/YYYY` date cell. */
const INSIGHT_DATE = /^\s*(\d{1,2})\/(\d{1,2})\/(\d{4})\s*$/;
/** Insight's 24 h `HH:MM:SS`; Excel re-saves may drop the seconds or add AM/PM. */
const INSIGHT_TIME = /^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp][Mm]))?\s*$/;

export function parseInsightDateTime(date: string, time: string): WallTime | undefined {
  const d = INSIGHT_DATE.exec(date);
  const h = INSIGHT_TIME.exec(time);
  if (!d || !h) return undefined;
  let hour = Number(h[1]);
  if (h[4]) {
    if (hour < 1 || hour > 12) return undefined;
    hour = (hour % 12) + (h[4].toUpperCase() === 'PM' ? 12 : 0);
  }
  const w: WallTime = { year: Number(d[3]), month: Number(d[1]), day: Number(d[2]), hour, minute: Number(h[2]), second: h[3] ? Number(h[3]) : 0, ms: 0 };
  return isValidWall(w) ? w : undefined;
}
