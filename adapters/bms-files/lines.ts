import { StringDecoder } from 'node:string_decoder';
import { fileError } from './report.js';

/** A BMS export line is a few kB; anything this long is binary junk or a wrong file, not a report row. */
const DEFAULT_MAX_LINE_CHARS = 1024 * 1024;

/** The text encodings exports come in (see `ExportDecoder`). */
export type ExportEncoding = 'utf8' | 'utf16le' | 'utf16be';

/** Bytes looked at before the encoding is decided: enough for every byte-order mark and two UTF-16 code units. */
const SNIFF_BYTES = 4;

/**
 * Bytes → text for the encodings Windows tools write exports in:
 * - UTF-8, with or without Excel's "CSV UTF-8" byte-order mark EF BB BF (removed by `readLines`);
 * - UTF-16 little-endian with its BOM FF FE: Excel "Unicode Text", Windows PowerShell 5
 *   `Export-Csv`/`Out-File` (their default "Unicode"), Notepad "UTF-16 LE";
 * - UTF-16 big-endian with its BOM FE FF: Notepad "UTF-16 BE".
 * The BOM is what tells UTF-16 apart (Unicode 15, section 23.8); UTF-16 without one
 * (every other byte 0 in ASCII text) and UTF-32 are refused with what to export instead,
 * rather than read as NUL-riddled "binary data". Streaming: a code unit or a surrogate pair
 * split across chunks is joined (StringDecoder keeps a dangling byte; the two halves of a
 * pair end up next to each other in the line). A dangling last byte reads as U+FFFD, as an
 * incomplete UTF-8 sequence does: the file was cut off.
 */
class ExportDecoder {
  /** Bytes seen before the encoding is decided; undefined once it is. */
  private head: Buffer | undefined = Buffer.alloc(0);
  private decoder = new StringDecoder('utf8');
  /** UTF-16LE: bytes given to the decoder; odd at the end means a dangling byte. */
  private fed = 0;
  /** UTF-16BE: the first byte of a code unit whose second byte is in the next chunk. */
  private odd: number | undefined;
  encoding: ExportEncoding = 'utf8';

  write(chunk: Buffer): string {
    if (this.head === undefined) return this.decode(chunk);
    this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
    if (this.head.length < SNIFF_BYTES) return '';
    return this.start(this.head);
  }

  end(): string {
    const text = this.head === undefined ? '' : this.start(this.head);
    // StringDecoder('utf16le') drops a dangling byte silently; UTF-8 gives U+FFFD for an incomplete sequence.
    let rest = this.decoder.end();
    if (this.encoding === 'utf16le' && this.fed % 2 === 1) rest += '\ufffd';
    if (this.odd !== undefined) {
      this.odd = undefined;
      rest += '\ufffd';
    }
    return text + rest;
  }

  private start(head: Buffer): string {
    this.head = undefined;
    const b = (i: number): number | undefined => head[i];
    if ((b(0) === 0xff && b(1) === 0xfe && b(2) === 0 && b(3) === 0) || (b(0) === 0 && b(1) === 0 && b(2) === 0xfe && b(3) === 0xff)) {
      throw fileError(1, 'UTF-32 text: not read; export the report as UTF-8 or as "Unicode" (UTF-16) text');
    }
    if (b(0) === 0xff && b(1) === 0xfe) return this.begin('utf16le', head.subarray(2));
    if (b(0) === 0xfe && b(1) === 0xff) return this.begin('utf16be', head.subarray(2));
    if (head.length >= SNIFF_BYTES && ((b(0) !== 0 && b(1) === 0 && b(2) !== 0 && b(3) === 0) || (b(0) === 0 && b(1) !== 0 && b(2) === 0 && b(3) !== 0))) {
      throw fileError(
        1,
        'UTF-16 text without a byte-order mark (every other byte is 0): not read, as its byte order would be a guess; export the report as UTF-8, or as "Unicode" (UTF-16 with its byte-order mark)',
      );
    }
    return this.begin('utf8', head);
  }

