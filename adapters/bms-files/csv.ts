/**
 * Splits one CSV line into fields (RFC 4180 quoting with `""` escapes), leniently enough for
 * what BMS tools and Excel write: unquoted fields, spaces between a closing quote and the
 * delimiter (the ALC points list writes `"" ,""`), and spaces before an opening quote.
 * Returns `undefined` for an unterminated quote: report rows never span lines, so an open
 * quote at the end of a line means a truncated or corrupt file.
 */
export function splitCsvLine(line: string, delimiter = ','): string[] | undefined {
  const out: string[] = [];
  const n = line.length;
  const delim = delimiter.charCodeAt(0);
  let i = 0;
  for (;;) {
    // Skip blanks before a quoted field only; unquoted fields keep their spaces (Insight pads values).
    let j = i;
    while (j < n && line.charCodeAt(j) === 32) j++;
    if (j < n && line.charCodeAt(j) === 34) {
      let value = '';
      let k = j + 1;
      for (;;) {
        const q = line.indexOf('"', k);
        if (q < 0) return undefined;
        value += line.slice(k, q);
        if (line.charCodeAt(q + 1) === 34) {
          value += '"';
          k = q + 2;
          continue;
        }
        k = q + 1;
        break;
      }
      while (k < n && line.charCodeAt(k) !== delim) k++;
      out.push(value);
      if (k >= n) return out;
      i = k + 1;
    } else {
      const d = line.indexOf(delimiter, i);
      if (d < 0) {
        out.push(line.slice(i));
        return out;
      }
      out.push(line.slice(i, d));
      i = d + 1;
    }
  }
}

/** Drops empty fields at the end, which Excel adds to pad short rows to the widest row. */
export function trimTrailingEmpty(fields: string[], keep = 0): string[] {
  let end = fields.length;
  while (end > keep && fields[end - 1]!.trim() === '') end--;
  return end === fields.length ? fields : fields.slice(0, end);
}
