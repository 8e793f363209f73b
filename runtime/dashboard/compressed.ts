import type { NextFunction, Request, Response } from 'express';
import { statSync, readFileSync, type Stats } from 'node:fs';
import { extname } from 'node:path';
import { gzipSync } from 'node:zlib';

/** Text files worth compressing (JS, CSS, SVG); everything else goes to express.static as is. */
const COMPRESSIBLE = new Set(['.js', '.css', '.svg']);

interface Entry {
  mtimeMs: number;
  size: number;
  gzip: Buffer;
  etag: string;
}

/**
 * Serves the dashboard's JS, CSS and SVG gzip-compressed to browsers that accept it
 * (RFC 9110 §8.4 Content-Encoding, §12.5.3 Accept-Encoding): the budget of issue 24 is 150 kB
 * gzip, and without this the wire carried 3× that (uPlot alone is 142 kB raw, 41 kB gzip) —
 * seconds over a site's cellular link. Each file is compressed once per version (size and
 * modification time) and kept: the set is the dashboard's own files, so the memory is bounded
 * by them (~130 kB). `fileOf` maps the request to a file or undefined (not ours: next()).
 */
export function compressedFiles(fileOf: (req: Request) => string | undefined, cacheControl: (req: Request) => string) {
  const cache = new Map<string, Entry>();
  const entry = (file: string): Entry | undefined => {
    let stat: Stats;
    try {
      stat = statSync(file);
    } catch {
      return undefined; // not there: express.static answers (404 through the router)
    }
    if (!stat.isFile()) return undefined;
    const known = cache.get(file);
    if (known && known.mtimeMs === stat.mtimeMs && known.size === stat.size) return known;
    const gzip = gzipSync(readFileSync(file));
    // Weak: the bytes differ from the identity encoding's, the content does not (RFC 9110 §8.8.1).
    const fresh = { mtimeMs: stat.mtimeMs, size: stat.size, gzip, etag: `W/"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}-gz"` };
    cache.set(file, fresh);
    return fresh;
  };
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    const file = fileOf(req);
    if (!file || !COMPRESSIBLE.has(extname(file)) || !req.acceptsEncodings('gzip')) return next();
    const found = entry(file);
    if (!found) return next();
    res.setHeader('Vary', 'Accept-Encoding');
    res.setHeader('Cache-Control', cacheControl(req));
    res.setHeader('ETag', found.etag);
    res.setHeader('Last-Modified', new Date(found.mtimeMs).toUTCString());
    if (req.fresh) {
      res.status(304).end();
      return;
    }
    res.type(extname(file));
    res.setHeader('Content-Encoding', 'gzip');
    res.send(found.gzip);
  };
}
