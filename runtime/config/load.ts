import { readFile } from 'node:fs/promises';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { OutpostError } from '../../core/errors.js';
import { adapterEntrySchema, coreSchema, type AdapterEntry, type Config } from './schema.js';
import type { AdapterType } from '../adapter.js';
import { formatIssueLines, issueLines } from '../../core/zod-error.js';

export interface ConfigIssue {
  path: string;
  message: string;
}

/** Env vars read by the CLI itself, not config paths. */
const RESERVED_ENV = new Set(['OUTPOST_CONFIG', 'OUTPOST_CHROMIUM']);
/** The project's own test, benchmark and proof switches: never configuration keys, so never an error. */
const RESERVED_ENV_PREFIXES = ['OUTPOST_TEST_', 'OUTPOST_BENCH_', 'OUTPOST_SOAK_', 'OUTPOST_FUZZ_', 'OUTPOST_PROOF_'];

function isReservedEnv(name: string): boolean {
  return RESERVED_ENV.has(name) || RESERVED_ENV_PREFIXES.some((prefix) => name.startsWith(prefix));
}

export function formatIssues(issues: ConfigIssue[]): string {
  return formatIssueLines(issues, { indent: '  ', separator: '\n' });
}

function configError(issues: ConfigIssue[], source: string): OutpostError {
  return new OutpostError('CONFIG_INVALID', `${source} is invalid:\n${formatIssues(issues)}`, { details: issues });
}

function zodIssues(error: z.ZodError, prefix: (string | number)[] = []): ConfigIssue[] {
  // One line per unknown key, at its own path, so a typo is found where it is.
  return issueLines(error, prefix);
}

/**
 * Applies `OUTPOST_*` env vars: `OUTPOST_HTTP_PORT=8081` sets `http.port`. Keys are
 * camelCase, so `_` separates levels; matching is case-insensitive against the keys the
 * schema (or the file) knows; numeric segments index arrays. Values are YAML scalars.
 */
function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, issues: ConfigIssue[]): void {
  const known = knownKeys(coreSchema());
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('OUTPOST_') || isReservedEnv(name) || value === undefined) continue;
    const segments = name.slice('OUTPOST_'.length).toLowerCase().split('_');
    let target: Record<string, unknown> | unknown[] = raw;
    let knownHere: KnownKeys | undefined = known;
    let ok = true;
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i]!;
      const last = i === segments.length - 1;
      let key: string | number;
      if (Array.isArray(target)) {
        if (!/^\d+$/.test(seg)) {
          ok = false;
          break;
        }
        key = Number(seg);
      } else {
        const candidates = new Set([...Object.keys(knownHere ?? {}), ...Object.keys(target)]);
        const match = [...candidates].find((k) => k.toLowerCase() === seg);
        if (!match) {
          ok = false;
          break;
        }
        key = match;
      }
      const child: KnownKeys | undefined = typeof key === 'string' ? (knownHere?.[key] ?? undefined) : knownHere;
      if (last) {
        (target as Record<string | number, unknown>)[key] = parseYaml(value);
      } else {
        let next = (target as Record<string | number, unknown>)[key];
        if (next === undefined || next === null) {
          next = /^\d+$/.test(segments[i + 1]!) ? [] : {};
          (target as Record<string | number, unknown>)[key] = next;
        }
        if (typeof next !== 'object') {
          ok = false;
          break;
        }
        target = next as Record<string, unknown>;
        knownHere = child === null ? undefined : child;
      }
    }
    if (!ok) issues.push({ path: `env ${name}`, message: 'does not name a configuration key (OUTPOST_<SECTION>_<KEY>, e.g. OUTPOST_HTTP_PORT)' });
  }
}

type KnownKeys = { [key: string]: KnownKeys | null };

function knownKeys(schema: z.ZodType): KnownKeys | undefined {
  let s: z.ZodType = schema;
  // Unwrap defaults, optionals and prefaults to reach the object shape.
  for (let i = 0; i < 5; i++) {
    const def = (s as unknown as { _zod: { def: { innerType?: z.ZodType } } })._zod.def;
    if (!def.innerType) break;
    s = def.innerType;
  }
  if (!(s instanceof z.ZodObject)) return undefined;
  const out: KnownKeys = {};
  for (const [k, v] of Object.entries(s.shape)) out[k] = knownKeys(v as z.ZodType) ?? null;
  return out;
}

/** Validates a raw config object; throws CONFIG_INVALID listing every problem by path. */
export function validateConfig(
  raw: unknown,
  adapterTypes: ReadonlyMap<string, AdapterType>,
  options: { env?: NodeJS.ProcessEnv; source?: string } = {},
): Config {
  const source = options.source ?? 'configuration';
  const issues: ConfigIssue[] = [];
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw configError([{ path: '', message: 'expected a mapping of keys to values' }], source);
  const copy = structuredClone(raw) as Record<string, unknown>;
  if (options.env) applyEnvOverrides(copy, options.env, issues);

  const core = coreSchema().safeParse(copy);
  if (!core.success) issues.push(...zodIssues(core.error));

  const adapters: AdapterEntry[] = [];
  const rawAdapters = Array.isArray(copy.adapters) ? copy.adapters : [];
  const seen = new Set<string>();
  rawAdapters.forEach((entry, index) => {
    const rawId = entry && typeof entry === 'object' ? (entry as Record<string, unknown>).id : undefined;
    if (typeof rawId === 'string') {
      if (seen.has(rawId)) issues.push({ path: `adapters.${index}.id`, message: `duplicate adapter id "${rawId}"` });
      seen.add(rawId);
    }
    const typeName = entry && typeof entry === 'object' ? (entry as Record<string, unknown>).type : undefined;
    const type = typeof typeName === 'string' ? adapterTypes.get(typeName) : undefined;
    if (!type) {
      issues.push({
        path: `adapters.${index}.type`,
        message: `unknown adapter type ${JSON.stringify(typeName)} (expected one of ${[...adapterTypes.keys()].join(', ')})`,
      });
      return;
    }
    const parsed = adapterEntrySchema(type).safeParse(entry);
    if (!parsed.success) {
      issues.push(...zodIssues(parsed.error, ['adapters', index]));
      return;
    }
    const { id, type: t, enabled, ...rest } = parsed.data as Record<string, unknown> & { id: string; type: string; enabled: boolean };
    adapters.push({ id, type: t, enabled, options: rest });
  });

  if (core.success) {
    const ids = new Set<string>();
    core.data.datapoints.forEach((dp, i) => {
      if (ids.has(dp.id)) issues.push({ path: `datapoints.${i}.id`, message: `duplicate datapoint id "${dp.id}"` });
      ids.add(dp.id);
    });
  }
  if (issues.length > 0 || !core.success) throw configError(issues, source);
  return { ...core.data, adapters };
}

export async function loadConfigFile(path: string, adapterTypes: ReadonlyMap<string, AdapterType>, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new OutpostError('CONFIG_NOT_FOUND', `cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return validateConfig(parseConfigText(text, path), adapterTypes, { env, source: path });
}

/**
 * Config YAML as `loadConfigFile` reads it (a pushed config too: runtime/config/pending.ts):
 * a syntax error is CONFIG_INVALID at its line and column.
 */
export function parseConfigText(text: string, source: string): unknown {
  try {
    return parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    if (err instanceof YAMLParseError) {
      const pos = err.linePos?.[0];
      throw configError([{ path: pos ? `line ${pos.line}, column ${pos.col}` : '', message: err.message.split('\n')[0]! }], source);
    }
    throw err;
  }
}
