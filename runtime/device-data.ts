import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { OutpostError, type ErrorCode } from '../core/errors.js';

/**
 * Device data files (Modbus device templates, SunSpec model definitions, OCPP charger
 * profiles) are YAML validated by a zod schema. One loader and one error format for all of
 * them: `<file>: <path> (line <n>): <message>`, problems joined by `; `, so a mistake in a
 * shipped or user file reads the same whichever adapter loaded it.
 */
export interface DeviceDataProblem {
  file: string;
  /** Dotted path inside the file (`points.3.type`); empty for the whole document. */
  path: string;
  /** 1-based line of the value (or of the nearest enclosing one), when known. */
  line?: number;
  message: string;
}

function formatDeviceDataProblem(p: DeviceDataProblem): string {
  return `${p.file}: ${p.path || '(root)'}${p.line !== undefined ? ` (line ${p.line})` : ''}: ${p.message}`;
}

function deviceDataError(code: ErrorCode, problems: DeviceDataProblem[]): OutpostError {
  return new OutpostError(code, problems.map(formatDeviceDataProblem).join('; '), { details: problems });
}

/** A parsed file that can still say where a value was, for checks after the schema. */
export interface DeviceData<T> {
  data: T;
  /** Line of the value at `path` (the nearest enclosing value that exists). */
  lineOf(path: ReadonlyArray<PropertyKey>): number | undefined;
}

function locator(doc: Document, lines: LineCounter): DeviceData<unknown>['lineOf'] {
  return (path) => {
    const keys = path.filter((k): k is string | number => typeof k === 'string' || typeof k === 'number');
    for (let n = keys.length; n >= 0; n--) {
      const node = doc.getIn(keys.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node && typeof node === 'object' && node.range) return lines.linePos(node.range[0]).line;
    }
    return undefined;
  };
}

/**
 * Parses YAML text (duplicate keys are errors) and validates it with `schema`; throws
 * `code` naming the file, each problem's path and line.
 */
export function parseDeviceData<S extends z.ZodType>(text: string, file: string, schema: S, code: ErrorCode): DeviceData<z.output<S>> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0]?.line ?? lines.linePos(e.pos[0]).line;
    throw deviceDataError(code, [{ file, path: '', line, message: `not valid YAML: ${e.message.split('\n')[0]}` }]);
  }
  const lineOf = locator(doc as Document, lines);
  const result = schema.safeParse(doc.toJS());
  if (!result.success) {
    throw deviceDataError(
      code,
      result.error.issues.map((i) => ({ file, path: i.path.map(String).join('.'), line: lineOf(i.path), message: i.message })),
    );
  }
  return { data: result.data, lineOf };
}

/** Reads and parses one device data file; an unreadable file is reported in the same format. */
export function readDeviceData<S extends z.ZodType>(path: string, file: string, schema: S, code: ErrorCode): DeviceData<z.output<S>> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw deviceDataError(code, [{ file, path: '', message: `cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
  return parseDeviceData(text, file, schema, code);
}