  private begin(encoding: ExportEncoding, rest: Buffer): string {
    this.encoding = encoding;
    if (encoding !== 'utf8') this.decoder = new StringDecoder('utf16le');
    return rest.length > 0 ? this.decode(rest) : '';
  }

  private decode(chunk: Buffer): string {
    if (this.encoding === 'utf8') return this.decoder.write(chunk);
    if (this.encoding === 'utf16le') {
      this.fed += chunk.length;
      return this.decoder.write(chunk);
    }
    // UTF-16BE read as little-endian: each byte pair swapped, on a copy (the caller may still use its buffer).
    const start = this.odd === undefined ? 0 : 1;
    const total = chunk.length + start;
    const pairs = total - (total % 2);
    const le = Buffer.allocUnsafe(pairs);
    const at = (i: number): number => (i < start ? this.odd! : chunk[i - start]!);
    for (let i = 0; i < pairs; i += 2) {
      le[i] = at(i + 1);
      le[i + 1] = at(i);
    }
    this.odd = total % 2 === 1 ? at(total - 1) : undefined;
    return this.decoder.write(le);
  }
}

/**
 * Splits a byte stream into text lines without holding more than one line in memory.
 * Accepts every line ending BMS exports come with: CRLF (Insight on Windows), LF (files
 * copied through Unix tools) and CR-only (old Excel for Mac re-saves), a CR at the end of
 * one chunk followed by LF at the start of the next, and a leading UTF-8 byte-order mark
 * (Excel's "CSV UTF-8"). Bytes are decoded by `ExportDecoder`: UTF-8 (replacement
 * characters for invalid bytes), or UTF-16 LE/BE when the file starts with its BOM.
 */
export async function* readLines(source: AsyncIterable<Buffer | string>, maxLineChars = DEFAULT_MAX_LINE_CHARS): AsyncGenerator<string> {
  const decoder = new ExportDecoder();
  const splitter = new LineSplitter(maxLineChars);
  for await (const chunk of source) {
    const text = typeof chunk === 'string' ? chunk : decoder.write(chunk);
    if (text.length > 0) yield* splitter.push(text);
  }
  const rest = decoder.end();
  if (rest.length > 0) yield* splitter.push(rest);
  const last = splitter.end();
  if (last !== undefined) yield last;
}

/** The line-ending state machine of `readLines`, fed decoded text. */
class LineSplitter {
  private carry = '';
  private atStart = true;
  private skipLeadingLF = false;
  private lineNo = 0;
  private readonly breaks = /[\r\n]/g;

  constructor(private readonly maxLineChars: number) {}

  /** The message names the line once: fileError adds `line N:` and keeps the bare reason for `.error.txt` and the history. */
  private tooLong(): Error {
    return fileError(this.lineNo + 1, `longer than ${this.maxLineChars} characters (binary data or not a CSV export)`);
  }

  *push(input: string): Generator<string> {
    let text = input;
    if (this.atStart) {
      this.atStart = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let pos = 0;
    if (this.skipLeadingLF) {
      this.skipLeadingLF = false;
      if (text.charCodeAt(0) === 10) pos = 1;
    }
    const breaks = this.breaks;
    breaks.lastIndex = pos;
    let m: RegExpExecArray | null;
    while ((m = breaks.exec(text)) !== null) {
      const i = m.index;
      const line = this.carry.length ? this.carry + text.slice(pos, i) : text.slice(pos, i);
      this.carry = '';
      if (line.length > this.maxLineChars) throw this.tooLong();
      if (text.charCodeAt(i) === 13) {
        if (i + 1 >= text.length) this.skipLeadingLF = true;
        else if (text.charCodeAt(i + 1) === 10) breaks.lastIndex = i + 2;
      }
      pos = breaks.lastIndex;
      this.lineNo++;
      yield line;
    }
    this.carry += text.slice(pos);
    if (this.carry.length > this.maxLineChars) throw this.tooLong();
  }

  /** The last line when the file does not end with a line break. */
  end(): string | undefined {
    return this.carry.length > 0 ? this.carry : undefined;
  }
}
