import type { Request, RequestHandler, Response } from 'express';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OutpostError } from '../../core/errors.js';
import { compressedFiles } from '../../runtime/dashboard/compressed.js';
import { dashboardRoot, vendorFiles } from '../../runtime/dashboard/index.js';
import type { CentralHttp } from '../http/server.js';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The gateway dashboard's modules the web UI loads as they are (runtime/dashboard/public): the
 * DOM and REST helpers, the login screen (login.js), charts, ranges and values, the Audit and Users pages and what they
 * import, and the Consumption page's periods, sums and bar chart (consumption.js, bars.js: the
 * site page's Consumption card). Only these: the gateway's other pages would not work here.
 */
export const SHARED_FILES = [
  'dom.js',
  'api.js',
  'login.js',
  'chart.js',
  'range.js',
  'values.js',
  'audit.js',
  'users.js',
  'widgets.js',
  'live.js',
  'mqtt-ws.js',
  'mqtt-codec.js',
  'status-view.js',
  'consumption.js',
  'bars.js',
  'style.css',
  'favicon.svg',
] as const;

/** Central's own browser files: beside this module (source tree, or dist/ once the build copies them), else the source tree next to dist/. */
function webRoot(): string {
  const candidates = [join(here, 'public'), join(here, '..', '..', '..', 'central', 'web', 'public')];
  const found = candidates.find((dir) => existsSync(join(dir, 'app.js')));
  if (!found) throw new Error(`web UI files not found (looked in ${candidates.join(', ')})`);
  return found;
}

/** Every file served under `/ui/`, by name: central's own and the shared ones (names are unique, checked). */
export function uiFiles(): Map<string, string> {
  const own = webRoot();
  const files = new Map<string, string>();
  for (const name of readdirSync(own)) if (/^[a-z0-9-]+\.(js|css|svg)$/.test(name)) files.set(name, join(own, name));
  const shared = dashboardRoot();
  for (const name of SHARED_FILES) {
    if (files.has(name)) throw new Error(`central/web/public/${name} has the name of a shared dashboard module: rename it`);
    files.set(name, join(shared, name));
  }
  return files;
}

/**
 * The web UI's files: `GET /` the page, `GET /ui/:file` its modules and styles (gzip for
 * browsers that take it, as the gateway's dashboard), `GET /ui/vendor/:file` uPlot from
 * node_modules — no CDN, no build step. Public: they hold no data (the data comes from the API
 * after login); CSP `default-src 'self'` from CentralHttp's headers.
 */
export function assetRoutes(http: CentralHttp): void {
  const files = uiFiles();
  const vendor = vendorFiles();
  const index = join(webRoot(), 'index.html');
  const fileOf = (req: Request): string | undefined => {
    const name = String(req.params.file ?? '');
    if (req.path.startsWith('/ui/vendor/')) return Object.hasOwn(vendor, name) ? vendor[name] : undefined;
    return files.get(name);
  };
  // Vendor files may be cached a day (they change with an upgrade of the package); ours are revalidated.
  const cacheControl = (req: Request): string => (req.path.startsWith('/ui/vendor/') ? 'public, max-age=86400' : 'no-cache');
  const send: RequestHandler = (req: Request, res: Response) => {
    const file = fileOf(req);
    if (!file) throw new OutpostError('NOT_FOUND', `the web UI has no file "${String(req.params.file).slice(0, 64)}"`);
    res.setHeader('cache-control', cacheControl(req));
    res.sendFile(file);
  };
  const gzip = compressedFiles(fileOf, cacheControl);
  http.route('get', '/', 'public', (_req, res) => {
    res.setHeader('cache-control', 'no-cache');
    res.sendFile(index);
  });
  http.route('get', '/ui/vendor/:file', 'public', gzip, send);
  http.route('get', '/ui/:file', 'public', gzip, send);
}
