// The bytes of a backup as numbered lines: gzip detected and undone, lines split with a length
// cap, and `LineError`, the error naming a line. Separate from the reader (backup-reader.ts):
// this knows bytes and lines, not what a line means.
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { OutpostError } from '../core/errors.js';
import './errors.js';
import { MAX_LINE_BYTES } from './backup-format.js';

function asBuffer(chunk: Buffer | string): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
}

/** True for errors zlib raises on bad input (Z_DATA_ERROR, Z_BUF_ERROR on a cut-off stream, …). */
function isZlibError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('Z_');
}

/**
 * Chunks of the source, gunzipped when it starts with the gzip magic bytes 1f 8b
 * (RFC 1952 §2.3.1). Damaged or cut-off gzip data is BACKUP_INVALID; an error of the
 * source itself (a read error, an aborted upload) is passed on as it is.
 */
export async function* decoded(input: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
  const it = input[Symbol.asyncIterator]();
  // A stream may hand out a first chunk of one byte (an upload): collect two to decide.
  let head: Buffer = Buffer.alloc(0);
  while (head.length < 2) {
    const n = await it.next();
    if (n.done) break;
    head = head.length === 0 ? asBuffer(n.value) : Buffer.concat([head, asBuffer(n.value)]);
  }
  if (head.length === 0) return;
  async function* all(): AsyncGenerator<Buffer> {
    yield head;
    for (let n = await it.next(); !n.done; n = await it.next()) yield asBuffer(n.value);
  }
  if (!(head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b)) {
    yield* all();
    return;
  }
  const gunzip = createGunzip();
  const compressed = Readable.from(all());
  compressed.on('error', (err) => gunzip.destroy(err));
  compressed.pipe(gunzip);
  try {
    for await (const chunk of gunzip) yield chunk as Buffer;
  } catch (err) {
    if (!isZlibError(err)) throw err;
    throw new OutpostError('BACKUP_INVALID', `the gzip data is damaged or truncated (${(err as Error).message})`, { cause: err });
  } finally {
    compressed.destroy();
    gunzip.destroy();
  }
}

export interface Line {
  /** 1-based line number. */
  n: number;
  /** The line's bytes including its `\n` (absent on a last line without one). */
  raw: Buffer;
  text: string;
}

/** Splits chunks into lines; a line longer than `MAX_LINE_BYTES` is refused before it is buffered further. */
export async function* splitLines(chunks: AsyncIterable<Buffer>): AsyncGenerator<Line> {
  let n = 0;
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of chunks) {
    let buf = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
    let start = 0;
    for (let nl = buf.indexOf(0x0a, start); nl !== -1; nl = buf.indexOf(0x0a, start)) {
      n++;
      if (nl - start > MAX_LINE_BYTES) throw invalid(n, `line is longer than ${MAX_LINE_BYTES} bytes`);
      const raw = buf.subarray(start, nl + 1);
      yield { n, raw, text: raw.toString('utf8', 0, raw.length - 1) };
      start = nl + 1;
    }
    buf = buf.subarray(start);
    if (buf.length > MAX_LINE_BYTES) throw invalid(n + 1, `line is longer than ${MAX_LINE_BYTES} bytes`);
    // Copy so the source's (possibly pooled) chunk is not kept alive by a small remainder.
    rest = Buffer.from(buf);
  }
  if (rest.length > 0) yield { n: n + 1, raw: rest, text: rest.toString('utf8') };
}

export class LineError extends Error {
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(`line ${line}: ${reason}`);
  }
}

export function invalid(line: number, reason: string): LineError {
  return new LineError(line, reason);
}
