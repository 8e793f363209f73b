import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { IssueLine } from '../core/zod-error.js';

export const ENV_PREFIX = 'OUTPOST_CENTRAL_';

type KnownKeys = { [key: string]: KnownKeys | null };

/**
 * `OUTPOST_CENTRAL_*` overrides, as the gateway's `OUTPOST_*` (runtime/config/load.ts):
 * `OUTPOST_CENTRAL_HTTP_PORT=8091` sets `http.port`. Keys are camelCase, so `_` separates
 * levels and matching ignores case; numeric segments index arrays; values are YAML scalars.
 * A variable that names no key is an error, not ignored.
 */
export function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, schema: z.ZodType, issues: IssueLine[]): void {
  const known = knownKeys(schema);
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const segments = name.slice(ENV_PREFIX.length).toLowerCase().split('_');
    if (!set(raw, known, segments, value)) {
      issues.push({ path: `env ${name}`, message: `does not name a configuration key (${ENV_PREFIX}<SECTION>_<KEY>, e.g. ${ENV_PREFIX}HTTP_PORT)` });
    }
  }
}

function set(raw: Record<string, unknown>, known: KnownKeys | undefined, segments: string[], value: string): boolean {
  let target: Record<string | number, unknown> = raw;
  let knownHere = known;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    let key: string | number;
    if (Array.isArray(target)) {
      if (!/^\d+$/.test(seg)) return false;
      key = Number(seg);
    } else {
      const match = [...new Set([...Object.keys(knownHere ?? {}), ...Object.keys(target)])].find((k) => k.toLowerCase() === seg);
      if (!match) return false;
      key = match;
    }
    if (i === segments.length - 1) {
      target[key] = parseYaml(value);
      return true;
    }
    let next = target[key];
    if (next === undefined || next === null) {
      next = /^\d+$/.test(segments[i + 1]!) ? [] : {};
      target[key] = next;
    }
    if (typeof next !== 'object') return false;
    target = next as Record<string | number, unknown>;
    if (typeof key === 'string') knownHere = knownHere?.[key] ?? undefined;
  }
  return false;
}

/** The object keys a schema knows, nested (defaults, optionals, refinements unwrapped). */
function knownKeys(schema: z.ZodType): KnownKeys | undefined {
  let s: z.ZodType = schema;
  for (let i = 0; i < 8; i++) {
    const def = (s as unknown as { _zod: { def: { innerType?: z.ZodType; in?: z.ZodType; schema?: z.ZodType } } })._zod.def;
    const inner = def.innerType ?? def.in ?? def.schema;
    if (!inner) break;
    s = inner;
  }
  if (s instanceof z.ZodArray) return knownKeys(s.element as z.ZodType);
  if (!(s instanceof z.ZodObject)) return undefined;
  const out: KnownKeys = {};
  for (const [k, v] of Object.entries(s.shape as Record<string, z.ZodType>)) out[k] = knownKeys(v) ?? null;
  return out;
}
