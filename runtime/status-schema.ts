import { z } from 'zod';
import { formatZodError } from '../core/zod-error.js';
import type { AdapterType, StatusField, StatusSchema } from './adapter.js';

/**
 * Adapter status schemas (runtime/adapter.ts `StatusSchema`): their validation, the fields the
 * host itself adds to every status, and the check that a schema covers what an adapter
 * publishes. The dashboard renders them (public/status-view.js).
 */

/** Every key of `T`, optional ones included, to a field: a schema typed with it covers the status type at compile time. */
export type StatusFieldsOf<T> = { readonly [K in keyof Required<T>]: StatusField };

/** What the adapter host adds to an adapter's `info` (runtime/adapter-host.ts): the next retry after a failed start. */
export const HOST_STATUS_FIELDS: Readonly<Record<string, StatusField>> = {
  retryInMs: { label: 'Next retry in', format: 'duration', help: 'The start failed; the host tries again after this delay (backoff)' },
};

const FORMATS = ['text', 'number', 'count', 'percent', 'bytes', 'duration', 'time', 'boolean', 'list', 'map', 'phases', 'fields', 'rows'] as const;
/** Formats whose value is a collection of objects, described by `fields`. */
const NESTED = new Set(['fields', 'rows']);

const fieldSchema: z.ZodType<StatusField> = z.lazy(() =>
  z.strictObject({
    label: z.string().trim().min(1).max(60),
    format: z.enum(FORMATS).optional(),
    unit: z.string().min(1).max(16).optional(),
    enum: z.record(z.string().min(1), z.string().min(1).max(40)).optional(),
    tones: z.record(z.string().min(1), z.enum(['good', 'warn', 'bad'])).optional(),
    warnAbove: z.number().optional(),
    detail: z.boolean().optional(),
    fields: z.record(z.string().min(1), fieldSchema).optional(),
    key: z.string().min(1).max(40).optional(),
    help: z.string().min(1).max(300).optional(),
    hidden: z.boolean().optional(),
  }),
);

const schemaSchema = z.strictObject({ fields: z.record(z.string().min(1), fieldSchema) });

/** What is wrong with a status schema (empty: valid): the shape, and the rules between fields. */
export function statusSchemaProblems(schema: unknown): string[] {
  const parsed = schemaSchema.safeParse(schema);
  if (!parsed.success) return [formatZodError(parsed.error, { prefix: 'statusSchema', root: 'statusSchema' })];
  const problems: string[] = [];
  const walk = (fields: Readonly<Record<string, StatusField>>, path: string, inRows: boolean): void => {
    for (const [key, f] of Object.entries(fields)) {
      const at = `${path}.${key}`;
      const nested = f.format !== undefined && NESTED.has(f.format);
      if (nested && !f.fields) problems.push(`${at}: format "${f.format}" needs "fields"`);
      if (!nested && f.fields) problems.push(`${at}: "fields" only go with format "fields" or "rows"`);
      if (f.key !== undefined && f.format !== 'rows') problems.push(`${at}: "key" only goes with format "rows"`);
      if (f.detail && !inRows) problems.push(`${at}: "detail" only applies to a column of "rows"`);
      if (nested && (f.enum || f.unit)) problems.push(`${at}: format "${f.format}" takes no "enum" or "unit" (its fields do)`);
      for (const value of Object.keys(f.tones ?? {}))
        if (f.enum && !(value in f.enum)) problems.push(`${at}: tone for "${value}", which its "enum" does not name`);
      if (f.fields) walk(f.fields, at, f.format === 'rows');
    }
  };
  walk(parsed.data.fields, 'statusSchema', false);
  return problems;
}

/** A type's schema with the host's own fields, as served to the dashboard (its own win on a clash). */
export function servedStatusSchema(type: Pick<AdapterType, 'statusSchema'>): StatusSchema {
  return { fields: { ...HOST_STATUS_FIELDS, ...(type.statusSchema?.fields ?? {}) } };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The keys of a published status `info` that its schema does not describe (dotted paths; rows
 * as `devices.*.state`): what a card would show by its raw key. `map` and `list` values are
 * data, their keys are not checked.
 */
export function uncoveredStatusKeys(schema: StatusSchema, info: Record<string, unknown>): string[] {
  const out = new Set<string>();
  const walk = (fields: Readonly<Record<string, StatusField>>, value: Record<string, unknown>, path: string): void => {
    for (const [key, v] of Object.entries(value)) {
      const f = fields[key];
      const at = path ? `${path}.${key}` : key;
      if (!f) {
        out.add(at);
        continue;
      }
      if (f.format === 'fields' && isObject(v)) walk(f.fields ?? {}, v, at);
      if (f.format === 'rows') {
        const rows = Array.isArray(v) ? v : isObject(v) ? Object.values(v) : [];
        for (const row of rows) if (isObject(row)) walk(f.fields ?? {}, row, `${at}.*`);
      }
    }
  };
  walk(schema.fields, info, '');
  return [...out].sort();
}
