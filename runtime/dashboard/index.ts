import express from 'express';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compressedFiles } from './compressed.js';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

/**
 * Where the dashboard's files are: beside this module (source tree, or dist/ once the
 * build copies them), else the source tree next to dist/ (a build without the copy).
 */
export function dashboardRoot(): string {
  const candidates = [join(here, 'public'), join(here, '..', '..', '..', 'runtime', 'dashboard', 'public')];
  const found = candidates.find((dir) => existsSync(join(dir, 'app.js')));
  if (!found) throw new Error(`dashboard files not found (looked in ${candidates.join(', ')})`);
  return found;
}

/**
 * The one library the browser loads, uPlot, served from node_modules: no CDN, works offline.
 * Live values need no library: public/mqtt-ws.js is our own subscribe-only MQTT client.
 */
export function vendorFiles(): Record<string, string> {
  const uplotDist = dirname(require.resolve('uplot/dist/uPlot.esm.js'));
  return {
    'uPlot.esm.js': join(uplotDist, 'uPlot.esm.js'),
    'uPlot.min.css': join(uplotDist, 'uPlot.min.css'),
  };
}

/** Names served under `/ui/vendor/` (the budget test counts each). */
export function vendorFileNames(): string[] {
  return Object.keys(vendorFiles());
}

/**
 * The local web dashboard: `/` is the single page, `/ui/*` its modules and styles,
 * `/ui/vendor/*` uPlot. Plain ES modules, no build step, no CDN.
 * All of it is public (it holds no data); the data comes from the API after login.
 */
export function dashboardRouter(): express.Router {
  const r = express.Router();
  const root = dashboardRoot();
  const vendor = vendorFiles();
  const staticOptions = { index: false, fallthrough: true, maxAge: 0, etag: true, lastModified: true } as const;
  // The file behind a `/ui/…` URL path, as the routes below serve it; undefined when none does.
  const vendorFile = (name: string): string | undefined => (Object.hasOwn(vendor, name) ? vendor[name] : undefined);
  const fileOf = (urlPath: string): string | undefined => {
    if (urlPath.startsWith('/ui/vendor/')) return vendorFile(urlPath.slice('/ui/vendor/'.length));
    if (!urlPath.startsWith('/ui/')) return undefined;
    const relative = decodeURIComponent(urlPath.slice('/ui/'.length));
    // As express.static: no dotfiles, nothing outside the folder.
    if (/(^|[/\\])\./.test(relative)) return undefined;
    const file = normalize(join(root, relative));
    return file.startsWith(root + sep) ? file : undefined;
  };
  r.get(['/', '/index.html'], (_req, res) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(join(root, 'index.html'));
  });
  // Vendor files may be cached a day (they change with an upgrade of the package); ours are revalidated.
  const cacheControl = (req: express.Request) => (req.originalUrl.startsWith('/ui/vendor/') ? 'public, max-age=86400' : 'public, max-age=0');
  // Everything under /ui in one sub-router (one mount, so one owner per URL in the route table):
  // the gzip variant first, then the vendor files, then our own files.
  const ui = express.Router();
  ui.use(
    compressedFiles((req) => {
      try {
        return fileOf(req.originalUrl.split('?')[0]!);
      } catch {
        return undefined; // a malformed %-escape: express.static answers it
      }
    }, cacheControl),
  );
  ui.get('/vendor/:file', (req, res, next) => {
    const path = vendorFile(req.params.file);
    if (!path) return next();
    res.setHeader('Cache-Control', 'public, max-age=86400');
    res.sendFile(path);
  });
  ui.use(express.static(root, staticOptions));
  r.use('/ui', ui);
  return r;
}
