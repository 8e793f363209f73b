/**
 * The one way a schema validation error becomes text: `path.to.key: message`, one entry per
 * problem, an unknown key at its own path (`a.b.typo: unknown key "typo"`), so a typo is
 * found where it is. Works on a ZodError or its `issues` (typed structurally: core depends
 * on no library).
 */

/** What is used of a zod issue. */
export interface SchemaIssue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly code?: string;
  readonly keys?: readonly string[];
}

/** One problem: dotted path (empty for the root) and message. */
export interface IssueLine {
  path: string;
  message: string;
}

export interface IssueFormat {
  /** Path segments put in front of every issue's path (`sync`, or `adapters.0`). */
  prefix?: string | readonly PropertyKey[];
  /** Shown for an issue at the root (empty path); default `(root)`. */
  root?: string;
  /** Between entries; default `; `. */
  separator?: string;
  /** Before each entry (`  ` for an indented list); default none. */
  indent?: string;
}

function issuesOf(error: { issues: readonly SchemaIssue[] } | readonly SchemaIssue[]): readonly SchemaIssue[] {
  return Array.isArray(error) ? (error as readonly SchemaIssue[]) : (error as { issues: readonly SchemaIssue[] }).issues;
}

function prefixOf(prefix: IssueFormat['prefix']): PropertyKey[] {
  if (prefix === undefined || prefix === '') return [];
  return typeof prefix === 'string' ? prefix.split('.') : [...prefix];
}

const dotted = (path: readonly PropertyKey[]): string => path.map((p) => String(p)).join('.');

/** The issues as (path, message) entries, an unknown key at its own path. */
export function issueLines(error: { issues: readonly SchemaIssue[] } | readonly SchemaIssue[], prefix?: IssueFormat['prefix']): IssueLine[] {
  const head = prefixOf(prefix);
  return issuesOf(error).flatMap((issue) => {
    const path = [...head, ...issue.path];
    if (issue.code === 'unrecognized_keys' && issue.keys?.length) return issue.keys.map((k) => ({ path: dotted([...path, k]), message: `unknown key "${k}"` }));
    return [{ path: dotted(path), message: issue.message }];
  });
}

/** Entries (from {@link issueLines}, or a config's own list) as one text. */
export function formatIssueLines(lines: readonly IssueLine[], format: Omit<IssueFormat, 'prefix'> = {}): string {
  const root = format.root ?? '(root)';
  return lines.map((l) => `${format.indent ?? ''}${l.path || root}: ${l.message}`).join(format.separator ?? '; ');
}

/** A ZodError (or its issues) as one text: `a.b: message; c: message`. */
export function formatZodError(error: { issues: readonly SchemaIssue[] } | readonly SchemaIssue[], format: IssueFormat = {}): string {
  return formatIssueLines(issueLines(error, format.prefix), format);
}
