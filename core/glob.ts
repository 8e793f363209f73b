/**
 * The one glob dialect of Outpost's configuration (datapoint id patterns, BMS point names,
 * MQTT ACL levels). Three special characters, everything else is literal:
 *
 * - `*`  any run of characters (also none), but not the separator where the key has one;
 * - `**` any run of characters, separators included;
 * - `?`  exactly one character (not the separator).
 *
 * A key without a separator (datapoint ids, BMS point names) lets `*` cross dots: there
 * `*` and `**` mean the same. MQTT topic filters (`+` one level, `#` the rest) are not globs:
 * they follow the MQTT specification wherever a topic filter is expected.
 */

export interface GlobOptions {
  /** One character `*` and `?` do not match (`/` for a topic level); none by default. */
  separator?: string;
  /** Each `*`, `**` and `?` becomes a capture group, numbered left to right (for `{1}` templates). */
  capture?: boolean;
}

const SPECIAL = /[.*+?^${}()|[\]\\/-]/g;

function escapeRegExp(text: string): string {
  return text.replace(SPECIAL, '\\$&');
}

/** The regular-expression source (unanchored) of a glob. */
function globSource(glob: string, options: GlobOptions = {}): string {
  const sep = options.separator;
  if (sep !== undefined && sep.length !== 1) throw new TypeError('a glob separator is one character');
  const one = sep === undefined ? '.' : `[^${escapeRegExp(sep)}]`;
  const group = (body: string): string => (options.capture ? `(${body})` : `(?:${body})`);
  let src = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        while (glob[i + 1] === '*') i++;
        src += group('.*?');
      } else src += group(`${one}*?`);
    } else if (ch === '?') src += options.capture ? `(${one})` : one;
    else src += escapeRegExp(ch);
  }
  return src;
}

/** A glob as an anchored regular expression (the whole text must match). */
export function globToRegExp(glob: string, options: GlobOptions = {}): RegExp {
  return new RegExp(`^${globSource(glob, options)}$`, 's');
}

/** Whether a text has any of the glob's special characters (else it can be compared as is). */
export function isGlob(text: string): boolean {
  return text.includes('*') || text.includes('?');
}

/** One test for several globs: true when any matches. No globs: matches nothing. */
export function compileGlobs(globs: readonly string[], options: GlobOptions = {}): (text: string) => boolean {
  if (globs.length === 0) return () => false;
  const re = new RegExp(`^(?:${globs.map((g) => globSource(g, { ...options, capture: false })).join('|')})$`, 's');
  return (text) => re.test(text);
}

const cache = new Map<string, RegExp>();
const CACHE_MAX = 1000;

/** Whether `text` matches `glob`; compiled expressions are cached (for checks on a hot path). */
export function globMatch(glob: string, text: string, options: GlobOptions = {}): boolean {
  if (!isGlob(glob)) return glob === text;
  const key = `${options.separator ?? ''}\u0000${glob}`;
  let re = cache.get(key);
  if (!re) {
    if (cache.size >= CACHE_MAX) cache.clear();
    re = globToRegExp(glob, { separator: options.separator });
    cache.set(key, re);
  }
  return re.test(text);
}
