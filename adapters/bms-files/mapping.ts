import { z } from 'zod';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { DATAPOINT_ID } from '../../core/datapoint.js';
import { globToRegExp } from '../../core/glob.js';

/**
 * One mapping rule: BMS point name → datapoint id. Exactly one of `exact`, `glob`, `regex`.
 * In `id`, `{1}`, `{2}` … are the glob wildcards / regex capture groups, `{name}` the whole
 * point name; substituted parts are lower-cased and made id-safe (`[a-z0-9_.-]`).
 */
export const pointRuleSchema = z
  .strictObject({
    exact: z.string().min(1).optional(),
    /** `*` matches any run of characters, `?` one character; case-sensitive like the BMS. */
    glob: z.string().min(1).optional(),
    regex: z
      .string()
      .min(1)
      .refine((r) => {
        try {
          new RegExp(r);
          return true;
        } catch {
          return false;
        }
      }, 'expected a valid JavaScript regular expression')
      .optional(),
    /** Datapoint id template; omit with `ignore: true`. */
    id: z.string().min(1).optional(),
    unit: z.string().max(32).optional(),
    description: z.string().max(1024).optional(),
    /** Drop this point (e.g. alarms trended alongside values). */
    ignore: z.boolean().default(false),
  })
  .refine((r) => [r.exact, r.glob, r.regex].filter((x) => x !== undefined).length === 1, 'give exactly one of exact, glob or regex')
  .refine((r) => r.ignore || r.id !== undefined, 'give an id template (or ignore: true)');

export type PointRule = z.output<typeof pointRuleSchema>;

export type UnknownPointPolicy = 'register' | 'skip' | 'fail';

export interface MappedPoint {
  id: string;
  unit?: string;
  description?: string;
  /** Which rule mapped it: `exact`, `glob`, `regex` or `auto`. */
  via: 'exact' | 'glob' | 'regex' | 'auto';
}

interface CompiledRule {
  rule: PointRule;
  kind: 'exact' | 'glob' | 'regex';
  re?: RegExp;
}

/** Lower-cases and replaces everything outside `[a-z0-9_.-]`; `EV.RM102.V` → `ev.rm102.v`. */
function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '_')
    .replace(/\.{2,}/g, '.')
    .replace(/^[._-]+|[._-]+$/g, '');
}

/** A point-name glob (core/glob.ts, no separator): each `*` and `?` is a capture group, `{1}`… in `id`. */
function globToRegex(glob: string): RegExp {
  return globToRegExp(glob, { capture: true });
}

/**
 * Maps BMS point names to datapoint ids by the configured rules, first match wins;
 * unmatched names are auto-registered under `prefix`, skipped, or refused.
 */
export class PointMapper {
  private readonly rules: CompiledRule[];
  private readonly cache = new Map<string, MappedPoint | null>();

  constructor(
    rules: readonly PointRule[],
    private readonly unknown: UnknownPointPolicy,
    private readonly prefix: string,
  ) {
    this.rules = rules.map((rule) => {
      if (rule.exact !== undefined) return { rule, kind: 'exact' };
      if (rule.glob !== undefined) return { rule, kind: 'glob', re: globToRegex(rule.glob) };
      return { rule, kind: 'regex', re: new RegExp(rule.regex!) };
    });
  }

  /** `null`: skip this point (ignored, or unknown with `skip`). Throws for `fail` and bad ids. */
  map(name: string): MappedPoint | null {
    const hit = this.cache.get(name);
    if (hit !== undefined) return hit;
    const result = this.resolve(name);
    if (this.cache.size > 50_000) this.cache.clear();
    this.cache.set(name, result);
    return result;
  }

  private resolve(name: string): MappedPoint | null {
    for (const c of this.rules) {
      let captures: string[] | undefined;
      if (c.kind === 'exact') captures = c.rule.exact === name ? [] : undefined;
      else {
        const m = c.re!.exec(name);
        captures = m ? m.slice(1).map((s) => s ?? '') : undefined;
      }
      if (!captures) continue;
      if (c.rule.ignore) return null;
      const id = c.rule.id!.replace(/\{(\d+|name)\}/g, (_all, key: string) => slug(key === 'name' ? name : (captures[Number(key) - 1] ?? '')));
      if (!DATAPOINT_ID.test(id)) {
        throw new OutpostError('CONFIG_INVALID', `point "${name}" maps to "${id}", which is not a valid datapoint id ([a-z0-9_.-])`);
      }
      return { id, unit: c.rule.unit, description: c.rule.description, via: c.kind };
    }
    if (this.unknown === 'skip') return null;
    if (this.unknown === 'fail') throw new OutpostError('BMS_POINT_UNMAPPED', `point "${name}" matches no mapping rule (unknownPoints: fail)`);
    const id = `${this.prefix}.${slug(name) || 'point'}`;
    if (!DATAPOINT_ID.test(id)) throw new OutpostError('BMS_POINT_UNMAPPED', `point "${name}" gives no valid datapoint id`);
    return { id, via: 'auto' };
  }
}
