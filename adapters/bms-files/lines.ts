import { StringDecoder } from 'node:string_decoder';
import { OutpostError } from '../../runtime/errors.js';

/** A BMS export line is a few kB; anything this long is binary junk or a wrong file, not a report row. */
export const DEFAULT_MAX_LINE_CHARS = 1024 * 1024;

/**
 * Splits a byte stream into text lines without holding more than one line in memory.
 * Accepts every line ending BMS exports come with: CRLF (Insight on Windows), LF (files
 * copied through Unix tools) and CR-only (old Excel for Mac re-saves), a CR at the end of
 * one chunk followed by LF at the start of the next, and a leading UTF-8 byte-order mark
 * (Excel's "CSV UTF-8"). Decoding is UTF-8 with replacement characters for invalid bytes.
 */
export async function* readLines(source: AsyncIterable<Buffer | string>, maxLineChars = DEFAULT_MAX_LINE_CHARS): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let carry = '';
  let atStart = true;
  let skipLeadingLF = false;
  let lineNo = 0;
  const tooLong = (): OutpostError =>
    new OutpostError('BMS_FILE_INVALID', `line ${lineNo + 1}: longer than ${maxLineChars} characters (binary data or not a CSV export)`, {
      details: { line: lineNo + 1 },
    });
  const breaks = /[\r\n]/g;
  for await (const chunk of source) {
    let text = typeof chunk === 'string' ? chunk : decoder.write(chunk);
    if (text.length === 0) continue;
    if (atStart) {
      atStart = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let pos = 0;
    if (skipLeadingLF) {
      skipLeadingLF = false;
      if (text.charCodeAt(0) === 10) pos = 1;
    }
    breaks.lastIndex = pos;
    let m: RegExpExecArray | null;
    while ((m = breaks.exec(text)) !== null) {
      const i = m.index;
      const line = carry.length ? carry + text.slice(pos, i) : text.slice(pos, i);
      carry = '';
      if (line.length > maxLineChars) throw tooLong();
      if (text.charCodeAt(i) === 13) {
        if (i + 1 >= text.length) skipLeadingLF = true;
        else if (text.charCodeAt(i + 1) === 10) breaks.lastIndex = i + 2;
      }
      pos = breaks.lastIndex;
      lineNo++;
      yield line;
    }
    carry += text.slice(pos);
    if (carry.length > maxLineChars) throw tooLong();
  }
  carry += decoder.end();
  if (carry.length > 0) yield carry;
}
